import pytest
import torch
from torch.utils.data import Dataset

from seg_common.data.loading import seeded_loader
from seg_common.checkpoints import _loader_generators


class RandomItems(Dataset):
    """Item i is (i, a random draw): stands in for a dataset with random augmentation."""

    def __len__(self):
        return 10

    def __getitem__(self, index):
        return torch.tensor(index), torch.rand(3)


def epoch(loader, consume=0):
    batches = []
    for indices, draws in loader:
        torch.rand(consume)                     # e.g. dropout drawing from the global generator
        batches.append((indices.clone(), draws.clone()))
    return batches


def same(a, b):
    return len(a) == len(b) and all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, b))


def test_the_batches_do_not_depend_on_what_else_draws_random_numbers():
    torch.manual_seed(0)
    plain = epoch(seeded_loader(RandomItems(), 3, seed=5))
    torch.manual_seed(123)
    busy = epoch(seeded_loader(RandomItems(), 3, seed=5), consume=7)
    assert same(plain, busy)
    # ...while an ordinary loader's augmentation shifts with the other draws:
    torch.manual_seed(0)
    a = epoch(torch.utils.data.DataLoader(RandomItems(), 3))
    torch.manual_seed(0)
    b = epoch(torch.utils.data.DataLoader(RandomItems(), 3), consume=7)
    assert not same(a, b)


def test_augmentation_leaves_the_global_generator_alone():
    torch.manual_seed(0)
    state = torch.get_rng_state()
    epoch(seeded_loader(RandomItems(), 4, seed=1))
    assert torch.equal(torch.get_rng_state(), state)


def test_workers_draw_the_same_batches_as_the_main_process():
    main = epoch(seeded_loader(RandomItems(), 3, seed=2))
    workers = epoch(seeded_loader(RandomItems(), 3, seed=2, num_workers=2))
    assert same(main, workers)


def test_epochs_differ_seeds_differ_and_every_item_appears_once():
    loader = seeded_loader(RandomItems(), 3, seed=0)
    first, second = epoch(loader), epoch(loader)
    assert sorted(torch.cat([i for i, _ in first]).tolist()) == list(range(10))
    assert not same(first, second)
    assert not same(first, epoch(seeded_loader(RandomItems(), 3, seed=1)))
    ordered = epoch(seeded_loader(RandomItems(), 3, seed=0, shuffle=False, drop_last=True))
    assert torch.cat([i for i, _ in ordered]).tolist() == list(range(9))


def test_the_engine_checkpoints_its_generators_so_a_resumed_epoch_repeats():
    loader = seeded_loader(RandomItems(), 3, seed=4)
    gens = _loader_generators(loader)
    assert set(gens) == {"loader", "sampler"}
    saved = {k: g.get_state() for k, g in gens.items()}
    expected = epoch(loader)
    for k, g in gens.items():
        g.set_state(saved[k])
    assert same(epoch(loader), expected)


def test_it_refuses_a_sampler_of_its_own():
    with pytest.raises(TypeError, match="sampler"):
        seeded_loader(RandomItems(), 2, sampler=range(10))


def test_augmentation_seeds_only_the_cpu_generator(monkeypatch):
    # torch.manual_seed would also reseed the CUDA (and MPS, XPU) generators, which
    # fork_rng(devices=[]) does not restore: the model's dropout on the GPU would then follow
    # the last sample's seed.
    reseeded = []
    for module in (torch.cuda, torch.xpu):
        monkeypatch.setattr(module, "manual_seed_all", lambda seed: reseeded.append(seed))
    monkeypatch.setattr(torch.mps, "manual_seed", lambda seed: reseeded.append(seed))
    batches = epoch(seeded_loader(RandomItems(), 3, seed=5))
    assert reseeded == []
    # ...and the CPU stream is the one torch.manual_seed(seed) gives: the same batches as before.
    sampler_seeds = [s for _, s in seeded_loader(RandomItems(), 3, seed=5).sampler]
    torch.manual_seed(sampler_seeds[0])
    assert torch.equal(batches[0][1][0], torch.rand(3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_augmentation_leaves_the_cuda_generator_alone():
    torch.cuda.manual_seed_all(0)
    state = torch.cuda.get_rng_state()
    epoch(seeded_loader(RandomItems(), 4, seed=1))
    assert torch.equal(torch.cuda.get_rng_state(), state)


def test_gpu_defaults_pin_memory_and_keep_workers():
    data = list(range(8))
    loader = seeded_loader(data, 2, num_workers=2)
    assert loader.pin_memory == torch.cuda.is_available()
    assert loader.persistent_workers is True                      # workers kept between epochs
    assert seeded_loader(data, 2).persistent_workers is False     # no workers: nothing to keep
    loader = seeded_loader(data, 2, num_workers=2, pin_memory=False, persistent_workers=False)
    assert loader.pin_memory is False and loader.persistent_workers is False
