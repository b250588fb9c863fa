"""One epoch of training and one pass of evaluation: the loops every notebook and ``fit`` share.

``train_one_epoch`` returns what the epoch measured (:class:`EpochStats`: the mean loss, the loss
and learning rates of every optimizer step, the parts of a composite loss); ``evaluate`` returns
the scores of a confusion matrix accumulated over the whole set.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import dryrun
from .devices import cudnn_benchmark, default_device, keep_freed_memory, use_channels_last
from .inference import infer_logits
from .losses import cross_entropy
from .metrics import ConfusionMatrix
from .precision import autocast_dtype, needs_grad_scaler


@dataclass
class EpochStats:
    """What :func:`train_one_epoch` measured. ``float(stats)`` is the mean loss."""

    loss: float                                                    # mean training loss per batch
    batches: int                                                   # batches trained on
    step_losses: list[float] = field(default_factory=list)        # each optimizer step's loss (mean of its batches)
    step_lrs: list[list[float]] = field(default_factory=list)     # each step's rates, one per parameter group
    parts: dict[str, float] = field(default_factory=dict)         # mean per batch of each part of a composite loss

    def __float__(self) -> float:
        return self.loss


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
    freeze_bn: bool | nn.Module = False,
) -> EpochStats:
    """One pass over ``loader``; returns what it measured (:class:`EpochStats`): the mean training
    loss per batch (``stats.loss``, also ``float(stats)``), the loss of every optimizer step (the
    mean over its batches), the learning rates each step used (one list per step, one rate per
    parameter group) and, for a composite loss that reports its parts in ``.last``
    (``losses.with_aux``: ``main``, ``aux``; ``losses.DistillationLoss``: also ``distill``), the
    mean per batch of each part.

    ``grad_accum_steps`` > 1 adds up gradients over that many batches before each optimizer step
    (each batch's loss is divided by the number of batches in its group, so k batches of b act
    like one batch of k*b; a shorter last group at the end of the epoch is divided by its own
    size). With ``scheduler_per_iteration`` the scheduler steps after every optimizer step (Poly,
    OneCycle). Losses stay on the device until the end of the epoch: no host sync per batch.
    ``freeze_bn=True`` keeps every BatchNorm layer in eval mode: it normalises with its running
    statistics and does not update them (its affine weights still learn) - the usual choice for a
    pretrained backbone trained with small batches. Given a submodule (``freeze_bn=model.backbone``)
    it does so for that part only.

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
    keep_freed_memory(device)                   # CPU: no mmap/munmap per step (see devices.py)
    loss_fn = loss_fn or cross_entropy          # 0, not NaN, on a batch with no labelled pixel
    dtype = autocast_dtype(device, amp)
    channels_last = use_channels_last(channels_last, device)
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
        n = dryrun.batches(n if n is not None else dryrun.train_batches())
        loader = itertools.islice(loader, n)
    cap = dryrun.max_batch()
    per_step: list[torch.Tensor] = []
    step_lrs: list[list[float]] = []
    parts: dict[str, torch.Tensor] = {}
    group_loss = torch.zeros((), device=device)
    optimizer.zero_grad(set_to_none=True)
    with cudnn_benchmark(device):           # fixed-size crops: cuDNN picks its fastest kernels
        bar = tqdm(loader, desc=desc, total=n, leave=False, disable=not progress)
        for i, (images, targets) in enumerate(bar):
            if cap is not None:
                images, targets = images[:cap], targets[:cap]
            images, targets = dryrun.shrink(images, targets)   # SEG_DRY_RUN_SCALE (a CPU's dry run)
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
    return EpochStats(loss=total.item() / max(batches, 1), batches=batches,
                      step_losses=torch.stack(per_step).tolist() if per_step else [], step_lrs=step_lrs,
                      parts={name: float(value) / max(batches, 1) for name, value in parts.items()})


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
    keep_freed_memory(device)
    dtype = autocast_dtype(device, amp)
    channels_last = use_channels_last(channels_last, device)
    model.eval()
    cm = ConfusionMatrix(num_classes, ignore_index)
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    pixels = 0
    if dryrun.active():                        # SEG_DRY_RUN: a couple of images (seg_common.dryrun)
        loader = itertools.islice(loader, dryrun.eval_batches())
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
