"""A feature cache for a frozen backbone: compute its features once, train the head on them.

With the backbone frozen (its weights never change) and no augmentation (each image is always the
same input), ``backbone(image)`` is the same tensor in every epoch. Computing it once and training
the head on the stored tensors gives the same training as running the backbone every step (up to
float rounding), at the cost of the head alone.

A cache is only valid for the backbone, input size and image list it was built from. Each cache
carries a **fingerprint** of the three; :func:`load_feature_cache` compares it with the one the
current run expects and refuses a stale cache with :class:`StaleFeatureCache`, which names what
differs and the fix. Nothing trains silently on features of another backbone or other images.

On disk (``torch.save``): ``{"fingerprint": dict, "features": [tensor per level], "targets":
uint8 tensor}``, loaded memory-mapped (pages are read from disk as the batches need them, so a
cache larger than the RAM can still be trained on). The features are kept in float32: the report's AlexNet at 240x240 gives
256x6x6 floats, 37 KB per image (0.75 GB for ADE20K's 20,210 training images); the 240x240 uint8
targets take 58 KB per image more.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

FORMAT_VERSION = 1


class StaleFeatureCache(ValueError):
    """A feature cache built for another backbone, input size or image list."""


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def weights_digest(module: nn.Module) -> str:
    """A short hash of every parameter and buffer of ``module`` (names, shapes and values)."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def fingerprint(backbone: nn.Module, input_size: Sequence[int], images: Iterable[str | Path]) -> dict:
    """What a feature cache depends on: the backbone (architecture and weights), the input size
    ``(height, width)`` and the image list (file names, in order; the folder may move)."""
    names = [Path(image).name for image in images]
    return {
        "format": FORMAT_VERSION,
        "architecture": _sha(repr(backbone).encode()),
        "weights": weights_digest(backbone),
        "input_size": [int(s) for s in input_size],
        "images": len(names),
        "image_list": _sha("\n".join(names).encode()),
    }


def _levels(output) -> tuple[torch.Tensor, ...]:
    return tuple(output) if isinstance(output, (tuple, list)) else (output,)


@dataclass
class FeatureCache:
    """The stored features of a frozen backbone.

    Attributes:
        features: one float32 tensor ``[N, C, h, w]`` per level the backbone returns (one for a
            plain backbone; several for a backbone that returns a tuple, e.g. for skip connections).
        targets: ``[N, H, W]`` uint8 labels, as the dataset gave them.
        fingerprint: see :func:`fingerprint`.
    """

    features: tuple[torch.Tensor, ...]
    targets: torch.Tensor
    fingerprint: dict

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def nbytes(self) -> int:
        return sum(f.numel() * f.element_size() for f in self.features) + self.targets.numel()

    def dataset(self) -> "CachedFeatures":
        return CachedFeatures(self)

    def save(self, path: str | Path) -> Path:
        """Write the cache to ``path`` (through a temporary file: a crash leaves no half file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        torch.save({"fingerprint": self.fingerprint, "features": list(self.features),
                    "targets": self.targets}, tmp)
        tmp.replace(path)
        return path


class CachedFeatures(Dataset):
    """Items ``(features, target)`` of a :class:`FeatureCache`: ``features`` is a tensor
    ``[C, h, w]`` (or a tuple of them, one per level), ``target`` an int64 ``[H, W]``."""

    def __init__(self, cache: FeatureCache) -> None:
        self.cache = cache

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, index: int):
        levels = tuple(f[index] for f in self.cache.features)
        return (levels[0] if len(levels) == 1 else levels), self.cache.targets[index].long()


@torch.no_grad()
def build_feature_cache(backbone: nn.Module, dataset: Dataset, images: Sequence[str | Path], *,
                        input_size: Sequence[int], batch_size: int = 16,
                        device: torch.device | str = "cpu") -> FeatureCache:
    """Run the frozen ``backbone`` (in eval mode) once over ``dataset`` (items ``(image, target)``,
    images ``[3, H, W]`` of ``input_size``, no random augmentation) and keep its outputs.

    ``images`` names the dataset's image files in item order (for the fingerprint)."""
    if len(images) != len(dataset):
        raise ValueError(f"{len(images)} image names for a dataset of {len(dataset)} items")
    was_training = backbone.training
    backbone.eval()
    levels: list[list[torch.Tensor]] = []
    targets = []
    for batch, target in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        if tuple(batch.shape[-2:]) != tuple(input_size):
            raise ValueError(f"images of {tuple(batch.shape[-2:])} reached the backbone; the cache is "
                             f"for input_size {tuple(input_size)}: resize them in the dataset's transforms")
        outputs = _levels(backbone(batch.to(device)))
        if not levels:
            levels = [[] for _ in outputs]
        for store, output in zip(levels, outputs):
            store.append(output.float().cpu())
        if int(target.min()) < 0 or int(target.max()) > 255:
            raise ValueError("targets must lie in 0..255 to be stored as uint8")
        targets.append(target.to(torch.uint8))
    backbone.train(was_training)
    return FeatureCache(tuple(torch.cat(store) for store in levels), torch.cat(targets),
                        fingerprint(backbone, input_size, images))


def _differences(saved: dict, expected: dict) -> list[str]:
    what = {"architecture": "backbone architecture", "weights": "backbone weights",
            "input_size": "input size", "images": "number of images", "image_list": "image list",
            "format": "cache format"}
    return [f"{what.get(key, key)}: cache {saved.get(key)!r}, this run {expected.get(key)!r}"
            for key in expected if saved.get(key) != expected.get(key)]


def load_feature_cache(path: str | Path, expected: dict) -> FeatureCache:
    """Read the cache at ``path``; refuse it (:class:`StaleFeatureCache`) unless its fingerprint
    equals ``expected`` (:func:`fingerprint` of the current backbone, input size and images)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No feature cache at {path}; build one with build_feature_cache "
                                f"(or feature_cache, which builds and saves it).")
    stored = torch.load(path, map_location="cpu", weights_only=True, mmap=True)   # read on demand
    differences = _differences(stored.get("fingerprint", {}), expected)
    if differences:
        raise StaleFeatureCache(
            f"The feature cache {path} was built for another setting - "
            + "; ".join(differences)
            + ". Training on it would silently use the wrong features. Delete the file (or pass "
              "rebuild=True to feature_cache) to compute the features again, or point the run at "
              "the cache of its own setting."
        )
    return FeatureCache(tuple(stored["features"]), stored["targets"], stored["fingerprint"])


def feature_cache(path: str | Path, backbone: nn.Module, dataset: Dataset, images: Sequence[str | Path], *,
                  input_size: Sequence[int], batch_size: int = 16, device: torch.device | str = "cpu",
                  rebuild: bool = False) -> FeatureCache:
    """The cache at ``path`` when it matches this backbone, input size and image list; built and
    saved there when missing (or when ``rebuild=True``); a stale one is refused
    (:class:`StaleFeatureCache`), never used or overwritten silently."""
    path = Path(path)
    if path.is_file() and not rebuild:
        return load_feature_cache(path, fingerprint(backbone, input_size, images))
    cache = build_feature_cache(backbone, dataset, images, input_size=input_size,
                                batch_size=batch_size, device=device)
    cache.save(path)
    return cache
