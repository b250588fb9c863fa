"""PASCAL VOC 2012 segmentation: class names, the palette, and the dataset.

On disk (``root`` is the folder that contains ``VOCdevkit``)::

    VOCdevkit/VOC2012/JPEGImages/<id>.jpg
    VOCdevkit/VOC2012/SegmentationClass/<id>.png      8-bit palette PNG, 0..20 and 255 = void
    VOCdevkit/VOC2012/SegmentationClassAug/<id>.png   SBD-style grayscale index PNG (optional)
    VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val,trainval}.txt   (+ train_aug.txt)

A palette PNG stores one *index* per pixel plus a table of colours; reading the indices gives the
class labels directly, with 255 on the void border around every object.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image
from torchvision import tv_tensors

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "potted plant", "sheep", "sofa",
    "train", "tv/monitor",
)
NUM_CLASSES = len(VOC_CLASSES)
IGNORE_INDEX = 255


def voc_palette(n: int = 256) -> np.ndarray:
    """The VOC colour map as an ``(n, 3)`` uint8 array (the devkit's ``labelcolormap.m``).

    The bits of the index are spread over the colour channels, high bits first, so that
    neighbouring class indices get clearly different colours. Index 255 (void) comes out as
    (224, 224, 192), the cream colour of the void border.
    """
    palette = np.zeros((n, 3), dtype=np.uint8)
    for index in range(n):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette[index] = (r, g, b)
    return palette


VOC_PALETTE = voc_palette()
# The 21 class colours as RGB lists, in the same form as the d2l book's VOC_COLORMAP.
VOC_COLORMAP = [list(map(int, rgb)) for rgb in VOC_PALETTE[:NUM_CLASSES]]
VOID_COLOR = tuple(int(v) for v in VOC_PALETTE[IGNORE_INDEX])

SPLIT_DIR = Path("ImageSets") / "Segmentation"
DOWNLOAD_HINT = "bash download_data.sh voc   (or `bash download_data.sh sample` for the offline sample)"


class VOCSegmentation(torch.utils.data.Dataset):
    """PASCAL VOC 2012 semantic segmentation.

    Args:
        root: folder containing ``VOCdevkit/VOC2012``.
        split: ``"train"``, ``"val"``, ``"trainval"``, or ``"train_aug"`` - the 10,582-image
            SBD-augmented training set, whose masks come from ``SegmentationClassAug``.
            Any ``<name>.txt`` in ``ImageSets/Segmentation`` works; a name ending in ``_aug``
            reads ``SegmentationClassAug``.
        transforms: a callable ``(image, mask) -> (image, mask)``, e.g. a
            ``torchvision.transforms.v2`` pipeline from :mod:`seg_common.data.transforms`.
        cache: keep every decoded image and mask in memory after its first read (decoding is
            about half of the loading time). About 0.75 MB per VOC image: worth it for the small
            sample, too much for the 10,582 images of ``train_aug``.

    Items are ``(image, mask)``: without transforms, ``image`` is a ``tv_tensors.Image`` uint8
    ``[3, H, W]`` and ``mask`` a ``tv_tensors.Mask`` int64 ``[H, W]`` of class indices 0..20 and
    255 for void.
    """

    classes = VOC_CLASSES
    num_classes = NUM_CLASSES
    ignore_index = IGNORE_INDEX

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transforms: Callable | None = None,
        cache: bool = False,
    ) -> None:
        self.root = Path(root)
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] | None = {} if cache else None
        self.split = split
        self.transforms = transforms
        self.voc_dir = self.root / "VOCdevkit" / "VOC2012"
        if not self.voc_dir.is_dir():
            raise FileNotFoundError(
                f"No VOC 2012 found: {self.voc_dir} does not exist. "
                f"Fetch it with: {DOWNLOAD_HINT}."
            )
        split_file = self.voc_dir / SPLIT_DIR / f"{split}.txt"
        if not split_file.is_file():
            available = sorted(p.stem for p in (self.voc_dir / SPLIT_DIR).glob("*.txt"))
            hint = (
                " The augmented set needs `bash download_data.sh voc-aug`."
                if split.endswith("_aug") else ""
            )
            raise FileNotFoundError(
                f"Split file {split_file} is missing. Available splits: "
                f"{', '.join(available) or 'none'}.{hint}"
            )
        self.mask_dir = self.voc_dir / (
            "SegmentationClassAug" if split.endswith("_aug") else "SegmentationClass"
        )
        self.ids = [line.strip() for line in split_file.read_text().splitlines() if line.strip()]
        if not self.ids:
            raise ValueError(f"Split file {split_file} lists no image ids.")
        self.images = [self.voc_dir / "JPEGImages" / f"{i}.jpg" for i in self.ids]
        self.masks = [self.mask_dir / f"{i}.png" for i in self.ids]
        for image, mask in zip(self.images, self.masks):
            if not image.is_file():
                raise FileNotFoundError(
                    f"{split_file.name} lists {image.stem} but its image {image} is missing."
                )
            if not mask.is_file():
                raise FileNotFoundError(
                    f"The image {image} has no mask: expected {mask}. Re-extract the dataset "
                    f"or remove {image.stem} from {split_file}."
                )

    def __len__(self) -> int:
        return len(self.ids)

    def read_mask(self, index: int) -> np.ndarray:
        """The raw ``[H, W]`` uint8 label array of item ``index``, validated."""
        return read_label_png(self.masks[index], self.num_classes)

    def read_image(self, index: int) -> np.ndarray:
        """The ``[H, W, 3]`` uint8 RGB array of item ``index``."""
        with Image.open(self.images[index]) as img:
            return np.asarray(img.convert("RGB"))

    def _read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return read_pair(self, index)

    def __getitem__(self, index: int):
        return to_item(self, index)

    def __repr__(self) -> str:
        return (
            f"VOCSegmentation(split={self.split!r}, images={len(self)}, "
            f"masks={self.mask_dir.name})"
        )


def read_label_png(path: str | Path, num_classes: int, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Read a label PNG as class indices and check every value is a class or ``ignore_index``.

    Works for palette PNGs (``P`` mode: the stored indices are returned, not the colours) and for
    grayscale index PNGs (``L`` mode, as SBD's ``SegmentationClassAug``).
    """
    path = Path(path)
    with Image.open(path) as img:
        if img.mode not in ("P", "L"):
            raise ValueError(
                f"Mask {path} has mode {img.mode}; expected a palette (P) or grayscale (L) PNG of "
                "class indices. An RGB-coloured mask must be mapped back to indices first."
            )
        mask = np.asarray(img)
    bad = (mask >= num_classes) & (mask != ignore_index)
    if bad.any():
        values = sorted(int(v) for v in np.unique(mask[bad]))[:10]
        raise ValueError(
            f"Mask {path} has values {values} that are neither a class index 0..{num_classes - 1} "
            f"nor {ignore_index} (void). Is it a label file of this dataset?"
        )
    return mask


def read_pair(dataset, index: int, mask_word: str = "mask", hint: str = "") -> tuple[np.ndarray, np.ndarray]:
    """``(image, mask)`` arrays of item ``index`` for the file-backed datasets (``dataset.read_image``,
    ``dataset.read_mask``), checked to be the same size and kept in ``dataset._cache`` when it has one."""
    cache = dataset._cache
    if cache is not None and index in cache:
        return cache[index]
    image, mask = dataset.read_image(index), dataset.read_mask(index)
    if image.shape[:2] != mask.shape:
        raise ValueError(
            f"Image {dataset.images[index]} is {image.shape[1]}x{image.shape[0]} but its {mask_word} "
            f"{dataset.masks[index]} is {mask.shape[1]}x{mask.shape[0]} (width x height); "
            f"image and {mask_word} must have the same size.{hint}"
        )
    if cache is not None:
        cache[index] = (image, mask)
    return image, mask


def to_item(dataset, index: int):
    """``dataset[index]`` for the file-backed datasets (VOC, Cityscapes, ADE20K): reads the arrays
    with ``dataset._read``, wraps them as ``tv_tensors`` (Image uint8 [3, H, W], Mask [H, W]) and
    applies ``dataset.transforms`` to the pair; the item's mask is int64.

    The mask goes through the transforms as uint8, as it is stored (labels 0..254 and 255), and
    becomes int64 at the end (``to_model_input``'s ``ToDtype``, or here): scaling, rotating and
    cropping a label map moves an eighth of the bytes. A full Cityscapes frame scaled by 2 before
    its crop is a 4096x2048 mask: 8 MB instead of 64 MB in every loader worker. Nearest-neighbour
    resizing, flips, crops and the 255 fill give the same labels in either type."""
    if not -len(dataset) <= index < len(dataset):
        raise IndexError(f"index {index} is out of range for {len(dataset)} items")
    image, mask = dataset._read(index % len(dataset))
    image_t = tv_tensors.Image(torch.from_numpy(image.copy()).permute(2, 0, 1))
    # A copy (transforms must not write into the cached array); label maps are stored as uint8.
    mask_t = tv_tensors.Mask(torch.from_numpy(mask.astype(np.uint8 if mask.dtype == np.uint8 else np.int64)))
    if dataset.transforms is not None:
        image_t, mask_t = dataset.transforms(image_t, mask_t)
    if isinstance(mask_t, torch.Tensor) and mask_t.dtype == torch.uint8:   # no ToDtype in the transforms
        mask_t = mask_t.to(torch.int64)
    return image_t, mask_t
