"""How much memory this process uses: now, at its peak, and the peak since a reset.

The engine records the peak of every epoch with these (``history[i]["peak_memory_mb"]``), so that
memory that grows from epoch to epoch - a leak, or validation without ``no_grad`` - shows up in the
history instead of as an out-of-memory crash hours later. On a CUDA device the numbers come from
PyTorch's allocator; on the CPU from the operating system (Linux: ``/proc/self``; elsewhere
``psutil`` when installed, else ``getrusage``, which cannot be reset).
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

_STATUS = Path("/proc/self/status")


def _status_mb(field: str) -> float | None:
    if _STATUS.is_file():
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 2**10                      # kB
    return None


def rss_mb() -> float | None:
    """This process's resident memory now, in MB (None where the OS does not say)."""
    now = _status_mb("VmRSS")
    if now is not None:
        return now
    try:
        import psutil
        return psutil.Process().memory_info().rss / 2**20
    except Exception:
        return None


def peak_rss_mb() -> float | None:
    """This process's peak resident memory in MB, or None where the OS does not say.

    On Linux this is ``VmHWM`` from ``/proc/self/status``, which starts afresh when a program is
    executed (and at :func:`reset_peak_rss`). ``getrusage``'s ``ru_maxrss`` does not: a child
    started from a large notebook kernel inherits the kernel's peak, which would hide everything
    the child allocates below it.
    """
    peak = _status_mb("VmHWM")
    if peak is not None:
        return peak
    try:
        import resource
    except ImportError:                                    # Windows
        try:
            import psutil
            return psutil.Process().memory_info().peak_wset / 2**20
        except Exception:
            return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10   # bytes on macOS, KB elsewhere


def reset_peak_rss() -> bool:
    """Start the peak resident memory afresh (Linux 4.0+: ``/proc/self/clear_refs``). Returns
    whether it could; where it cannot, :func:`peak_rss_mb` keeps the peak since the start."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def reset_peak(device: torch.device) -> bool:
    """Reset the peak memory of ``device`` (CUDA: the allocator's; CPU: the process's). Returns
    whether the next :func:`peak_mb` is the peak since now (True) or since the start (False)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return True
    return reset_peak_rss()


def peak_mb(device: torch.device) -> float | None:
    """The peak memory of ``device`` since :func:`reset_peak`: CUDA max allocated, or the
    process's peak resident memory on the CPU (None where unknown)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return peak_rss_mb()
