"""Where the work runs, and how to run it fast there: the device, the channels-last memory layout,
cuDNN's algorithm search. (The number format - bfloat16, float16, float32 - is :mod:`seg_common.precision`.)"""
from __future__ import annotations

import contextlib
import ctypes
import platform
import sys

import torch

_allocator_kept = None      # the answer of keep_freed_memory, once asked


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



def keep_freed_memory(device: torch.device) -> bool:
    """On the CPU under Linux (glibc), let the process keep the memory it frees for its next
    allocations instead of handing it back to the operating system.

    A training step allocates and frees the same large activation buffers again and again. By
    default glibc serves each large block (above a threshold that starts at 128 kB and adapts up to
    32 MB) with a fresh ``mmap`` and gives it back with ``munmap``, and trims freed memory at the
    top of its heap: every step then pays the kernel for new, zeroed pages - on 2 cores about a
    sixth of the CPU time went into system calls. Two ``mallopt`` settings (no ``mmap`` for large blocks;
    trim only above 1 GB of free memory) made a from-scratch U-Net step 1.32x faster through
    ``train_one_epoch`` (216 -> 164 ms, batch 4, 128x128; ``bench/cpu_allocator.py``), with the
    same numbers: only where memory comes from changes. The process's resident memory then stays
    near its peak instead of shrinking between steps. Process-wide, set once; returns whether it is
    in effect.
    Elsewhere (GPUs, macOS, Windows, musl) it does nothing: CUDA has its own caching allocator.
    """
    global _allocator_kept
    if device.type != "cpu":
        return False
    if _allocator_kept is None:
        _allocator_kept = False
        if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
            try:
                libc = ctypes.CDLL("libc.so.6")
                m_trim_threshold, m_mmap_max = -1, -4              # from glibc's malloc.h
                _allocator_kept = bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**30))
            except (OSError, AttributeError):
                pass
    return _allocator_kept


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
