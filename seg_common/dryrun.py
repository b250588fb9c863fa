"""The dry run: every setting of a profile kept, only the amount of work cut.

A night of GPU time is a bad way to find a typo in the last cell. With ``SEG_DRY_RUN=1`` a notebook
runs every cell with its profile's real settings - datasets and splits, models and backbones,
pretrained weights, crops, batch sizes, losses, schedules, evaluation protocols - and the engine
cuts only the work, in the spirit of Lightning's ``fast_dev_run``:

* :func:`seg_common.engine.fit` trains at most ``EPOCHS`` epoch(s);
* :func:`seg_common.engine.train_one_epoch` stops after ``TRAIN_BATCHES`` batches;
* :func:`seg_common.engine.evaluate` scores ``EVAL_BATCHES`` batches (a couple of images);
* ``SEG_DRY_RUN_MAX_BATCH=n`` also trains on the first ``n`` images of each batch (``make dry-run``
  sets 2 on a machine without a GPU, to stay inside a laptop's memory; on a GPU it keeps the full
  batch, so the dry run also finds out whether the recipe fits the card);
* ``SEG_DRY_RUN_BATCHES=n`` sets both counts of batches to ``n`` (``make dry-run`` sets 1 on a
  machine without a GPU: a full-size step on a laptop CPU takes seconds, and one batch already
  runs every line a second one would);
* ``SEG_DRY_RUN_SCALE=s`` (0 < s <= 1) shrinks what the models see to ``s`` of each side: the
  engine's training steps (images and labels), :func:`seg_common.engine.infer_logits` and
  :func:`seg_common.engine.predict` (images; the logits are scaled back, so every caller gets the
  sizes it asked for). ``make dry-run`` sets 0.5 on a machine without a GPU: the loaders, crops,
  windows and label maps keep their real sizes, the networks' arithmetic costs a quarter. A GPU's
  dry run keeps every size;
* with a batch cap (a CPU), :mod:`seg_common.benchmark` measures without a warm-up pass and at a
  quarter of each side (:func:`measured_size`): a CPU's timing of a GPU recipe means nothing, and
  a 2048x1024 pass of a ResNet-101 costs a CPU tens of seconds. A GPU's dry run measures as usual.

Cells that judge results (a check cell asserting that the mIoU beats a floor) skip their
judgement in a dry run and say so: a model trained for two batches has nothing to judge.
``make dry-run`` executes every notebook this way in the full profile on stand-in data and weights
(``tools/dry_run.py``).
"""
from __future__ import annotations

import itertools
import os
from typing import Iterable, Iterator, Sequence, TypeVar

T = TypeVar("T")

ENV, MAX_BATCH_ENV, BATCHES_ENV = "SEG_DRY_RUN", "SEG_DRY_RUN_MAX_BATCH", "SEG_DRY_RUN_BATCHES"
SCALE_ENV = "SEG_DRY_RUN_SCALE"
EPOCHS, TRAIN_BATCHES, EVAL_BATCHES = 1, 2, 2     # the defaults; SEG_DRY_RUN_BATCHES overrides the two counts


def active() -> bool:
    """True when ``SEG_DRY_RUN`` is set to anything but ``""``/``0``/``false``/``no``."""
    return os.environ.get(ENV, "").strip().lower() not in ("", "0", "false", "no")


def max_batch() -> int | None:
    """The batch cap of a dry run (``SEG_DRY_RUN_MAX_BATCH``), or None: full batches."""
    return _positive(MAX_BATCH_ENV)


def _positive(variable: str) -> int | None:
    value = os.environ.get(variable, "").strip()
    if not active() or not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{variable} must be a positive integer, got {value!r}")
    return int(value)


def input_scale() -> float | None:
    """The share of each side the models see in a dry run (``SEG_DRY_RUN_SCALE``), or None: all."""
    value = os.environ.get(SCALE_ENV, "").strip()
    if not active() or not value:
        return None
    try:
        scale = float(value)
    except ValueError:
        scale = -1.0
    if not 0 < scale <= 1:
        raise ValueError(f"{SCALE_ENV} must be a number in (0, 1], got {value!r}")
    return None if scale == 1 else scale


def shrink(images, targets=None):
    """``images`` ``[B, C, H, W]`` (and ``targets`` of the same height and width: class maps by
    nearest neighbour, other maps bilinear) at :func:`input_scale` of each side; unchanged outside
    a dry run with ``SEG_DRY_RUN_SCALE``, or when the targets are not maps of the images' size."""
    scale = input_scale()
    if scale is None or not hasattr(images, "ndim") or images.ndim != 4:
        return images, targets
    import torch.nn.functional as F

    size = tuple(max(1, round(v * scale)) for v in images.shape[-2:])
    if targets is not None:
        if not hasattr(targets, "ndim") or targets.ndim < 3 or tuple(targets.shape[-2:]) != tuple(images.shape[-2:]):
            return images, targets
        maps = targets if targets.ndim == 4 else targets[:, None]
        if targets.is_floating_point():
            maps = F.interpolate(maps, size=size, mode="bilinear", align_corners=False)
        else:
            maps = F.interpolate(maps.float(), size=size, mode="nearest").to(targets.dtype)
        targets = maps if targets.ndim == 4 else maps[:, 0]
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False), targets


def train_batches() -> int:
    """Training batches per epoch in a dry run: ``SEG_DRY_RUN_BATCHES``, else ``TRAIN_BATCHES``."""
    return _positive(BATCHES_ENV) or TRAIN_BATCHES


def eval_batches() -> int:
    """Evaluation batches in a dry run: ``SEG_DRY_RUN_BATCHES``, else ``EVAL_BATCHES``."""
    return _positive(BATCHES_ENV) or EVAL_BATCHES


def epochs(n: int) -> int:
    """``n`` epochs, or at most ``EPOCHS`` in a dry run."""
    return min(n, EPOCHS) if active() else n


def limit(items: Iterable[T], n: int) -> Iterator[T]:
    """The first ``n`` items in a dry run, all of them otherwise (for a notebook's own loops)."""
    return itertools.islice(items, n) if active() else iter(items)


def subset(dataset: Sequence[T], n: int) -> Sequence[T]:
    """The first ``n`` items of ``dataset`` in a dry run (a ``torch.utils.data.Subset``), the whole
    dataset otherwise: for loops the engine does not run, such as ``d2l.train_ch13``."""
    if not active():
        return dataset
    from torch.utils.data import Subset

    return Subset(dataset, range(min(n, len(dataset))))


def batch_size(n: int) -> int:
    """A batch size for a loop the engine does not run (``d2l.train_ch13``): ``n``, or at most the
    dry run's cap (``SEG_DRY_RUN_MAX_BATCH``)."""
    cap = max_batch()
    return n if cap is None else min(n, cap)


def batch_sizes(sizes: Sequence[int]) -> list[int]:
    """A sweep of batch sizes; in a dry run with a batch cap (a CPU) its two smallest, enough to
    draw a line: the largest would not fit a laptop's memory. A GPU's dry run keeps them all, to
    find out what fits the card."""
    sizes = sorted(sizes)
    return sizes if max_batch() is None else sizes[:2]


def images(n: int) -> int:
    """How many of ``n`` images a notebook's own evaluation loop uses: all of them, or
    ``eval_batches()`` in a dry run."""
    return min(n, eval_batches()) if active() else n


def batches(n: int, what: str = "train") -> int:
    """How many of ``n`` batches to run: ``n`` normally, at most the dry run's cap for ``what``
    (``"train"`` or ``"eval"``) in a dry run."""
    if not active():
        return n
    return min(n, train_batches() if what == "train" else eval_batches())


def skipped(what: str) -> bool:
    """In a dry run, print that the check ``what`` is skipped and return True (a check cell runs
    ``if not dryrun.skipped("..."):`` before its asserts); otherwise return False."""
    if active():
        print(f"dry run: {what} skipped (the models trained for a couple of batches)")
        return True
    return False


MEASURE_SHRINK = 4      # a CPU dry run measures at 1/4 of each side


def measured_size(size: Sequence[int] | None) -> tuple[int, ...] | None:
    """The size :mod:`seg_common.benchmark` measures at: ``size``, or in a dry run with a batch cap
    (a CPU) each side divided by ``MEASURE_SHRINK``, at least 64 px (a ResNet then still has 2x2
    features to normalise). None stays None."""
    if size is None:
        return None
    size = tuple(int(v) for v in size)
    if max_batch() is None:
        return size
    return tuple(max(64, v // MEASURE_SHRINK) for v in size)


def warmup_passes() -> int:
    """Untimed passes before a measurement: 1, or 0 in a dry run (its timings mean nothing)."""
    return 0 if active() else 1


def describe() -> str:
    """One line for the notebooks' set-up cell (empty outside a dry run)."""
    if not active():
        return ""
    cap = max_batch()
    batch = f", batches cut to {cap} images" if cap else ", full batches"
    scale = input_scale()
    if scale is not None:
        batch += f", the networks see {scale:g} of each side"
    train, evaluation = train_batches(), eval_batches()
    return (f"DRY RUN ({ENV}=1): every setting kept; at most {EPOCHS} epoch per run, {train} "
            f"training batch{'es' if train > 1 else ''} per epoch, {evaluation} evaluation "
            f"batch{'es' if evaluation > 1 else ''}{batch}. Results mean nothing.")
