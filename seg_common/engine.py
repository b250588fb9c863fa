"""``fit``: epochs of training and validation, checkpoints and exact resume - and the one import for
the engine's parts.

``fit`` trains for a number of epochs and returns a history (one dict per epoch). With a
``checkpoint_dir`` it writes ``last.pt`` after every epoch - model, optimizer, scheduler, AMP
scaler, epoch, history, random-number-generator states and the run's settings - and ``best.pt``
whenever the validation mIoU improves: the model's weights with the epoch, score, history and
settings, without the optimizer's state (Adam's is twice the model's size), for ``load_weights``.
Files are written to a temporary name and renamed, so an interruption (a Colab disconnect, Ctrl-C)
never leaves a half-written checkpoint. ``resume=True`` continues from ``last.pt`` exactly where it
stopped: on the CPU, 2 epochs and then a resume to 4 give the same weights as 4 epochs in one go.

The parts live in modules of their own, one concern each, and are importable from here as before:

* :mod:`seg_common.checkpoints` - checkpoint and weight files, random states;
* :mod:`seg_common.devices` - the device, channels-last, cuDNN's benchmark;
* :mod:`seg_common.loops` - ``train_one_epoch`` (returns :class:`~seg_common.loops.EpochStats`) and ``evaluate``;
* :mod:`seg_common.inference` - ``infer_logits`` (whole image, sliding window, flip) and ``predict``;
* :mod:`seg_common.runs` - recorded runs (``save_run``, ``load_run``) and statistics over seeds.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import nn
from tqdm.auto import tqdm

from . import dryrun
from .checkpoints import (BEST, CHECKPOINT_FORMAT, LAST, CheckpointError, _model_name,
                          _rng_state, _set_rng_state, load_checkpoint, load_state_into, load_weights,
                          remove_stale_temporaries, save_checkpoint, save_weights)
from .devices import cudnn_benchmark, default_device, use_channels_last
from .inference import infer_logits, predict
from .loops import EpochStats, _grad_scaler, evaluate, set_batchnorm_eval, train_one_epoch
from .memory import peak_mb, reset_peak
from .precision import autocast_dtype, needs_grad_scaler
from .runs import RUN_FILE, compare_settings, load_run, load_runs, save_run, summarize_runs

_use_channels_last = use_channels_last        # the names before the split, for code that imported them

# What best.pt keeps of last.pt: enough for load_weights and to say which epoch it was; no optimizer,
# scheduler, scaler or random states (a resume reads last.pt), so a run's files take about a third less.
BEST_KEYS = ("format", "model", "model_class", "epoch", "history", "best_miou", "settings")

__all__ = ["BEST", "CHECKPOINT_FORMAT", "LAST", "RUN_FILE", "CheckpointError", "EpochStats", "compare_settings",
           "cudnn_benchmark", "default_device", "evaluate", "fit", "infer_logits", "load_checkpoint", "load_run",
           "load_runs", "load_state_into", "load_weights", "predict", "remove_stale_temporaries", "save_checkpoint",
           "save_run", "save_weights", "set_batchnorm_eval", "summarize_runs", "train_one_epoch", "use_channels_last"]


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
    ignore_index: int = 255,
) -> list[dict[str, Any]]:
    """Train ``model`` for ``epochs`` epochs, validating after each; return the history.

    Args:
        loss_fn: ``(logits [B, K, H, W], target [B, H, W]) -> scalar``; default
            :func:`seg_common.losses.cross_entropy` (ignores 255; 0, not NaN, on an all-void batch).
        scheduler: a ``torch.optim.lr_scheduler`` object, stepped per epoch, or per optimizer
            step with ``scheduler_per_iteration=True``. A resume restores it as saved, length
            included: resuming for more epochs than a PolynomialLR or OneCycleLR was built for is
            refused (a longer run needs a new ``checkpoint_dir``).
        checkpoint_dir: where ``last.pt`` (everything a resume needs) and ``best.pt`` (the best
            epoch's weights, for :func:`load_weights`) go; nothing is saved when None.
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
        ignore_index: the label that validation neither scores nor counts in its loss (255, the
            course's void; 0 for labels numbered void-first, as a learner's ADE20K run in notebook
            09 - give the training ``loss_fn`` the same, e.g. ``nn.CrossEntropyLoss(ignore_index=0)``).

    Each history record holds ``epoch, lr, train_loss, train_seconds, seconds`` (training only,
    and the whole epoch with validation) and, for epochs that were validated, ``val_loss, pixel_acc, mean_acc, miou, iou`` (per class).
    """
    device = torch.device(device) if device is not None else default_device()
    epochs = dryrun.epochs(epochs)             # SEG_DRY_RUN: one epoch (seg_common.dryrun)
    model.to(device)
    channels_last = use_channels_last(channels_last, device)
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
            stats = train_one_epoch(
                model, train_loader, optimizer, loss_fn=loss_fn, device=device, scheduler=scheduler,
                scheduler_per_iteration=scheduler_per_iteration, grad_accum_steps=grad_accum_steps,
                amp=amp, scaler=scaler, channels_last=channels_last, progress=progress,
                desc=f"epoch {epoch + 1}", freeze_bn=freeze_bn)
            if scheduler is not None and not scheduler_per_iteration:
                scheduler.step()
            record: dict[str, Any] = {"epoch": epoch + 1, "lr": lr, "train_loss": stats.loss,
                                      "train_seconds": time.perf_counter() - started}
            record.update({f"train_loss_{name}": value for name, value in stats.parts.items()})
            if record_steps:
                record.update(step_loss=stats.step_losses, step_lr=stats.step_lrs)
            if val_loader is not None and ((epoch + 1) % eval_every == 0 or epoch + 1 == epochs):
                scored = getattr(model, "module", model) if all_reduce is not None else model
                scores = evaluate(scored, val_loader, num_classes, device=device, amp=amp, ignore_index=ignore_index,
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
                if improved:               # the weights alone: resuming reads last.pt, never best.pt
                    save_checkpoint({key: state[key] for key in BEST_KEYS}, ckpt_dir / BEST)
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
