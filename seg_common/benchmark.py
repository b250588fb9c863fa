"""Time and peak memory of one training step, measured so that the numbers can be trusted.

``measure_step(model, batch_size, crop)`` times forward + backward + optimizer step on random data
and reports the memory that step needed:

* on a CUDA GPU: ``torch.cuda.max_memory_allocated`` after resetting the peak, in this process;
* on the CPU: the peak resident memory (``ru_maxrss``) of a **fresh child process** that builds
  the model and trains, minus the same process's peak right after importing torch. A peak
  measured inside a notebook would also count everything the notebook allocated earlier, and
  it can only grow, so it could never show a smaller batch needing less.

Both numbers include the weights, their gradients, the optimizer's state and the activations kept
for the backward pass. Run ``python -m seg_common.benchmark --help`` for the command line.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from . import dryrun
from .losses import cross_entropy, with_aux
from .memory import peak_rss_mb
from .models import MODELS, build_model

OPTIMIZERS = ("sgd", "adam")


def _make_optimizer(name: str, params) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=1e-3)
    if name == "adam":
        return torch.optim.Adam(params, lr=1e-3)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")


def _train_steps(model_name: str, batch_size: int, crop: Sequence[int], optimizer: str, steps: int,
                 num_classes: int, device: torch.device, seed: int) -> float:
    torch.manual_seed(seed)
    model = build_model(model_name, num_classes=num_classes).to(device).train()
    opt = _make_optimizer(optimizer, model.parameters())
    x = torch.randn(batch_size, 3, *crop, device=device)
    y = torch.randint(0, num_classes, (batch_size, *crop), device=device)
    seconds = []
    warmup = dryrun.warmup_passes()
    for _ in range(steps + warmup):             # the first step warms up (allocations, kernels)
        started = time.perf_counter()
        loss = with_aux(cross_entropy)(model(x), y)          # PSPNet's auxiliary head counts too
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds.append(time.perf_counter() - started)
    return sum(seconds[warmup:]) / steps


def measure_step(model: str, batch_size: int, crop: Sequence[int] = (96, 96), *, optimizer: str = "sgd",
                 steps: int = 2, num_classes: int = 21, device: str | torch.device | None = None,
                 seed: int = 0) -> dict[str, Any]:
    """Seconds per training step and the memory it needs, for ``model`` (a name in ``MODELS``).

    Returns ``{"model", "batch_size", "crop", "optimizer", "device", "seconds_per_step",
    "peak_mb", "measure"}``; ``measure`` says what ``peak_mb`` is ("cuda max allocated" or "process
    peak RSS above the idle process"). ``peak_mb`` is None where the OS gives no peak.
    """
    if model not in MODELS:
        raise ValueError(f"Unknown model {model!r}. Choose one of: {', '.join(sorted(MODELS))}.")
    if batch_size < 1 or steps < 1:
        raise ValueError(f"batch_size and steps must be at least 1, got {batch_size} and {steps}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    crop = dryrun.measured_size(crop)          # a CPU dry run: a quarter of each side
    if dryrun.active():                        # SEG_DRY_RUN: one timed step, no warm-up
        steps = 1
    device = torch.device(device) if device is not None else (
        torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu"))
    result: dict[str, Any] = {"model": model, "batch_size": batch_size, "crop": list(crop),
                              "optimizer": optimizer, "device": device.type}
    command = ["--batch-size", str(batch_size), "--crop", str(crop[0]), str(crop[1]), "--optimizer", optimizer]
    return _measure(result, "seconds_per_step", device, command, steps, num_classes, seed,
                    lambda: _train_steps(model, batch_size, crop, optimizer, steps, num_classes, device, seed))


def _measure(result: dict[str, Any], key: str, device: torch.device, arguments: list[str], steps: int,
             num_classes: int, seed: int, run_here) -> dict[str, Any]:
    """The one measuring protocol of this module: on CUDA, ``run_here()`` in this process between a
    reset of the allocator's peak and a read of it; on the CPU, the same work in a fresh process
    (``python -m seg_common.benchmark`` with ``arguments``) that reports its peak RSS above idle."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        result[key] = run_here()
        result["peak_mb"] = (torch.cuda.max_memory_allocated(device) - before) / 2**20
        result["measure"] = "cuda max allocated"
        return result
    if device.type != "cpu":
        raise ValueError(f"seg_common.benchmark measures CUDA or the CPU, not {device.type!r}")
    command = [sys.executable, "-m", "seg_common.benchmark", "--model", result["model"], *arguments,
               "--steps", str(steps), "--num-classes", str(num_classes), "--seed", str(seed)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the measuring process failed ({done.returncode}):\n{done.stderr[-2000:]}")
    child = json.loads(done.stdout.strip().splitlines()[-1])
    result.update({key: child["seconds"], "peak_mb": child["peak_mb"],
                   "measure": "process peak RSS above the idle process"})
    return result


def _inference_steps(model_name: str, size: Sequence[int], window, stride, flip: bool, steps: int,
                     num_classes: int, device: torch.device, seed: int, weights: str | None) -> float:
    from .engine import infer_logits, load_weights
    torch.manual_seed(seed)
    model = build_model(model_name, num_classes=num_classes)
    if weights:
        load_weights(model, weights)
    model.to(device).eval()
    x = torch.randn(1, 3, *size, device=device)
    seconds = []
    warmup = dryrun.warmup_passes()
    with torch.inference_mode():
        for _ in range(steps + warmup):         # the first pass warms up
            started = time.perf_counter()
            infer_logits(model, x, window=window, stride=stride, flip=flip)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds.append(time.perf_counter() - started)
    return sum(seconds[warmup:]) / steps


def measure_inference(model: str, size: Sequence[int], *, window: Sequence[int] | None = None,
                      stride: Sequence[int] | None = None, flip: bool = False, weights: str | Path | None = None,
                      steps: int = 1, num_classes: int = 21, device: str | torch.device | None = None,
                      seed: int = 0) -> dict[str, Any]:
    """Seconds per image and peak memory of inference on one ``size`` image, by the protocol that
    ``window`` / ``stride`` / ``flip`` choose (see ``engine.infer_logits``); measured like
    :func:`measure_step` (CUDA max allocated, or a fresh process's peak RSS on the CPU)."""
    if model not in MODELS:
        raise ValueError(f"Unknown model {model!r}. Choose one of: {', '.join(sorted(MODELS))}.")
    size, window, stride = (dryrun.measured_size(v) for v in (size, window, stride))   # CPU dry run: / 4
    if dryrun.active():                        # SEG_DRY_RUN: one timed pass, no warm-up
        steps = 1
    device = torch.device(device) if device is not None else (
        torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu"))
    result: dict[str, Any] = {"model": model, "size": list(size), "window": window, "flip": flip,
                              "device": device.type}
    arguments = ["--inference", "--size", str(size[0]), str(size[1])]
    if window is not None:
        arguments += ["--window", str(window[0]), str(window[1])]
    if stride is not None:
        arguments += ["--stride", str(stride[0]), str(stride[1])]
    if flip:
        arguments.append("--flip")
    if weights:
        arguments += ["--weights", str(weights)]
    return _measure(result, "seconds_per_image", device, arguments, steps, num_classes, seed,
                    lambda: _inference_steps(model, size, window, stride, flip, steps, num_classes, device, seed,
                                             str(weights) if weights else None))


def _child(args: argparse.Namespace) -> dict[str, Any]:
    """Run in the fresh process: the idle peak after imports, then the work, then the new peak."""
    idle = peak_rss_mb()
    if args.inference:
        seconds = _inference_steps(args.model, args.size, args.window, args.stride, args.flip, args.steps,
                                   args.num_classes, torch.device("cpu"), args.seed, args.weights)
    else:
        seconds = _train_steps(args.model, args.batch_size, args.crop, args.optimizer, args.steps,
                               args.num_classes, torch.device("cpu"), args.seed)
    peak = peak_rss_mb()
    return {"seconds": seconds, "peak_mb": None if peak is None or idle is None else peak - idle}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m seg_common.benchmark",
        description="Time one CPU training step and measure the memory it needs (peak RSS of this "
                    "process above its idle peak). Prints one JSON line.")
    parser.add_argument("--model", required=True, choices=sorted(MODELS))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop", type=int, nargs=2, default=(96, 96), metavar=("H", "W"))
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--num-classes", type=int, default=21)
    parser.add_argument("--seed", type=int, default=0)
    inference = parser.add_argument_group("inference instead of a training step")
    inference.add_argument("--inference", action="store_true")
    inference.add_argument("--size", type=int, nargs=2, default=(512, 512), metavar=("H", "W"))
    inference.add_argument("--window", type=int, nargs=2, default=None, metavar=("H", "W"))
    inference.add_argument("--stride", type=int, nargs=2, default=None, metavar=("H", "W"))
    inference.add_argument("--flip", action="store_true")
    inference.add_argument("--weights", default=None, help="weights saved with engine.save_weights")
    args = parser.parse_args(argv)
    print(json.dumps(_child(args)))


if __name__ == "__main__":
    main()
