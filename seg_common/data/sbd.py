"""Build VOC's SBD-augmented training set (``SegmentationClassAug`` + ``train_aug.txt``).

The Semantic Boundaries Dataset (Hariharan et al. 2011) labels 11,355 VOC images in MATLAB files,
``benchmark_RELEASE/dataset/cls/<id>.mat`` (struct ``GTcls`` with a ``Segmentation`` index map).
The usual augmented set ("train_aug", 10,582 images) is SBD train + SBD val + VOC train, minus every
VOC val image, so that the validation set stays unseen. ``download_data.sh voc-aug`` calls
``python -m seg_common.data.sbd --sbd <dataset dir> --voc <VOC2012 dir>``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from .voc import SPLIT_DIR

TRAIN_AUG_SIZE = 10582


def read_sbd_mask(path: str | Path) -> np.ndarray:
    """The ``[H, W]`` uint8 class map stored in an SBD ``cls/<id>.mat`` file."""
    from scipy.io import loadmat  # scipy comes with the "book" extra (d2l needs it too)

    mat = loadmat(str(path))
    if "GTcls" not in mat:
        raise ValueError(f"{path} has no GTcls struct; is it an SBD cls/*.mat file?")
    return np.asarray(mat["GTcls"][0]["Segmentation"][0], dtype=np.uint8)


def _ids(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"split list {path} is missing")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def build_train_aug(sbd_dir: str | Path, voc_dir: str | Path) -> list[str]:
    """Write ``SegmentationClassAug/*.png`` (grayscale index PNGs) and ``train_aug.txt`` into
    ``voc_dir`` and return the train_aug ids. SBD labels win where both datasets label an image."""
    sbd_dir, voc_dir = Path(sbd_dir), Path(voc_dir)
    sbd_ids = set(_ids(sbd_dir / "train.txt")) | set(_ids(sbd_dir / "val.txt"))
    voc_train = set(_ids(voc_dir / SPLIT_DIR / "train.txt"))
    voc_val = set(_ids(voc_dir / SPLIT_DIR / "val.txt"))
    train_aug = sorted((sbd_ids | voc_train) - voc_val)
    out = voc_dir / "SegmentationClassAug"
    out.mkdir(exist_ok=True)
    for image_id in train_aug + sorted(voc_val):
        target = out / f"{image_id}.png"
        if target.exists():
            continue
        if image_id in sbd_ids and image_id not in voc_val:
            mask = read_sbd_mask(sbd_dir / "cls" / f"{image_id}.mat")
        else:
            with Image.open(voc_dir / "SegmentationClass" / f"{image_id}.png") as img:
                mask = np.asarray(img)
        tmp = target.with_suffix(".tmp.png")
        Image.fromarray(mask).save(tmp)
        tmp.replace(target)
    (voc_dir / SPLIT_DIR / "train_aug.txt").write_text("\n".join(train_aug) + "\n")
    return train_aug


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sbd", type=Path, required=True, help="benchmark_RELEASE/dataset folder")
    parser.add_argument("--voc", type=Path, required=True, help="VOCdevkit/VOC2012 folder")
    args = parser.parse_args(argv)
    ids = build_train_aug(args.sbd, args.voc)
    note = "" if len(ids) == TRAIN_AUG_SIZE else f" (the full SBD + VOC gives {TRAIN_AUG_SIZE})"
    print(f"train_aug.txt: {len(ids)} images{note}; masks in {args.voc / 'SegmentationClassAug'}")


if __name__ == "__main__":
    main()
