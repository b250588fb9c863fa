"""Several processes, one model: the pieces ``seg_common.train`` needs under ``torchrun``.

``torchrun --nproc_per_node=N -m seg_common.train ...`` starts N copies of the training script and
tells each its place through environment variables (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``...). Each process trains a DistributedDataParallel copy of the model on its own share
of every batch; DDP averages the gradients after each backward pass, so the copies stay equal.

* :class:`RankSeededSampler` is ``seeded_loader``'s sampler made rank-aware: every process draws the
  same permutation and per-sample seeds from a generator seeded with the run's seed, and keeps the
  positions ``rank, rank + world, ...``. Batch k of the N processes together then holds exactly the
  images (and crops, flips) of batch k of one process with an N times larger batch: the batches
  depend on the seed only, not on the number of processes. The generator moves on by one draw per
  epoch, which does the job of ``DistributedSampler.set_epoch``, and the engine saves its state in
  the checkpoints (exact resume).
* :class:`GlobalMeanCrossEntropy`: the cross-entropy of each process divided by the number of
  labelled pixels of the *whole* batch (summed over the processes) times N. DDP averages gradients
  over the N processes, so the result is the gradient of the mean over all labelled pixels - what
  one process with the whole batch computes - even when void pixels are unevenly shared.
* :func:`all_reduce_sum` sums a tensor over the processes (the validation's confusion matrix).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterator, Sized

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from .data.loading import SeededDataset
from .losses import IGNORE_INDEX


@dataclass(frozen=True)
class Context:
    """Where this process stands: ``rank`` of ``world_size`` processes, ``local_rank`` on its node."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes checkpoints, logs and prints."""
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device_type: str) -> Context:
    """Join the process group that ``torchrun`` describes in the environment (nccl on CUDA, gloo on
    the CPU); a plain ``python -m seg_common.train`` is a group of one and joins nothing."""
    if not launched_by_torchrun():
        return Context()
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return Context(rank, local_rank, world)


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def _backend_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def all_reduce_sum(tensor: torch.Tensor) -> None:
    """Sum ``tensor`` over the processes, in place (a no-op in a single process). nccl reduces GPU
    tensors only, so a CPU tensor travels to this process's GPU and back."""
    if not dist.is_initialized():
        return
    device = _backend_device()
    if tensor.device == device:
        dist.all_reduce(tensor)
        return
    moved = tensor.to(device)
    dist.all_reduce(moved)
    tensor.copy_(moved)


def agree(flag: bool) -> bool:
    """True when ``flag`` is True in every process; False when it is False in every process; an
    error when the processes disagree (e.g. only some nodes see a checkpoint)."""
    if not dist.is_initialized():
        return flag
    count = torch.tensor([float(flag)], device=_backend_device())
    dist.all_reduce(count)
    if 0 < count.item() < dist.get_world_size():
        raise RuntimeError(
            f"{int(count.item())} of {dist.get_world_size()} processes see a checkpoint to resume from: the "
            "output_dir must be one folder that every node reads (a shared file system), or empty everywhere.")
    return flag


class RankSeededSampler(Sampler):
    """``(index, seed)`` pairs for one of ``world_size`` processes (see the module docstring).

    Each epoch draws the permutation and the seeds exactly as ``SeededSampler`` does, drops the
    last ``size % world_size`` positions so that every process gets as many, and keeps the
    positions ``rank::world_size``."""

    def __init__(self, data_source: Sized, rank: int, world_size: int, shuffle: bool = True,
                 generator: torch.Generator | None = None) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        self.size, self.rank, self.world_size, self.shuffle = len(data_source), rank, world_size, shuffle
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)

    def __len__(self) -> int:
        return self.size // self.world_size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = torch.randperm(self.size, generator=self.generator) if self.shuffle else torch.arange(self.size)
        seeds = torch.randint(0, 2**62, (self.size,), generator=self.generator)
        keep = len(self) * self.world_size
        yield from zip(order[:keep][self.rank::self.world_size].tolist(),
                       seeds[:keep][self.rank::self.world_size].tolist())


def seeded_loader(dataset: Dataset, batch_size: int, context: Context, *, seed: int = 0,
                  shuffle: bool = True, drop_last: bool = True, **kwargs: Any) -> DataLoader:
    """:func:`seg_common.data.loading.seeded_loader` for process ``context.rank``: ``batch_size``
    images per process, the same batches over all processes as one process with
    ``batch_size * world_size``. Same defaults (``pin_memory`` with CUDA, ``persistent_workers``
    with workers)."""
    kwargs.setdefault("pin_memory", torch.cuda.is_available())
    kwargs.setdefault("persistent_workers", kwargs.get("num_workers", 0) > 0)
    sampler = RankSeededSampler(dataset, context.rank, context.world_size, shuffle,
                                torch.Generator().manual_seed(seed))
    return DataLoader(SeededDataset(dataset), batch_size=batch_size, sampler=sampler, drop_last=drop_last,
                      generator=torch.Generator().manual_seed(seed + 1), **kwargs)


def shard(dataset: Dataset, context: Context) -> Dataset:
    """This process's share of an evaluation set: items ``rank, rank + world, ...``. No image is
    repeated to even out the shares (``DistributedSampler`` would, and count it twice)."""
    if not context.distributed:
        return dataset
    return Subset(dataset, range(context.rank, len(dataset), context.world_size))


class GlobalMeanCrossEntropy:
    """Cross-entropy over the labelled pixels of the whole batch of all processes (see the module
    docstring); one small all-reduce of the pixel count per step. In a single process it is
    :func:`seg_common.losses.cross_entropy`."""

    def __init__(self, ignore_index: int = IGNORE_INDEX) -> None:
        self.ignore_index = ignore_index

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = F.cross_entropy(logits, target, ignore_index=self.ignore_index, reduction="sum")
        count = (target != self.ignore_index).sum().to(total.dtype)
        if dist.is_initialized():
            world = dist.get_world_size()
            count = count.detach().clone()
            all_reduce_sum(count)
            count = count / world
        return total / count.clamp(min=torch.finfo(total.dtype).tiny)
