"""Training and evaluation loops, checkpoints and exact resume.

``fit`` trains for a number of epochs and returns a history (one dict per epoch). With a
``checkpoint_dir`` it writes ``last.pt`` after every epoch - model, optimizer, scheduler, AMP
scaler, epoch, history, random-number-generator states and the run's settings - and ``best.pt``
whenever the validation mIoU improves. Files are written to a temporary name and renamed, so an
interruption (a Colab disconnect, Ctrl-C) never leaves a half-written checkpoint. ``resume=True``
continues from ``last.pt`` exactly where it stopped: on the CPU, 2 epochs and then a resume to 4
give the same weights as 4 epochs in one go.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import random
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import dryrun
from .losses import cross_entropy
from .memory import peak_mb, reset_peak
from .metrics import ConfusionMatrix
from .precision import autocast_dtype, needs_grad_scaler

CHECKPOINT_FORMAT = 1
LAST, BEST = "last.pt", "best.pt"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or does not fit the model or the run."""


def default_device() -> torch.device:
    """The best available device: CUDA, then Apple's MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


# ---------------------------------------------------------------------------------------------
# Checkpoint files
# ---------------------------------------------------------------------------------------------

def save_checkpoint(state: dict, path: str | Path) -> Path:
    """``torch.save`` to a temporary file in the same folder, flushed to disk, then renamed over
    ``path``: a process killed at any moment leaves either the old checkpoint or the new one, never
    a half-written ``path`` (at worst a stray ``.<name>.tmp-<pid>`` file, which
    :func:`remove_stale_temporaries` clears)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as file:
            torch.save(state, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files that a killed process left in a checkpoint folder (files named
    ``.<name>.tmp-<pid>`` by :func:`save_checkpoint` and ``save_run``); returns what was removed."""
    removed = []
    for stray in Path(folder).glob(".*.tmp-*"):
        if stray.is_file():
            stray.unlink()
            removed.append(stray)
    return removed


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint written by this module, with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"No checkpoint at {path}. Train first (fit(..., checkpoint_dir=...)), or use "
            "resume='auto' to start from scratch when there is none."
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:
        raise CheckpointError(
            f"Checkpoint {path} is not readable ({type(exc).__name__}: {exc}); it may be truncated "
            "or not a PyTorch file. Delete it to start again, or resume from another copy."
        ) from exc
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path} is not a checkpoint of seg_common (no 'model' entry).")
    return state


def _model_name(model: nn.Module) -> str:
    model = getattr(model, "module", model)          # DataParallel / DDP wrappers
    return type(model).__name__


def load_state_into(model: nn.Module, state_dict: dict, *, source: str, saved_class: str | None) -> None:
    """``model.load_state_dict(state_dict)`` with an error that lists what does not fit."""
    target = getattr(model, "module", model)
    own = target.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state_dict and tuple(own[k].shape) != tuple(state_dict[k].shape)]
    if missing or unexpected or shapes:
        saved = f"the weights of {saved_class}" if saved_class else "weights"
        parts = [f"{source} holds {saved}, which do not fit this {_model_name(model)}:"]
        for label, items in (("missing in the file", missing), ("unexpected in the file", unexpected),
                             ("shape mismatch", shapes)):
            if items:
                more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
                parts.append(f"  {label}: {', '.join(items[:5])}{more}")
        parts.append("Build the same model (class, num_classes) that was saved, or train anew.")
        raise CheckpointError("\n".join(parts))
    target.load_state_dict(state_dict)


def save_weights(model: nn.Module, path: str | Path, **meta: Any) -> Path:
    """Save only the model weights (plus its class name and ``meta``), atomically."""
    target = getattr(model, "module", model)
    return save_checkpoint({"format": CHECKPOINT_FORMAT, "model": target.state_dict(),
                            "model_class": _model_name(model), "meta": meta}, path)


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load weights saved by :func:`save_weights` or :func:`fit` into ``model`` and return it."""
    state = load_checkpoint(path)
    load_state_into(model, state["model"], source=str(path), saved_class=state.get("model_class"))
    return model


def _rng_state(loader: Iterable | None) -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    for name, gen in _loader_generators(loader).items():
        state[name] = gen.get_state()
    return state


def _set_rng_state(state: dict, loader: Iterable | None) -> None:
    """Restore what :func:`_rng_state` saved. Every generator, CUDA's included, takes its state as
    a CPU ByteTensor, and a checkpoint loaded with ``map_location="cuda"`` holds GPU copies: they
    are brought back to the CPU first."""
    torch.set_rng_state(state["torch"].cpu())
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    for name, gen in _loader_generators(loader).items():
        if name in state:
            gen.set_state(state[name].cpu())


def _loader_generators(loader: Iterable | None) -> dict[str, torch.Generator]:
    """The private generators a DataLoader shuffles with, if it was given any."""
    gens = {}
    if loader is not None:
        if isinstance(getattr(loader, "generator", None), torch.Generator):
            gens["loader"] = loader.generator
        sampler = getattr(loader, "sampler", None)
        if isinstance(getattr(sampler, "generator", None), torch.Generator):
            gens["sampler"] = sampler.generator
    return gens


# ---------------------------------------------------------------------------------------------
# One epoch of training, one pass of evaluation
# ---------------------------------------------------------------------------------------------

def set_batchnorm_eval(model: nn.Module) -> int:
    """Put every BatchNorm layer of ``model`` in eval mode; returns how many there are."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for layer in layers:
        layer.eval()
    return len(layers)


def _grad_scaler(enabled: bool):
    if hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler("cuda", enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled)  # torch < 2.3


def _float32(output: Any) -> Any:
    """A model's output with every tensor in it as float32: losses are computed in full precision
    whatever format the forward pass ran in (an aux head's tuple, a distiller's pair included)."""
    if isinstance(output, torch.Tensor):
        return output.float()
    if isinstance(output, (tuple, list)):
        return type(output)(_float32(item) for item in output)
    return output


def _use_channels_last(channels_last: bool | str, device: torch.device) -> bool:
    """``"auto"``: the channels-last memory layout on CPUs and CUDA GPUs, where convolutions run
    faster in it (measured in notebook 05), not on MPS."""
    if channels_last == "auto":
        return device.type in ("cpu", "cuda")
    return bool(channels_last)


@contextlib.contextmanager
def _cudnn_benchmark(device: torch.device):
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


def _train_forward(model: nn.Module, images: torch.Tensor) -> Any:
    """``model(images)``, with BatchNorm's "Expected more than 1 value per channel" on a batch of
    one image turned into an error that names the cause and the remedy."""
    try:
        return model(images)
    except ValueError as exc:
        if "more than 1 value per channel" not in str(exc):
            raise
        raise ValueError(
            f"A training batch of {len(images)} image reached a BatchNorm layer that then sees a single "
            "value per channel (a BatchNorm after a global pooling, as in DeepLabV3+'s ASPP or PSPNet's "
            "pyramid). DataLoaders keep a short last batch: build the training loader with "
            "drop_last=True (seeded_loader(..., drop_last=True) as well), or use freeze_bn=True.") from exc


def train_one_epoch(
    model: nn.Module,
    loader: Iterable,
    optimizer: torch.optim.Optimizer,
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    device: torch.device | str | None = None,
    scheduler: Any = None,
    scheduler_per_iteration: bool = False,
    grad_accum_steps: int = 1,
    amp: bool | str = "auto",
    scaler: Any = None,
    channels_last: bool | str = "auto",
    progress: bool = True,
    desc: str = "train",
    step_losses: list | None = None,
    step_lrs: list | None = None,
    freeze_bn: bool | nn.Module = False,
    loss_parts: dict | None = None,
) -> float:
    """One pass over ``loader``; returns the mean training loss per batch.

    ``grad_accum_steps`` > 1 adds up gradients over that many batches before each optimizer step
    (each batch's loss is divided by the number of batches in its group, so k batches of b act
    like one batch of k*b; a shorter last group at the end of the epoch is divided by its own
    size). With ``scheduler_per_iteration`` the scheduler steps after every optimizer step (Poly,
    OneCycle). Losses stay on the device until the end of the epoch: no host sync per batch.
    ``step_losses``, when given a list, receives the loss of every optimizer step (the mean over
    its batches) at the end of the epoch; ``step_lrs`` the learning rates each step used (one list
    per step, one rate per parameter group). ``freeze_bn=True`` keeps every BatchNorm layer in eval
    mode: it normalises with its running statistics and does not update them (its affine weights
    still learn) - the usual choice for a pretrained backbone trained with small batches. Given a
    submodule (``freeze_bn=model.backbone``) it does so for that part only. ``loss_parts``, when
    given a dict, receives the mean per batch of each part that a composite loss reports in its
    ``.last`` (``losses.with_aux``: ``main``, ``aux``; ``losses.DistillationLoss``: also ``distill``).

    ``amp`` chooses the number format (:mod:`seg_common.precision`): ``"auto"`` runs the forward
    pass in bfloat16 on CPUs with native bfloat16 and on recent GPUs, in float16 with a gradient
    scaler on older GPUs, in float32 elsewhere; the loss is always computed in float32. ``False``
    trains in float32. ``channels_last`` (``"auto"``: on CPUs and CUDA GPUs) stores the images
    channels-last, the layout fast convolution kernels prefer.

    Gradient accumulation is exact only for models that treat each image on its own: BatchNorm
    normalises with the statistics of each small batch, so k batches of b differ slightly from one
    batch of k*b (notebook 04 measures by how much).

    A batch of one image fails in models with a BatchNorm after a global pooling (DeepLabV3+'s
    ASPP, PSPNet's 1x1 pyramid level): it would normalise a single value per channel. A DataLoader
    keeps a short last batch, so such a batch can come at the end of an epoch; the error then says
    so and names the remedy, ``drop_last=True`` in the training loader.
    """
    device = torch.device(device) if device is not None else default_device()
    loss_fn = loss_fn or cross_entropy          # 0, not NaN, on a batch with no labelled pixel
    dtype = autocast_dtype(device, amp)
    channels_last = _use_channels_last(channels_last, device)
    scaler = scaler if scaler is not None else _grad_scaler(needs_grad_scaler(device, dtype))
    if grad_accum_steps < 1:
        raise ValueError(f"grad_accum_steps must be at least 1, got {grad_accum_steps}")
    model.train()
    if isinstance(freeze_bn, nn.Module):
        set_batchnorm_eval(freeze_bn)
    elif freeze_bn:
        set_batchnorm_eval(model)
    total = torch.zeros((), device=device)
    batches = 0
    n = len(loader) if hasattr(loader, "__len__") else None
    if dryrun.active():                        # SEG_DRY_RUN: a couple of batches (seg_common.dryrun)
        n = dryrun.batches(n if n is not None else dryrun.TRAIN_BATCHES)
        loader = itertools.islice(loader, n)
    cap = dryrun.max_batch()
    per_step: list[torch.Tensor] = []
    parts: dict[str, torch.Tensor] = {}
    group_loss = torch.zeros((), device=device)
    optimizer.zero_grad(set_to_none=True)
    with _cudnn_benchmark(device):           # fixed-size crops: cuDNN picks its fastest kernels
        bar = tqdm(loader, desc=desc, total=n, leave=False, disable=not progress)
        for i, (images, targets) in enumerate(bar):
            if cap is not None:
                images, targets = images[:cap], targets[:cap]
            images = images.to(device, non_blocking=True)
            targets = targets.to(device, non_blocking=True)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                output = _train_forward(model, images)
            loss = loss_fn(_float32(output), targets)
            group_start = i - i % grad_accum_steps
            group_size = grad_accum_steps if n is None else min(grad_accum_steps, n - group_start)
            scaler.scale(loss / group_size).backward()
            total += loss.detach()
            for name, value in getattr(loss_fn, "last", {}).items():
                parts[name] = parts.get(name, 0) + value.detach()
            group_loss += loss.detach() / group_size
            batches += 1
            if (i + 1) % grad_accum_steps == 0 or (n is not None and i + 1 == n):
                if step_lrs is not None:
                    step_lrs.append([group["lr"] for group in optimizer.param_groups])
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                if scheduler is not None and scheduler_per_iteration:
                    scheduler.step()
                per_step.append(group_loss)
                group_loss = torch.zeros((), device=device)
            if progress and (i + 1) % 10 == 0:
                bar.set_postfix(loss=f"{total.item() / batches:.3f}")
    if step_losses is not None:
        step_losses.extend(torch.stack(per_step).tolist() if per_step else [])
    if loss_parts is not None:
        loss_parts.update({name: float(value) / max(batches, 1) for name, value in parts.items()})
    return total.item() / max(batches, 1)


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
    logits = model(images)
    if flip:
        logits = (logits + model(images.flip(-1)).flip(-1)) / 2
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
    if _use_channels_last(channels_last, device):
        model.to(memory_format=torch.channels_last)
        batch = batch.contiguous(memory_format=torch.channels_last)
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        logits = model(batch)
    return logits.float().argmax(1)[0].cpu()


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    loader: Iterable,
    num_classes: int,
    *,
    device: torch.device | str | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ignore_index: int = 255,
    channels_last: bool | str = "auto",
    amp: bool | str = "auto",
    progress: bool = True,
    window: Sequence[int] | None = None,
    stride: Sequence[int] | None = None,
    flip: bool = False,
    all_reduce: Callable[[torch.Tensor], None] | None = None,
) -> dict[str, Any]:
    """Score ``model`` on ``loader`` (whole images, not crops: give it an eval loader).

    ``window``, ``stride`` and ``flip`` choose the protocol (see :func:`infer_logits`): whole
    images by default, or a sliding window, with or without flipping. ``amp`` and
    ``channels_last`` as in :func:`train_one_epoch` (the logits are scored in float32).

    Accumulates one confusion matrix, so memory does not grow with the dataset. Returns
    ``{"loss", "pixel_acc", "mean_acc", "miou", "iou": [per class]}``; ``loss`` is the mean
    cross-entropy over the non-void pixels of the whole set.

    ``all_reduce`` (for several processes, each scoring its own share of the images, as
    :mod:`seg_common.distributed` does): a function that sums a tensor over the processes in place;
    the confusion matrix and the loss are summed before the scores are computed, so every process
    returns the scores of the whole set.
    """
    device = torch.device(device) if device is not None else default_device()
    dtype = autocast_dtype(device, amp)
    channels_last = _use_channels_last(channels_last, device)
    model.eval()
    cm = ConfusionMatrix(num_classes, ignore_index)
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    pixels = 0
    if dryrun.active():                        # SEG_DRY_RUN: a couple of images (seg_common.dryrun)
        loader = itertools.islice(loader, dryrun.EVAL_BATCHES)
    bar = tqdm(loader, desc="eval", leave=False, disable=not progress)
    for images, targets in bar:
        images = images.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            logits = infer_logits(model, images, window=window, stride=stride, flip=flip).float()
        if logits.shape[-2:] != targets.shape[-2:]:
            raise ValueError(
                f"model output {tuple(logits.shape[-2:])} and target {tuple(targets.shape[-2:])} "
                "differ in size; the model must predict at the input resolution")
        if loss_fn is None:
            loss_sum += F.cross_entropy(logits, targets, ignore_index=ignore_index,
                                        reduction="sum")
            pixels += int((targets != ignore_index).sum())
        else:
            loss_sum += loss_fn(logits, targets).double() * targets.shape[0]
            pixels += targets.shape[0]
        cm.update(logits.argmax(1).cpu(), targets.cpu())
    if all_reduce is not None:
        totals = torch.cat([cm.mat.double().flatten(), loss_sum.detach().cpu().reshape(1),
                            torch.tensor([float(pixels)], dtype=torch.float64)])
        all_reduce(totals)
        cm.mat.copy_(totals[:-2].round().to(torch.int64).view_as(cm.mat))
        loss_sum, pixels = totals[-2], int(totals[-1])
    scores = cm.compute()
    return {"loss": float(loss_sum) / max(pixels, 1), **scores.as_dict(),
            "iou": [round(float(v), 6) for v in scores.iou]}


# ---------------------------------------------------------------------------------------------
# fit: epochs, checkpoints, resume
# ---------------------------------------------------------------------------------------------

def _settings_differences(saved: dict | None, current: dict | None) -> list[str]:
    if saved is None or current is None:
        return []
    keys = (set(saved) | set(current)) - {"epochs"}
    return [f"{k}: checkpoint {saved.get(k)!r} vs now {current.get(k)!r}"
            for k in sorted(keys) if saved.get(k) != current.get(k)]


# Schedules that end, and the attribute that holds their length in steps.
_SCHEDULE_LENGTH = {torch.optim.lr_scheduler.PolynomialLR: "total_iters",
                    torch.optim.lr_scheduler.OneCycleLR: "total_steps"}


def _steps_per_epoch(loader: Iterable, grad_accum_steps: int, per_iteration: bool) -> int | None:
    """How many times a scheduler steps per epoch (None when the loader has no length)."""
    if not per_iteration:
        return 1
    return math.ceil(len(loader) / grad_accum_steps) if hasattr(loader, "__len__") else None


def _check_schedule_length(saved: dict, scheduler: Any, epochs: int, steps_per_epoch: int | None,
                           path: Path) -> None:
    """Refuse to resume a schedule that ends before ``epochs``: it comes back from the checkpoint
    with the length it was built for, and a run extended past it would train the extra epochs at
    learning rate 0 (PolynomialLR) or fail after them (OneCycleLR raises)."""
    name = _SCHEDULE_LENGTH.get(type(scheduler))
    if name is None or steps_per_epoch is None or name not in saved:
        return
    length, needed = saved[name], epochs * steps_per_epoch
    if length < needed:
        covered = length // steps_per_epoch
        raise CheckpointError(
            f"{path} holds a {type(scheduler).__name__} that ends after {length} steps; {epochs} epochs need "
            f"{needed}. A schedule cannot be stretched in the middle of a run: resume with epochs={covered} at "
            f"most, or train the longer run in a new checkpoint_dir with a scheduler built for {epochs} epochs.")


def fit(
    model: nn.Module,
    train_loader: Iterable,
    val_loader: Iterable | None,
    *,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    num_classes: int,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    scheduler: Any = None,
    scheduler_per_iteration: bool = False,
    checkpoint_dir: str | Path | None = None,
    resume: bool | str = False,
    device: torch.device | str | None = None,
    grad_accum_steps: int = 1,
    amp: bool | str = "auto",
    channels_last: bool | str = "auto",
    early_stop_patience: int | None = None,
    eval_every: int = 1,
    freeze_bn: bool | nn.Module = False,
    record_steps: bool = False,
    tensorboard_dir: str | Path | None = None,
    settings: dict | None = None,
    progress: bool = True,
    verbose: bool = True,
    all_reduce: Callable[[torch.Tensor], None] | None = None,
    write_checkpoints: bool = True,
) -> list[dict[str, Any]]:
    """Train ``model`` for ``epochs`` epochs, validating after each; return the history.

    Args:
        loss_fn: ``(logits [B, K, H, W], target [B, H, W]) -> scalar``; default
            :func:`seg_common.losses.cross_entropy` (ignores 255; 0, not NaN, on an all-void batch).
        scheduler: a ``torch.optim.lr_scheduler`` object, stepped per epoch, or per optimizer
            step with ``scheduler_per_iteration=True``. A resume restores it as saved, length
            included: resuming for more epochs than a PolynomialLR or OneCycleLR was built for is
            refused (a longer run needs a new ``checkpoint_dir``).
        checkpoint_dir: where ``last.pt`` and ``best.pt`` go (nothing is saved when None).
        resume: ``True`` continues from ``checkpoint_dir/last.pt`` (an error if it is missing);
            ``"auto"`` continues when it exists and starts fresh otherwise.
        grad_accum_steps, amp, channels_last, freeze_bn: see :func:`train_one_epoch` (mixed
            precision by default where the device computes 16-bit formats natively).
        record_steps: also keep every optimizer step's loss and learning rates in the history
            (``step_loss``: a list per epoch; ``step_lr``: per step, one rate per parameter group).
        early_stop_patience: stop when val mIoU has not improved for this many validations; a
            resume of a run that stopped so trains no more (it returns the saved history).
        eval_every: validate every this many epochs (and after the last one); validation on
            whole images can cost more than an epoch of training on small hardware.
        tensorboard_dir: also log every number of the history to TensorBoard there.
        settings: the run's hyper-parameters (plain values), stored in the checkpoints; a resume
            with different settings (other than ``epochs``) is refused.
        all_reduce, write_checkpoints: for one of several processes (``torchrun``,
            :mod:`seg_common.train`): ``val_loader`` holds this process's share of the validation
            images, scored by the unwrapped model (``model.module``: a DDP wrapper would synchronise
            buffers at every forward pass, and the shares may differ in length) and summed over the
            processes by ``all_reduce`` (see :func:`evaluate`); ``write_checkpoints=False`` reads
            ``checkpoint_dir`` to resume but writes nothing there (only rank 0 writes).

    Each history record holds ``epoch, lr, train_loss, train_seconds, seconds`` (training only,
    and the whole epoch with validation) and, for epochs that were validated, ``val_loss, pixel_acc, mean_acc, miou, iou`` (per class).
    """
    device = torch.device(device) if device is not None else default_device()
    epochs = dryrun.epochs(epochs)             # SEG_DRY_RUN: one epoch (seg_common.dryrun)
    model.to(device)
    channels_last = _use_channels_last(channels_last, device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    dtype = autocast_dtype(device, amp)
    use_scaler = needs_grad_scaler(device, dtype)
    scaler = _grad_scaler(use_scaler)
    history: list[dict[str, Any]] = []
    start_epoch, best_miou, stale = 0, -1.0, 0
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if resume and ckpt_dir is None:
        raise ValueError("resume needs a checkpoint_dir to resume from")
    if eval_every < 1:
        raise ValueError(f"eval_every must be at least 1, got {eval_every}")
    if resume not in (True, False, "auto"):
        raise ValueError(f"resume must be True, False or 'auto', got {resume!r}")

    if ckpt_dir is not None and ckpt_dir.is_dir() and write_checkpoints:
        remove_stale_temporaries(ckpt_dir)         # left by a process killed while saving
    if resume and not (resume == "auto" and not (ckpt_dir / LAST).exists()):
        path = ckpt_dir / LAST
        state = load_checkpoint(path, map_location=device)
        diffs = _settings_differences(state.get("settings"), settings)
        if diffs:
            raise CheckpointError(f"{path} was trained with other settings:\n  " + "\n  ".join(diffs)
                                  + "\nUse another checkpoint_dir for a different run.")
        if scheduler is not None and state.get("scheduler") is not None:
            _check_schedule_length(state["scheduler"], scheduler, epochs,
                                   _steps_per_epoch(train_loader, grad_accum_steps, scheduler_per_iteration), path)
        load_state_into(model, state["model"], source=str(path), saved_class=state.get("model_class"))
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler") is not None:
            scaler.load_state_dict(state["scaler"])
        history = list(state["history"])
        start_epoch, best_miou, stale = state["epoch"], state["best_miou"], state.get("stale", 0)
        _set_rng_state(state["rng"], train_loader)
        if verbose:
            tqdm.write(f"resumed from {path.name} after epoch {start_epoch}")
        if early_stop_patience is not None and stale >= early_stop_patience:
            if verbose:
                tqdm.write(f"the run stopped early (no better val mIoU for {stale} epochs): nothing to train")
            return history

    writer = None
    if tensorboard_dir is not None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise ImportError("tensorboard_dir needs the tensorboard package: pip install tensorboard") from exc
        writer = SummaryWriter(str(tensorboard_dir), purge_step=start_epoch + 1)

    epoch_bar = tqdm(range(start_epoch, epochs), desc="epochs", initial=start_epoch, total=epochs,
                     disable=not progress)
    try:
        for epoch in epoch_bar:
            started = time.perf_counter()
            peak_is_per_epoch = reset_peak(device)
            lr = optimizer.param_groups[0]["lr"]
            step_losses: list | None = [] if record_steps else None
            step_lrs: list | None = [] if record_steps else None
            parts: dict[str, float] = {}
            train_loss = train_one_epoch(
                model, train_loader, optimizer, loss_fn=loss_fn, device=device, scheduler=scheduler,
                scheduler_per_iteration=scheduler_per_iteration, grad_accum_steps=grad_accum_steps,
                amp=amp, scaler=scaler, channels_last=channels_last, progress=progress,
                desc=f"epoch {epoch + 1}", freeze_bn=freeze_bn, step_losses=step_losses, step_lrs=step_lrs,
                loss_parts=parts)
            if scheduler is not None and not scheduler_per_iteration:
                scheduler.step()
            record: dict[str, Any] = {"epoch": epoch + 1, "lr": lr, "train_loss": train_loss,
                                      "train_seconds": time.perf_counter() - started}
            record.update({f"train_loss_{name}": value for name, value in parts.items()})
            if record_steps:
                record.update(step_loss=step_losses, step_lr=step_lrs)
            if val_loader is not None and ((epoch + 1) % eval_every == 0 or epoch + 1 == epochs):
                scored = getattr(model, "module", model) if all_reduce is not None else model
                scores = evaluate(scored, val_loader, num_classes, device=device, amp=amp,
                                  channels_last=channels_last, progress=progress, all_reduce=all_reduce)
                record.update(val_loss=scores["loss"], pixel_acc=scores["pixel_acc"],
                              mean_acc=scores["mean_acc"], miou=scores["miou"], iou=scores["iou"])
            record["seconds"] = time.perf_counter() - started
            # Peak memory of this epoch's training and validation: a value that grows from epoch
            # to epoch is a leak (None where the peak cannot be reset, see seg_common.memory).
            record["peak_memory_mb"] = peak_mb(device) if peak_is_per_epoch else None
            history.append(record)

            improved = False
            if "miou" in record:
                improved = record["miou"] > best_miou
                best_miou, stale = (record["miou"], 0) if improved else (best_miou, stale + 1)
            if ckpt_dir is not None and write_checkpoints:
                state = {
                    "format": CHECKPOINT_FORMAT, "model": getattr(model, "module", model).state_dict(),
                    "model_class": _model_name(model), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "scaler": scaler.state_dict() if use_scaler else None,
                    "epoch": epoch + 1, "history": history, "best_miou": best_miou, "stale": stale,
                    "rng": _rng_state(train_loader), "settings": settings,
                }
                save_checkpoint(state, ckpt_dir / LAST)
                if improved:
                    save_checkpoint(state, ckpt_dir / BEST)
            if writer is not None:
                for key, value in record.items():
                    if key != "epoch" and isinstance(value, (int, float)):
                        writer.add_scalar(key, value, epoch + 1)
            if verbose:
                shown = "  ".join(f"{k} {record[k]:.4g}" for k in
                                  ("train_loss", "val_loss", "pixel_acc", "miou") if k in record)
                tqdm.write(f"epoch {epoch + 1}/{epochs}  {shown}  ({record['seconds']:.1f} s)")
            if early_stop_patience is not None and stale >= early_stop_patience:
                if verbose:
                    tqdm.write(f"early stop: no better val mIoU for {stale} epochs")
                break
    finally:
        if writer is not None:
            writer.close()
    return history


# ---------------------------------------------------------------------------------------------
# Recorded runs: a small JSON summary per run, so notebooks compare runs without retraining
# ---------------------------------------------------------------------------------------------

RUN_FILE = "run.json"


def save_run(
    run_dir: str | Path,
    *,
    history: list[dict[str, Any]],
    settings: dict[str, Any],
    class_names: list[str] | tuple[str, ...],
    final: dict[str, Any] | None = None,
    model: nn.Module | None = None,
) -> Path:
    """Record a finished run in ``run_dir/run.json`` (history, settings, final scores, classes).

    ``final`` defaults to the last validated epoch of ``history``. With ``model`` the weights go to
    ``run_dir/weights.pt`` too. The JSON is written atomically, like the checkpoints.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    validated = [h for h in history if "miou" in h]
    if final is None:
        if not validated:
            raise ValueError("save_run needs a final score: no epoch of the history was validated")
        final = {k: v for k, v in validated[-1].items() if k != "epoch"}
    record = {"format": CHECKPOINT_FORMAT, "settings": settings, "class_names": list(class_names),
              "history": history, "final": final}
    if model is not None:
        record["model_class"] = _model_name(model)
        record["parameters"] = sum(p.numel() for p in model.parameters())
        save_weights(model, run_dir / "weights.pt", settings=settings)
    tmp = run_dir / f".{RUN_FILE}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, run_dir / RUN_FILE)
    return run_dir / RUN_FILE


def load_run(run_dir: str | Path) -> dict[str, Any]:
    """Read a run recorded by :func:`save_run`; the error names the folder when it is not there."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"No recorded run in {Path(run_dir)} ({RUN_FILE} is missing). Train and record it first "
            "(save_run), or check the run's name.")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc}); record the run again.") from exc


def load_runs(run_dirs: dict[str, str | Path]) -> dict[str, dict[str, Any]]:
    """Load several runs for a comparison, refusing runs trained on different class sets."""
    runs = {name: load_run(path) for name, path in run_dirs.items()}
    reference_name, reference = next(iter(runs.items()))
    for name, run in runs.items():
        if run["class_names"] != reference["class_names"]:
            raise ValueError(
                f"Runs {reference_name!r} and {name!r} were trained on different class sets "
                f"({len(reference['class_names'])} vs {len(run['class_names'])} classes); their "
                "scores cannot be compared.")
    return runs


def summarize_runs(runs: dict[str, list[dict[str, Any]]],
                   keys: Iterable[str] = ("miou", "pixel_acc", "mean_acc")):
    """Mean, spread (min-max) and standard deviation over the seeds of each named setting.

    ``runs`` maps a setting's name to its recorded runs (one per seed, as :func:`load_run`
    returns them). Returns a pandas DataFrame, one row per setting, with the columns
    ``<key> mean``, ``<key> std``, ``<key> min``, ``<key> max`` and ``seeds``. Settings trained on
    different class sets are refused, as in :func:`load_runs`.
    """
    import pandas as pd

    classes = None
    rows = {}
    for name, seeds in runs.items():
        if not seeds:
            raise ValueError(f"setting {name!r} has no recorded runs")
        for run in seeds:
            if classes is None:
                classes = run["class_names"]
            elif run["class_names"] != classes:
                raise ValueError(f"{name!r} has runs trained on a different class set "
                                 f"({len(run['class_names'])} vs {len(classes)} classes)")
        row: dict[str, float] = {}
        for key in keys:
            values = np.array([run["final"][key] for run in seeds], dtype=float)
            row.update({f"{key} mean": values.mean(), f"{key} std": values.std(ddof=1) if len(values) > 1 else 0.0,
                        f"{key} min": values.min(), f"{key} max": values.max()})
        row["seeds"] = len(seeds)
        rows[name] = row
    return pd.DataFrame(rows).T


def compare_settings(summary, pairs: Iterable[tuple[str, str]], key: str = "miou"):
    """For each ``(before, after)`` pair of a :func:`summarize_runs` table: the change of the mean
    and whether it is larger than the spread - the seeds' ranges ``[min, max]`` do not overlap.

    With fewer than two seeds on either side there is no spread, and the answer is None. The test
    is a modest bar: with three seeds each and no real difference, the two ranges still fail to
    overlap in 2 of the 20 equally likely orderings of the six scores (10% of the time)."""
    import pandas as pd

    rows = []
    for before, after in pairs:
        for name in (before, after):
            if name not in summary.index:
                raise KeyError(f"no setting {name!r} in the summary (have: {', '.join(summary.index)})")
        b, a = summary.loc[before], summary.loc[after]
        change = a[f"{key} mean"] - b[f"{key} mean"]
        separated = a[f"{key} min"] > b[f"{key} max"] or a[f"{key} max"] < b[f"{key} min"]
        if min(a["seeds"], b["seeds"]) < 2:
            separated = None
        rows.append({"change": f"{before} -> {after}", f"{key} before": b[f"{key} mean"],
                     f"{key} after": a[f"{key} mean"], "difference": change,
                     "larger than the spread": separated if separated is None else bool(separated)})
    return pd.DataFrame(rows).set_index("change")
