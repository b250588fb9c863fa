"""Inference: class maps and logits by the evaluation protocols (whole image, sliding window, flip).

``infer_logits`` is the one place that runs a trained model on whole images; ``predict`` turns one
image into a class map, in the number format and memory layout that training used.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import dryrun
from .devices import use_channels_last
from .precision import autocast_dtype


def _window_starts(length: int, window: int, stride: int) -> list[int]:
    """Start offsets of windows that cover ``[0, length)``; the last one ends exactly at ``length``."""
    starts = list(range(0, max(length - window, 0) + 1, stride))
    if starts[-1] + window < length:
        starts.append(length - window)
    return starts


@torch.inference_mode()
def infer_logits(model: nn.Module, images: torch.Tensor, *, window: Sequence[int] | None = None,
                 stride: Sequence[int] | None = None, flip: bool = False) -> torch.Tensor:
    """Logits ``[B, K, H, W]`` of ``images`` ``[B, 3, H, W]`` by one of the evaluation protocols:

    * ``window=None``: the whole image in one pass;
    * ``window=(h, w)``: a sliding window (usually the training crop), moved by ``stride``
      (default: 2/3 of the window, as in hszhao/semseg); the logits of overlapping windows are
      averaged. Images smaller than the window are padded with 0 (the mean colour once
      normalised) and the padding is cut off again. Memory then depends on the window, not on
      the image: the point of the protocol for large images on small GPUs;
    * ``flip=True``: also the horizontally flipped image (or window), its logits flipped back and
      averaged with the unflipped ones - as hszhao/semseg does inside each window.

    Logits are averaged (semseg averages softmax probabilities instead; the argmax rarely differs).
    One full-size logit map is kept, whatever the protocol: the sliding window bounds the
    network's intermediate activations, not the output. The model must be in eval mode
    (``predict`` / ``evaluate`` set it).
    """
    if window is None:
        return _forward(model, images, flip)
    (wh, ww), (height, width) = (int(window[0]), int(window[1])), images.shape[-2:]
    sh, sw = (int(stride[0]), int(stride[1])) if stride is not None else (math.ceil(wh * 2 / 3), math.ceil(ww * 2 / 3))
    if min(wh, ww, sh, sw) < 1:
        raise ValueError(f"window and stride must be positive, got {window} and {stride}")
    padded = F.pad(images, (0, max(ww - width, 0), 0, max(wh - height, 0)))
    total = counts = None
    for top in _window_starts(padded.shape[-2], wh, sh):
        for left in _window_starts(padded.shape[-1], ww, sw):
            logits = _forward(model, padded[..., top:top + wh, left:left + ww], flip)
            if total is None:
                total = logits.new_zeros(logits.shape[:2] + padded.shape[-2:])
                counts = logits.new_zeros(padded.shape[-2:])
            total[..., top:top + wh, left:left + ww] += logits
            counts[top:top + wh, left:left + ww] += 1
    return total.div_(counts)[..., :height, :width]


def _forward(model: nn.Module, images: torch.Tensor, flip: bool) -> torch.Tensor:
    """The model's logits, averaged with those of the mirrored input mirrored back if ``flip``."""
    logits = _model_logits(model, images)
    if flip:
        logits = (logits + _model_logits(model, images.flip(-1)).flip(-1)) / 2
    return logits


def _model_logits(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """``model(images)``; in a dry run with ``SEG_DRY_RUN_SCALE`` the model sees the images shrunk and
    its logits are scaled back to the images' size (seg_common.dryrun)."""
    small, _ = dryrun.shrink(images)
    logits = model(small)
    if small.shape[-2:] != images.shape[-2:] and torch.is_tensor(logits) and logits.ndim == 4:
        logits = F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)
    return logits


@torch.inference_mode()
def predict(model: nn.Module, image: torch.Tensor, device: torch.device | str | None = None,
            amp: bool | str = "auto", channels_last: bool | str = "auto") -> torch.Tensor:
    """Class map of one image: ``[3, H, W]`` (normalised as in training) -> ``[H, W]`` int64 on
    the CPU, at the image's own size, in the number format and memory layout :func:`evaluate` uses
    (``amp``, ``channels_last``; the model is converted to that layout in place, as :func:`fit`
    does, so a trained model and its reloaded copy give the same classes). Puts the model in eval
    mode."""
    if image.ndim != 3:
        raise ValueError(f"predict takes one image [3, H, W], got shape {tuple(image.shape)}; "
                         "for a batch call the model and take argmax(1)")
    if device is None:
        device = next(model.parameters()).device
    device = torch.device(device)
    dtype = autocast_dtype(device, amp)
    model.eval()
    batch = image[None].to(device)
    if use_channels_last(channels_last, device):
        model.to(memory_format=torch.channels_last)
        batch = batch.contiguous(memory_format=torch.channels_last)
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        logits = _model_logits(model, batch)
    return logits.float().argmax(1)[0].cpu()
