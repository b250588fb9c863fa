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
  runs every line a second one would).

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


def describe() -> str:
    """One line for the notebooks' set-up cell (empty outside a dry run)."""
    if not active():
        return ""
    cap = max_batch()
    batch = f", batches cut to {cap} images" if cap else ", full batches"
    train, evaluation = train_batches(), eval_batches()
    return (f"DRY RUN ({ENV}=1): every setting kept; at most {EPOCHS} epoch per run, {train} "
            f"training batch{'es' if train > 1 else ''} per epoch, {evaluation} evaluation "
            f"batch{'es' if evaluation > 1 else ''}{batch}. Results mean nothing.")
