"""Cityscapes: the official label table, the labelId -> trainId mapping, and the dataset.

On disk (``root`` is the folder that contains ``leftImg8bit`` and ``gtFine``)::

    leftImg8bit/{train,val,test}/<city>/<city>_<seq>_<frame>_leftImg8bit.png       RGB, 2048x1024
    gtFine/{train,val,test}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png     8-bit, labelIds
    gtFine/.../<city>_<seq>_<frame>_gtFine_instanceIds.png                      16-bit
    gtFine/.../<city>_<seq>_<frame>_gtFine_color.png                            RGBA, label colours
    gtFine/.../<city>_<seq>_<frame>_gtFine_polygons.json                        the annotation

The labelIds PNGs store one of 34 *labelIds* (0..33) per pixel. Training and evaluation use 19 of
them, renumbered 0..18 as *trainIds*; every other label (ego vehicle, 'static', parking, ...) becomes
255 and is ignored. The table comes from ``cityscapesscripts.helpers.labels``, the official one: the
loader maps labelIds on the fly, so ``csCreateTrainIdLabelImgs`` is not needed. Predictions go back
to labelIds (:func:`train_to_label_ids`) for the official evaluator.

Run ``python -m seg_common.data.cityscapes --check ROOT`` to count the frames of a download.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import torch
from cityscapesscripts.helpers.labels import labels, trainId2label
from PIL import Image
from torchvision import tv_tensors

from .voc import to_item

if TYPE_CHECKING:
    import pandas as pd

NUM_CLASSES = 19
IGNORE_INDEX = 255
CITYSCAPES_CLASSES = tuple(trainId2label[t].name for t in range(NUM_CLASSES))


def _palette() -> np.ndarray:
    palette = np.zeros((256, 3), dtype=np.uint8)
    for train_id in range(NUM_CLASSES):
        palette[train_id] = trainId2label[train_id].color
    return palette


def _label_to_train() -> np.ndarray:
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for label in labels:
        if label.id >= 0 and 0 <= label.trainId < NUM_CLASSES:
            lut[label.id] = label.trainId
    return lut


# (256, 3) uint8: trainId -> official colour; 255 (ignored) and unused rows are black.
CITYSCAPES_PALETTE = _palette()
# (256,) uint8: labelId -> trainId, 255 for labels not evaluated and for ids not in the table.
LABEL_TO_TRAIN = _label_to_train()
# (19,) uint8: trainId -> labelId, to export predictions for the official evaluator.
TRAIN_TO_LABEL = np.array([trainId2label[t].id for t in range(NUM_CLASSES)], dtype=np.uint8)
# (256,) bool: which values a labelIds PNG may hold (0..33; license plate's -1 is never drawn).
KNOWN_LABEL_IDS = np.zeros(256, dtype=bool)
KNOWN_LABEL_IDS[[label.id for label in labels if label.id >= 0]] = True

SPLITS = ("train", "val", "test")
# Frames of the official release (leftImg8bit_trainvaltest.zip).
OFFICIAL_FRAMES = {"train": 2975, "val": 500, "test": 1525}
IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"
DOWNLOAD_HINT = (
    "bash download_data.sh cityscapes   (a free account is needed), or build the offline sample "
    "with `python -m seg_common.data.sample_cityscapes --root ROOT` (make_sample_cityscapes)"
)


def label_table() -> "pd.DataFrame":
    """The official label table (``cityscapesscripts.helpers.labels``) as a DataFrame.

    One row per label: name, id (labelId in the PNGs), trainId (255 or -1: not trained on),
    category, hasInstances (instanceIds hold id*1000+k), ignoreInEval, color (RGB).
    """
    import pandas as pd

    columns = ["name", "id", "trainId", "category", "hasInstances", "ignoreInEval", "color"]
    return pd.DataFrame([[getattr(label, c) for c in columns] for label in labels], columns=columns)


def read_label_ids(path: str | Path) -> np.ndarray:
    """Read a ``_gtFine_labelIds.png`` as an ``[H, W]`` uint8 array of labelIds, validated.

    Raises ValueError for a PNG that is not single-channel 8-bit (a colour or instanceIds file)
    and for values that are not labelIds of the official table.
    """
    path = Path(path)
    with Image.open(path) as img:
        if img.mode != "L":
            raise ValueError(
                f"Label {path} has mode {img.mode}; a labelIds PNG is single-channel 8-bit (L). "
                "Is it a _gtFine_color.png (RGBA) or _gtFine_instanceIds.png (16-bit) file?"
            )
        ids = np.asarray(img)
    bad = ~KNOWN_LABEL_IDS[ids]
    if bad.any():
        values = sorted(int(v) for v in np.unique(ids[bad]))[:10]
        raise ValueError(
            f"Label {path} has values {values} that are not labelIds of the Cityscapes table "
            "(0..33). Is it a labelIds file, or a trainIds / other dataset's mask?"
        )
    return ids


def read_train_ids(path: str | Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """Read a ``_gtFine_labelIds.png`` as an ``[H, W]`` uint8 array of trainIds (0..18, 255).

    ``size = (width, height)`` resizes the labelIds by nearest neighbour first, so every output
    value is a trainId of some input pixel (no blending of classes).
    """
    ids = read_label_ids(path)
    if size is not None and size != (ids.shape[1], ids.shape[0]):
        ids = np.asarray(Image.fromarray(ids).resize(size, Image.NEAREST))
    return LABEL_TO_TRAIN[ids]


def train_to_label_ids(pred: np.ndarray | torch.Tensor) -> np.ndarray:
    """Map trainIds (``[H, W]``, 0..18 or 255) to uint8 labelIds for the official evaluator.

    255 becomes 0 ('unlabeled'), which the evaluator ignores. Any other value is an error.
    """
    if isinstance(pred, torch.Tensor):
        pred = pred.detach().cpu().numpy()
    pred = np.asarray(pred)
    bad = ((pred < 0) | (pred >= NUM_CLASSES)) & (pred != IGNORE_INDEX)
    if bad.any():
        values = sorted(int(v) for v in np.unique(pred[bad]))[:10]
        raise ValueError(
            f"Predictions hold {values}, which are not trainIds 0..{NUM_CLASSES - 1} nor "
            f"{IGNORE_INDEX}. Pass class indices (argmax over the logits), not logits or labelIds."
        )
    lut = np.zeros(256, dtype=np.uint8)             # 255 -> 0 'unlabeled'
    lut[:NUM_CLASSES] = TRAIN_TO_LABEL
    return lut[pred.astype(np.uint8)]


def official_evaluation(predictions: Sequence[str | Path], labels: Sequence[str | Path],
                        export: str | Path | None = None) -> dict:
    """Run ``cityscapesscripts``' pixel-level evaluator (``evalPixelLevelSemanticLabeling``) on
    prediction PNGs of labelIds (see :func:`train_to_label_ids`), paired in order with their
    ``_gtFine_labelIds.png``. Returns the evaluator's result dict: ``averageScoreClasses`` is the
    mIoU over the 19 classes, ``classScores`` the IoU per class name. ``export``: a JSON file to
    write the results to (default: none).

    Two incompatibilities of cityscapesscripts 2.3 with NumPy 2 are worked around: it calls
    ``np.in1d``, which NumPy 2.4 removed (``np.isin`` gives the same values and the evaluator
    reshapes them itself; it is lent for the call), and its JSON export fails on NumPy integers
    (so this function writes the JSON itself).
    """
    import json

    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as evaluator

    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels; pair them one to one")
    args = evaluator.CArgs()
    for name, value in vars(evaluator.args).items():
        setattr(args, name, value)
    args.quiet, args.evalInstLevelScore, args.evalPixelAccuracy = True, False, True
    args.JSONOutput, args.exportFile = False, ""
    lent = not hasattr(np, "in1d")
    if lent:
        np.in1d = np.isin
    try:
        results = evaluator.evaluateImgLists([str(p) for p in predictions], [str(p) for p in labels], args)
    finally:
        if lent:
            del np.in1d
    if export is not None:
        Path(export).write_text(json.dumps(results, indent=1, sort_keys=True,
                                           default=lambda o: o.item() if hasattr(o, "item") else str(o)))
    return results


def _select_cities(split_dir: Path, cities: int | str | Sequence[str] | None) -> list[str]:
    available = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    if not available:
        raise FileNotFoundError(f"{split_dir} holds no city folders. Re-extract the dataset.")
    if cities is None:
        return available
    if isinstance(cities, bool) or not isinstance(cities, (int, str, Sequence)):
        raise TypeError(f"cities must be None, a count or city names, got {cities!r}")
    if isinstance(cities, int):
        if not 1 <= cities <= len(available):
            raise ValueError(
                f"cities={cities}: {split_dir} has {len(available)} cities; pass 1.."
                f"{len(available)} to keep the first ones, or None for all."
            )
        return available[:cities]
    wanted = [cities] if isinstance(cities, str) else list(cities)
    if not wanted:
        raise ValueError("cities=[] keeps no city; pass None for all cities of the split.")
    unknown = [c for c in wanted if c not in available]
    if unknown:
        raise ValueError(
            f"Unknown cities {unknown} in {split_dir}; available: {', '.join(available)}."
        )
    return [c for c in available if c in wanted]


class CityscapesSegmentation(torch.utils.data.Dataset):
    """Cityscapes semantic segmentation with the 19 evaluated classes (trainIds).

    Args:
        root: folder containing ``leftImg8bit/`` and ``gtFine/``.
        split: ``"train"``, ``"val"`` or ``"test"`` (test labels are all 'unlabeled').
        transforms: a callable ``(image, mask) -> (image, mask)``, e.g. a
            ``torchvision.transforms.v2`` pipeline from :mod:`seg_common.data.transforms`.
        cities: None for every city of the split; an int N for the first N cities in sorted
            order (a reduced subset: ``cities=1`` is aachen in train, frankfurt in val); or a list
            of city names.
        scale: downscale factor in (0, 1] applied at load time: the image bilinearly with
            antialiasing, the mask by nearest neighbour. 0.25 turns 2048x1024 into 512x256.
        cache: keep every decoded (and downscaled) image and mask in memory after its first read.
            About 6.3 MB per frame at scale 1, 0.4 MB at scale 0.25.

    Items are ``(image, mask)``: without transforms, ``image`` is a ``tv_tensors.Image`` uint8
    ``[3, H, W]`` and ``mask`` a ``tv_tensors.Mask`` int64 ``[H, W]`` of trainIds 0..18 and 255
    for ignored pixels.
    """

    classes = CITYSCAPES_CLASSES
    num_classes = NUM_CLASSES
    ignore_index = IGNORE_INDEX

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transforms: Callable | None = None,
        cities: int | str | Sequence[str] | None = None,
        scale: float = 1.0,
        cache: bool = False,
    ) -> None:
        if not 0 < scale <= 1:
            raise ValueError(f"scale must be in (0, 1] (a downscale factor), got {scale}")
        self.root = Path(root)
        self.split = split
        self.transforms = transforms
        self.scale = scale
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] | None = {} if cache else None
        image_dir = self.root / "leftImg8bit" / split
        label_dir = self.root / "gtFine" / split
        for folder in (image_dir, label_dir):
            if not folder.is_dir():
                raise FileNotFoundError(
                    f"No Cityscapes {split} split found: {folder} does not exist. "
                    f"Get the data with: {DOWNLOAD_HINT}."
                )
        self.cities = _select_cities(image_dir, cities)
        self.images = [p for city in self.cities
                       for p in sorted((image_dir / city).glob(f"*{IMAGE_SUFFIX}"))]
        if not self.images:
            raise FileNotFoundError(
                f"No *{IMAGE_SUFFIX} frames in {image_dir} for cities {self.cities}. "
                "Re-extract leftImg8bit_trainvaltest.zip."
            )
        self.labels = [label_dir / p.parent.name / (p.name[:-len(IMAGE_SUFFIX)] + LABEL_SUFFIX)
                       for p in self.images]
        for image, label in zip(self.images, self.labels):
            if not label.is_file():
                raise FileNotFoundError(
                    f"Frame {image} has no label: expected {label}. Re-extract "
                    "gtFine_trainvaltest.zip, or delete the frame."
                )

    def __len__(self) -> int:
        return len(self.images)

    def _size(self, width: int, height: int) -> tuple[int, int]:
        return max(1, round(width * self.scale)), max(1, round(height * self.scale))

    def read_image(self, index: int) -> np.ndarray:
        """The ``[H, W, 3]`` uint8 RGB array of item ``index`` (downscaled by ``scale``)."""
        with Image.open(self.images[index]) as img:
            img = img.convert("RGB")
            size = self._size(*img.size)
            if size != img.size:
                img = img.resize(size, Image.BILINEAR, reducing_gap=2.0)
            return np.asarray(img)

    def read_mask(self, index: int) -> np.ndarray:
        """The ``[H, W]`` uint8 trainIds of item ``index`` (downscaled by ``scale``), validated."""
        with Image.open(self.images[index]) as img, Image.open(self.labels[index]) as lbl:
            if img.size != lbl.size:
                raise ValueError(
                    f"Image {self.images[index]} is {img.size[0]}x{img.size[1]} but its label "
                    f"{self.labels[index]} is {lbl.size[0]}x{lbl.size[1]} (width x height); "
                    "they must have the same size. Was one of them resized?"
                )
            size = self._size(*img.size)
        return read_train_ids(self.labels[index], size)

    def _read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        mask = self.read_mask(index)
        image = self.read_image(index)
        if self._cache is not None:
            self._cache[index] = (image, mask)
        return image, mask

    def __getitem__(self, index: int):
        return to_item(self, index)

    def __repr__(self) -> str:
        return (
            f"CityscapesSegmentation(split={self.split!r}, cities={self.cities}, "
            f"images={len(self)}, scale={self.scale})"
        )


def check_layout(root: str | Path, expected: dict[str, int] | None = None) -> list[str]:
    """Count the frames of a Cityscapes folder and return the problems found (empty: complete).

    Prints one line per split: frames found and expected (default: the official 2975 / 500 /
    1525). Every train and val frame must have its ``_gtFine_labelIds.png``.
    """
    root = Path(root)
    expected = OFFICIAL_FRAMES if expected is None else expected
    problems = []
    for split, want in expected.items():
        image_dir, label_dir = root / "leftImg8bit" / split, root / "gtFine" / split
        frames = sorted(image_dir.glob(f"*/*{IMAGE_SUFFIX}"))
        missing = [f for f in frames if split != "test" and not (
            label_dir / f.parent.name / (f.name[:-len(IMAGE_SUFFIX)] + LABEL_SUFFIX)).is_file()]
        print(f"{split:5s}: {len(frames):5d} frames (expected {want}), "
              f"{len(missing)} without labelIds")
        if len(frames) != want:
            problems.append(f"{image_dir} has {len(frames)} frames, expected {want}")
        if missing:
            problems.append(f"{len(missing)} {split} frames have no labelIds, e.g. {missing[0].name}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check a Cityscapes folder (leftImg8bit + gtFine).")
    parser.add_argument("--check", type=Path, required=True, metavar="ROOT",
                        help="folder containing leftImg8bit/ and gtFine/")
    parser.add_argument("--expect", type=int, nargs=3, metavar=("TRAIN", "VAL", "TEST"),
                        help="frames expected per split (default: the official 2975 500 1525)")
    args = parser.parse_args(argv)
    expected = dict(zip(SPLITS, args.expect)) if args.expect else None
    problems = check_layout(args.check, expected)
    for problem in problems:
        print(f"incomplete: {problem}", file=sys.stderr)
    if not problems:
        print(f"Cityscapes in {args.check} is complete.")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
