"""Joint image + mask transforms on ``torchvision.transforms.v2``.

v2 transforms take ``(image, mask)`` together and draw one set of random parameters for both, so a
crop, flip, scale or rotation moves the mask exactly as it moves the image. ``tv_tensors.Mask`` is
resized with nearest-neighbour (labels are never blended) and colour transforms leave it alone.
Where geometry creates new pixels (padding, the corners of a rotation), images get 0 and masks get
255, the void label, so those pixels are ignored by the loss and the metrics.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FILL = {tv_tensors.Image: 0, tv_tensors.Mask: 255}


def _size(crop_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(crop_size, int):
        return crop_size, crop_size
    height, width = crop_size
    return int(height), int(width)


def to_model_input(normalize: bool = True) -> list[v2.Transform]:
    """uint8 image -> float32 in [0, 1] (optionally ImageNet-normalised); mask -> int64."""
    steps: list[v2.Transform] = [
        v2.ToImage(),
        v2.ToDtype({tv_tensors.Image: torch.float32, tv_tensors.Mask: torch.int64, "others": None},
                   scale=True),
    ]
    if normalize:
        steps.append(v2.Normalize(IMAGENET_MEAN, IMAGENET_STD))
    return steps


def train_transforms(
    crop_size: int | Sequence[int] = (320, 480),
    *,
    base_size: int = 400,
    scale_range: tuple[float, float] = (0.5, 2.0),
    rotation: float = 10.0,
    hflip: float = 0.5,
    blur: float = 0.0,
    color_jitter: float = 0.2,
    normalize: bool = True,
) -> v2.Compose:
    """The training preset: scale, rotate, flip, pad + random crop, photometric noise.

    Args:
        crop_size: ``(height, width)`` of the training crop (an int means square).
        base_size: the shorter side is resized to a random length in
            ``[scale_range[0] * base_size, scale_range[1] * base_size]`` (torchvision's reference
            recipe; VOC's shorter sides are mostly 333-375 px).
        rotation: maximum rotation in degrees (0 disables it).
        hflip: probability of a horizontal flip.
        blur: probability of a Gaussian blur of the image (0 disables it).
        color_jitter: strength of brightness/contrast/saturation jitter (0 disables it).
        normalize: apply the ImageNet mean/std (what pretrained backbones expect).
    """
    if not 0 < scale_range[0] <= scale_range[1]:
        raise ValueError(f"scale_range must be (low, high) with 0 < low <= high, got {scale_range}")
    steps: list[v2.Transform] = [v2.ToImage()]
    steps.append(v2.RandomResize(int(scale_range[0] * base_size), int(scale_range[1] * base_size) + 1))
    if rotation > 0:
        steps.append(v2.RandomRotation(rotation, fill=FILL))
    if hflip > 0:
        steps.append(v2.RandomHorizontalFlip(hflip))
    steps.append(v2.RandomCrop(_size(crop_size), pad_if_needed=True, fill=FILL))
    if color_jitter > 0:
        steps.append(v2.ColorJitter(color_jitter, color_jitter, color_jitter))
    if blur > 0:
        steps.append(v2.RandomApply([v2.GaussianBlur(5, sigma=(0.1, 2.0))], p=blur))
    return v2.Compose(steps + to_model_input(normalize)[1:])


def eval_transforms(normalize: bool = True, *, size: int | None = None) -> v2.Compose:
    """The evaluation preset: the whole image, converted for the model.

    By default the image keeps its own size (the protocol of the papers). ``size`` first resizes
    the shorter side to ``size`` pixels (the mask with nearest-neighbour, so labels stay labels): a
    cheaper, coarser protocol for small hardware, matching training on images scaled the same way.
    """
    if size is None:
        return v2.Compose(to_model_input(normalize))
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    return v2.Compose([v2.ToImage(), v2.Resize(int(size))] + to_model_input(normalize)[1:])


def denormalize(image: torch.Tensor) -> torch.Tensor:
    """Undo the ImageNet normalisation: ``[..., 3, H, W]`` -> values in [0, 1] for display."""
    mean = torch.tensor(IMAGENET_MEAN, device=image.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=image.device).view(3, 1, 1)
    return (image * std + mean).clamp(0, 1)


def pad_collate(batch: Sequence[tuple[torch.Tensor, torch.Tensor]], multiple: int = 1):
    """Stack whole images of different sizes into one batch by padding them to the largest size.

    Images are padded with 0 and masks with 255 (void) on the right and bottom, so the padding
    counts for nothing in the loss and the metrics. ``multiple`` rounds the size up (e.g. 32).
    Use it as ``DataLoader(..., collate_fn=pad_collate)`` for evaluation on whole images.
    """
    height = max(image.shape[-2] for image, _ in batch)
    width = max(image.shape[-1] for image, _ in batch)
    height, width = -(-height // multiple) * multiple, -(-width // multiple) * multiple
    images = batch[0][0].new_zeros((len(batch), batch[0][0].shape[0], height, width))
    masks = batch[0][1].new_full((len(batch), height, width), 255)
    for i, (image, mask) in enumerate(batch):
        images[i, :, : image.shape[-2], : image.shape[-1]] = image
        masks[i, : mask.shape[-2], : mask.shape[-1]] = mask
    return images, masks
