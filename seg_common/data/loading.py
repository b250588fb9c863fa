"""A DataLoader whose random augmentation has its own random stream.

With ``num_workers=0`` the transforms draw from torch's global generator, the same one that dropout
and weight initialisation use: a model with one more dropout layer then sees different crops and
flips, and two runs that should differ in one thing differ in two. ``seeded_loader`` draws, per
epoch, the order of the samples and one seed per sample from a private generator; each sample's
transforms run with the global generator set to that seed and restored afterwards. The batches then
depend on ``seed`` alone - not on the model, the number of workers or anything else that consumes
random numbers - and the engine saves the private generator in checkpoints, so a resumed run sees
the batches an uninterrupted one would have seen.
"""
from __future__ import annotations

from typing import Any, Iterator, Sized

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class SeededSampler(Sampler):
    """Yields ``(index, seed)`` pairs: each epoch, a permutation of the dataset (or the identity
    with ``shuffle=False``) and one seed per sample, both drawn from ``generator``."""

    def __init__(self, data_source: Sized, shuffle: bool = True, generator: torch.Generator | None = None) -> None:
        self.size, self.shuffle = len(data_source), shuffle
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = torch.randperm(self.size, generator=self.generator) if self.shuffle else torch.arange(self.size)
        seeds = torch.randint(0, 2**62, (self.size,), generator=self.generator)
        yield from zip(order.tolist(), seeds.tolist())


class SeededDataset(Dataset):
    """``dataset[index]`` computed with torch's global CPU generator seeded to ``seed``, for keys
    ``(index, seed)``; the caller's generator state is restored afterwards.

    Only the CPU generator is seeded (the transforms draw from it): ``torch.manual_seed`` would
    also reseed the CUDA and MPS generators, which ``fork_rng(devices=[])`` does not restore, so
    the model's dropout on a GPU would follow the last sample's seed."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        index, seed = key
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            return self.dataset[index]

    def __repr__(self) -> str:
        return f"SeededDataset({self.dataset!r})"


def seeded_loader(dataset: Dataset, batch_size: int, *, seed: int = 0, shuffle: bool = True,
                  drop_last: bool = False, **kwargs: Any) -> DataLoader:
    """A ``DataLoader`` over ``dataset`` whose order and augmentation are a function of ``seed``
    only. Other keyword arguments (``num_workers``, ``collate_fn``, ``pin_memory``...) go to the
    ``DataLoader``; ``sampler``, ``batch_sampler`` and ``generator`` are this function's job.

    Defaults for a GPU: ``pin_memory`` is on when CUDA is available (batches are copied to the GPU
    from page-locked memory, asynchronously), and with ``num_workers`` > 0 ``persistent_workers``
    keeps the worker processes alive between epochs instead of starting them again each epoch
    (each start re-imports torch and copies the dataset). Pass either explicitly to override."""
    for taken in ("sampler", "batch_sampler", "generator"):
        if taken in kwargs:
            raise TypeError(f"seeded_loader chooses the {taken} itself; do not pass {taken}=")
    kwargs.setdefault("pin_memory", torch.cuda.is_available())
    kwargs.setdefault("persistent_workers", kwargs.get("num_workers", 0) > 0)
    sampler = SeededSampler(dataset, shuffle, torch.Generator().manual_seed(seed))
    # The loader's own generator seeds worker processes (and is drawn from even without workers):
    # a private one leaves the global generator to the model.
    return DataLoader(SeededDataset(dataset), batch_size=batch_size, sampler=sampler, drop_last=drop_last,
                      generator=torch.Generator().manual_seed(seed + 1), **kwargs)
