"""Which number format a device trains and evaluates in: mixed precision where it pays.

Mixed precision runs the convolutions and matrix products in a 16-bit format inside
``torch.autocast`` (weights, optimizer and loss stay float32): half the bytes per activation, and
much faster arithmetic on hardware that has 16-bit units. The engine uses it by default where it
is measured to pay and not to hurt:

* **CUDA**: bfloat16 on GPUs that support it (Ampere and newer: A100, RTX 30xx/40xx, L4, H100);
  float16 with a gradient scaler on older ones (T4, V100, P100), since float16's small range lets
  small gradients underflow to 0 unless the loss is scaled up first.
* **CPU**: bfloat16 on processors with native bfloat16 instructions (AVX512-BF16 or AMX: recent
  Intel Xeon and AMD EPYC/Ryzen); float32 elsewhere, where bfloat16 is emulated and slower.
* **MPS** (Apple): float32.

``bench/precision_cpu.py`` and notebook 05 measure the speed-up and the accuracy of both formats
side by side.
"""
from __future__ import annotations

import torch

AMP_CHOICES = ("auto", True, False, "bf16", "fp16")


def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bfloat16 natively (AVX512-BF16 or AMX tiles)."""
    cpu = getattr(torch, "cpu", None)
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        check = getattr(cpu, probe, None)
        try:
            if check is not None and check():
                return True
        except Exception:  # an older torch without the probe's kernel
            continue
    return False


def autocast_dtype(device: torch.device | str, amp: bool | str = "auto") -> torch.dtype | None:
    """The 16-bit dtype to autocast to on ``device``, or None for float32.

    ``amp``: ``"auto"`` (the default: see the module docstring), ``True`` (mixed precision in the
    best format the device has, even where it is emulated), ``False`` (float32), or ``"bf16"`` /
    ``"fp16"`` to force one format.
    """
    if amp not in AMP_CHOICES:
        raise ValueError(f"amp must be one of {AMP_CHOICES}, got {amp!r}")
    device = torch.device(device)
    if amp is False:
        return None
    if amp == "bf16":
        return torch.bfloat16
    if amp == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu":
        return torch.bfloat16 if (amp is True or cpu_has_native_bf16()) else None
    return None


def needs_grad_scaler(device: torch.device | str, dtype: torch.dtype | None) -> bool:
    """float16 on CUDA needs a gradient scaler; bfloat16 has float32's range and does not."""
    return dtype == torch.float16 and torch.device(device).type == "cuda"


def describe(device: torch.device | str, amp: bool | str = "auto") -> str:
    """One line for a notebook: the device and the format it trains in."""
    dtype = autocast_dtype(device, amp)
    name = {None: "float32", torch.bfloat16: "bfloat16 mixed precision",
            torch.float16: "float16 mixed precision (with a gradient scaler)"}[dtype]
    device = torch.device(device)
    if dtype is None and amp == "auto" and device.type == "cpu":
        # Say why: a learner comparing with the committed outputs (trained in bfloat16) sees other
        # digits and longer times on such a CPU.
        name += " (this CPU has no native bfloat16: emulated, it would be slower)"
    return f"{device.type}: {name}"
