"""ADE20K (MIT Scene Parsing Benchmark 2016): class lists, a palette, and the dataset.

On disk (``root`` is the folder that contains ``ADEChallengeData2016``)::

    ADEChallengeData2016/images/{training,validation}/ADE_{train,val}_NNNNNNNN.jpg
    ADEChallengeData2016/annotations/{training,validation}/<same name>.png
        L mode (8-bit grey): 0 = "other" (not annotated), 1..150 = the classes of objectInfo150.txt
    ADEChallengeData2016/objectInfo150.txt
        tab-separated, a header line "Idx Ratio Train Val Name"; Name lists synonyms ("floor,
        flooring"): the first one is the class name
    ADEChallengeData2016/annotations_instance/{training,validation}/<same name>.png   (optional)
        RGB: R = category 1..100 of the 100 "thing" classes in the order of
        instanceInfo100_train.txt, G = instance id, 0 = no object (Places Challenge 2017,
        ``annotations_instance.tar``, not in ``ADEChallengeData2016.zip``)
    ADEChallengeData2016/instanceInfo100_train.txt   (optional: the names of those 100 classes)

Both annotations are read as class indices 0..K-1 with 255 for the pixels without a class, as
mmsegmentation's ``reduce_zero_label=True`` does: SceneParsing ``k -> k - 1`` (150 classes), the
instance R channel ``r -> r - 1`` (100 classes), ``0 -> 255``. A learner's report counted the
other way, void first: 101 outputs and ``CrossEntropyLoss(ignore_index=0)``, class ``r`` at output
``r``. The two conventions hold the same information: report label = ours + 1, and our 255 is the
report's 0 (see :func:`void_first`).

The class names come from the dataset's own lists (``objectInfo150.txt``, and
``instanceInfo100_train.txt`` when present), never typed in here; the offline sample writes its own
lists in the same formats. Run ``python -m seg_common.data.ade20k --check ROOT`` to count the images
of a download.
"""
from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from .voc import read_pair, to_item

ADE_DIR = "ADEChallengeData2016"
SPLITS = ("training", "validation")
ANNOTATIONS = {"scene": "annotations", "instance": "annotations_instance"}
OBJECT_INFO = "objectInfo150.txt"
INSTANCE_INFO = "instanceInfo100_train.txt"
IGNORE_INDEX = 255
# Images of the official release (ADEChallengeData2016.zip).
OFFICIAL_IMAGES = {"training": 20210, "validation": 2000}
DOWNLOAD_HINT = (
    "bash download_data.sh ade20k   (or build the offline sample with "
    "`python -m seg_common.data.sample_ade20k --root ROOT`, make_sample_ade20k)"
)
INSTANCE_HINT = (
    "The instance annotations are a separate download (Places Challenge 2017): "
    "annotations_instance.tar from http://placeschallenge.csail.mit.edu/data/ChallengeData2017/, "
    "extracted into ADEChallengeData2016/, and instanceInfo100_train.txt from "
    "github.com/CSAILVision/placeschallenge (instancesegmentation/) beside it"
)


def _first_synonym(name: str) -> str:
    return name.split(";")[0].split(",")[0].strip()


def read_object_info(path: str | Path) -> tuple[str, ...]:
    """The class names of an ``objectInfo150.txt``, in index order (index 1 first).

    The file is tab-separated with a header naming the columns (``Idx Ratio Train Val Name``); the
    Name column lists synonyms separated by ``,`` or ``;``: the first one is returned.
    """
    path = Path(path)
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"{path} is empty; expected a header 'Idx Ratio Train Val Name' and one line per class.")
    header = [column.strip() for column in lines[0].split("\t")]
    if "Idx" not in header or "Name" not in header:
        raise ValueError(f"{path}: the first line {lines[0]!r} is not the header 'Idx Ratio Train Val Name' "
                         "(tab-separated). Is it an objectInfo150.txt?")
    idx_col, name_col = header.index("Idx"), header.index("Name")
    return _indexed_names(path, [(row[idx_col], row[name_col]) for row in
                                 (line.split("\t") for line in lines[1:])])


def read_instance_info(path: str | Path) -> tuple[str, ...]:
    """The category names of an ``instanceInfo100_train.txt``, in index order (index 1 first).

    Format: a header (``Idx  Object Names  #Inst.  #Pix. per Inst.(*1e3)``), then one line per
    category: index, name (padded with spaces), number of instances, pixels per instance, separated
    by tabs.
    """
    path = Path(path)
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    if not lines or not lines[0].startswith("Idx"):
        raise ValueError(f"{path}: expected a header line starting with 'Idx' (an instanceInfo100_train.txt).")
    return _indexed_names(path, [tuple(line.split("\t")[:2]) for line in lines[1:]])


def _indexed_names(path: Path, rows: list[tuple[str, ...]]) -> tuple[str, ...]:
    names = []
    for number, row in enumerate(rows, start=1):
        if len(row) < 2 or not row[0].strip().isdigit() or int(row[0]) != number:
            raise ValueError(f"{path}, line {number + 1}: expected index {number} then a tab and a name, "
                             f"got {row!r}. The indices must run 1, 2, 3, ... in order.")
        names.append(_first_synonym(row[1]))
    if not names:
        raise ValueError(f"{path} lists no classes.")
    return tuple(names)


@functools.lru_cache(maxsize=None)
def _spread_colours(count: int) -> np.ndarray:
    levels = np.linspace(0, 255, 12)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
    grid = grid[grid.sum(1) >= 120]                   # nothing close to the black of void
    chosen = [int(np.argmin(np.abs(grid - (230, 60, 60)).sum(1)))]   # start from a red
    distance = np.linalg.norm(grid - grid[chosen[0]], axis=1)
    for _ in range(count - 1):
        chosen.append(int(np.argmax(distance)))
        distance = np.minimum(distance, np.linalg.norm(grid - grid[chosen[-1]], axis=1))
    return np.round(grid[chosen]).astype(np.uint8)


def ade_palette(num_classes: int = 150) -> np.ndarray:
    """A ``(256, 3)`` uint8 palette: ``num_classes`` distinct colours, black for 255 and unused rows.

    Generated, not typed in: each colour is the one of a 12x12x12 RGB grid farthest from all the
    colours chosen before it (farthest-point sampling), so the first classes - the most frequent
    ones in ``objectInfo150.txt`` - get the most different colours, and no colour is near black.
    """
    if not 1 <= num_classes <= 255:
        raise ValueError(f"num_classes must be 1..255, got {num_classes}")
    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[:num_classes] = _spread_colours(num_classes)
    return palette


def void_first(mask: torch.Tensor) -> torch.Tensor:
    """Our labels (classes 0..K-1, 255 void) -> the report's (void 0, classes 1..K), for a model
    with K + 1 outputs trained with ``CrossEntropyLoss(ignore_index=0)``."""
    return torch.where(mask == IGNORE_INDEX, torch.zeros_like(mask), mask + 1)


def _names_file(ade_dir: Path, name: str) -> Path | None:
    """``name`` inside ``ADEChallengeData2016`` (where the zip puts it), else beside that folder."""
    for candidate in (ade_dir / name, ade_dir.parent / name):
        if candidate.is_file():
            return candidate
    return None


class ADE20KSegmentation(torch.utils.data.Dataset):
    """ADE20K SceneParsing (150 classes), or its 100 "thing" classes from the instance annotations.

    Args:
        root: folder containing ``ADEChallengeData2016``.
        split: ``"training"`` or ``"validation"`` (ADE's own folder names).
        transforms: a callable ``(image, mask) -> (image, mask)``, e.g. a
            ``torchvision.transforms.v2`` pipeline from :mod:`seg_common.data.transforms`.
        annotations: ``"scene"`` reads ``annotations/`` (L PNGs, classes of ``objectInfo150.txt``);
            ``"instance"`` reads the R channel of ``annotations_instance/`` (RGB PNGs, classes of
            ``instanceInfo100_train.txt``; the G channel, the instance ids, via
            :meth:`read_instance_ids`).
        cache: keep every decoded image and mask in memory after its first read. About 0.8 MB
            per real ADE image (most are about 512 px on the shorter side): fine for the sample
            and the validation split, 16 GB for the whole training split.

    Items are ``(image, mask)``: without transforms, ``image`` is a ``tv_tensors.Image`` uint8
    ``[3, H, W]`` and ``mask`` a ``tv_tensors.Mask`` int64 ``[H, W]`` of class indices
    0..``num_classes - 1`` and 255 where no class is annotated (file value 0). The report's
    void-first labels (101 outputs, ``ignore_index=0``) are ``void_first(mask)``.

    ``classes`` come from the dataset's own list: ``objectInfo150.txt`` (150 names on the real
    data) or ``instanceInfo100_train.txt``; without the latter the instance classes are named
    ``"thing 1"``, ``"thing 2"``, ... by their R value.
    """

    ignore_index = IGNORE_INDEX

    def __init__(
        self,
        root: str | Path,
        split: str = "training",
        transforms: Callable | None = None,
        annotations: str = "scene",
        cache: bool = False,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS} (ADE's folder names), got {split!r}")
        if annotations not in ANNOTATIONS:
            raise ValueError(f"annotations must be 'scene' or 'instance', got {annotations!r}")
        self.root = Path(root)
        self.split = split
        self.transforms = transforms
        self.annotations = annotations
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] | None = {} if cache else None
        self.ade_dir = self.root / ADE_DIR
        if not self.ade_dir.is_dir():
            raise FileNotFoundError(
                f"No ADE20K found: {self.ade_dir} does not exist. Get it with: {DOWNLOAD_HINT}."
            )
        image_dir = self.ade_dir / "images" / split
        self.mask_dir = self.ade_dir / ANNOTATIONS[annotations] / split
        if not image_dir.is_dir():
            raise FileNotFoundError(
                f"{image_dir} does not exist; is the download complete? Get it with: {DOWNLOAD_HINT}."
            )
        if not self.mask_dir.is_dir():
            hint = INSTANCE_HINT if annotations == "instance" else f"Get it with: {DOWNLOAD_HINT}"
            raise FileNotFoundError(f"{self.mask_dir} does not exist. {hint}.")
        self.images = sorted(image_dir.glob("*.jpg"))
        if not self.images:
            raise FileNotFoundError(f"{image_dir} holds no .jpg images. Re-extract ADEChallengeData2016.zip.")
        self.masks = [self.mask_dir / f"{image.stem}.png" for image in self.images]
        for image, mask in zip(self.images, self.masks):
            if not mask.is_file():
                raise FileNotFoundError(
                    f"The image {image} has no annotation: expected {mask}. Re-extract the "
                    f"dataset, or delete the image."
                )
        self.classes = self._read_classes()
        self.num_classes = len(self.classes)
        self._lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
        self._lut[1:self.num_classes + 1] = np.arange(self.num_classes)

    def _read_classes(self) -> tuple[str, ...]:
        if self.annotations == "scene":
            path = _names_file(self.ade_dir, OBJECT_INFO)
            if path is None:
                raise FileNotFoundError(
                    f"{self.ade_dir / OBJECT_INFO} is missing: ADEChallengeData2016.zip ships it. "
                    f"Re-extract the zip (bash download_data.sh ade20k)."
                )
            return read_object_info(path)
        path = _names_file(self.ade_dir, INSTANCE_INFO)
        if path is None:
            return tuple(f"thing {r}" for r in range(1, 101))
        return read_instance_info(path)

    @property
    def palette(self) -> np.ndarray:
        """``(256, 3)`` uint8 colours for this dataset's classes (:func:`ade_palette`)."""
        return ade_palette(self.num_classes)

    def __len__(self) -> int:
        return len(self.images)

    def _open_annotation(self, index: int) -> np.ndarray:
        path = self.masks[index]
        with Image.open(path) as img:
            if self.annotations == "scene" and img.mode != "L":
                hint = (" It looks like an instance annotation (R = category, G = instance): pass "
                        "annotations='instance'." if img.mode in ("RGB", "RGBA") else "")
                raise ValueError(f"Annotation {path} has mode {img.mode}; a SceneParsing annotation is "
                                 f"8-bit grey (L) with class indices.{hint}")
            if self.annotations == "instance" and img.mode != "RGB":
                hint = (" It looks like a SceneParsing annotation: pass annotations='scene'."
                        if img.mode in ("L", "P") else "")
                raise ValueError(f"Annotation {path} has mode {img.mode}; an instance annotation is RGB "
                                 f"(R = category, G = instance id).{hint}")
            return np.asarray(img)

    def read_labels(self, index: int) -> np.ndarray:
        """The file's own ``[H, W]`` uint8 labels of item ``index`` (0 = none, 1..K), validated:
        the SceneParsing values, or the instance annotation's R channel."""
        raw = self._open_annotation(index)
        labels = raw if raw.ndim == 2 else raw[..., 0]
        bad = labels > self.num_classes
        if bad.any():
            values = sorted(int(v) for v in np.unique(labels[bad]))[:10]
            what = "category (R)" if self.annotations == "instance" else "class"
            raise ValueError(
                f"Annotation {self.masks[index]} has {what} values {values} above {self.num_classes}, "
                f"the number of classes in the dataset's list. Is it a label file of this dataset "
                f"(and the list the one that came with it)?"
            )
        return labels

    def read_mask(self, index: int) -> np.ndarray:
        """The ``[H, W]`` uint8 class indices of item ``index``: 0..K-1, and 255 for file value 0."""
        return self._lut[self.read_labels(index)]

    def read_instance_ids(self, index: int) -> np.ndarray:
        """The ``[H, W]`` uint8 instance ids (G channel) of item ``index``; 0 where no object."""
        if self.annotations != "instance":
            raise ValueError("instance ids need annotations='instance'")
        raw = self._open_annotation(index)
        return np.where(raw[..., 0] > 0, raw[..., 1], 0).astype(np.uint8)

    def read_image(self, index: int) -> np.ndarray:
        """The ``[H, W, 3]`` uint8 RGB array of item ``index``."""
        with Image.open(self.images[index]) as img:
            return np.asarray(img.convert("RGB"))

    def _read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return read_pair(self, index, "annotation", " Was one of them resized?")

    def __getitem__(self, index: int):
        return to_item(self, index)

    def __repr__(self) -> str:
        return (f"ADE20KSegmentation(split={self.split!r}, annotations={self.annotations!r}, "
                f"images={len(self)}, classes={self.num_classes})")


def check_layout(root: str | Path, expected: dict[str, int] | None = None) -> list[str]:
    """Count the images of an ``ADEChallengeData2016`` folder and return the problems (empty: complete).

    Prints one line per split: images found and expected (default: the official 20,210 / 2,000).
    Every image must have its SceneParsing annotation, and ``objectInfo150.txt`` must read.
    """
    ade_dir = Path(root)
    expected = OFFICIAL_IMAGES if expected is None else expected
    problems = []
    for split, want in expected.items():
        images = sorted((ade_dir / "images" / split).glob("*.jpg"))
        missing = [i for i in images if not (ade_dir / "annotations" / split / f"{i.stem}.png").is_file()]
        print(f"{split:10s}: {len(images):5d} images (expected {want}), {len(missing)} without annotation")
        if len(images) != want:
            problems.append(f"{ade_dir / 'images' / split} has {len(images)} images, expected {want}")
        if missing:
            problems.append(f"{len(missing)} {split} images have no annotation, e.g. {missing[0].name}")
    try:
        read_object_info(ade_dir / OBJECT_INFO)
    except (OSError, ValueError) as error:
        problems.append(f"{OBJECT_INFO}: {error}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check an ADEChallengeData2016 folder.")
    parser.add_argument("--check", type=Path, required=True, metavar="ADE_DIR",
                        help="the ADEChallengeData2016 folder (holding images/ and annotations/)")
    parser.add_argument("--expect", type=int, nargs=2, metavar=("TRAINING", "VALIDATION"),
                        help="images expected per split (default: the official 20210 2000)")
    args = parser.parse_args(argv)
    expected = dict(zip(SPLITS, args.expect)) if args.expect else None
    problems = check_layout(args.check, expected)
    for problem in problems:
        print(f"incomplete: {problem}", file=sys.stderr)
    if not problems:
        print(f"ADE20K in {args.check} is complete.")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
