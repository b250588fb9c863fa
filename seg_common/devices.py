"""Where the work runs, and how to run it fast there: the device, the channels-last memory layout,
cuDNN's algorithm search. (The number format - bfloat16, float16, float32 - is :mod:`seg_common.precision`.)"""
from __future__ import annotations

import contextlib

import torch


def default_device() -> torch.device:
    """The best available device: CUDA, then Apple's MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def use_channels_last(channels_last: bool | str, device: torch.device) -> bool:
    """``"auto"``: the channels-last memory layout on CPUs and CUDA GPUs, where convolutions run
    faster in it (measured in notebook 05), not on MPS."""
    if channels_last == "auto":
        return device.type in ("cpu", "cuda")
    return bool(channels_last)



@contextlib.contextmanager
def cudnn_benchmark(device: torch.device):
    """On CUDA, let cuDNN time its convolution algorithms for the shapes it meets and keep the
    fastest (``torch.backends.cudnn.benchmark``): worth it for training, whose crops all have one
    size; the previous setting comes back afterwards, since whole-image evaluation meets a new size
    at nearly every image and would time them all again."""
    if device.type != "cuda":
        yield
        return
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous
