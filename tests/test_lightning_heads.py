"""seg_common.lightning_heads (notebooks 09): the resumable shuffle, the frozen backbone's modes,
the thing-class scores, the report's item, and one Lightning epoch against the engine's plain loop."""
import logging
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from seg_common.data.ade20k import ADE20KSegmentation
from seg_common.data.sample_ade20k import make_sample_ade20k
from seg_common.engine import fit
from seg_common.lightning_heads import (
    EpochShuffle, Head1x1, Segmenter, make_trainer, report_transforms, stand_in_alexnet, thing_scores, train_loader,
)
from seg_common.metrics import ConfusionMatrix

logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)


@pytest.fixture(scope="module")
def ade_sample(tmp_path_factory):
    return make_sample_ade20k(tmp_path_factory.mktemp("ade"), n_train=9, n_val=9)


def test_epoch_shuffle_is_a_function_of_seed_and_epoch():
    sampler = EpochShuffle(20, seed=3)
    passes = [list(sampler) for _ in range(3)]                 # no set_epoch: the next epoch each pass
    assert all(sorted(p) == list(range(20)) for p in passes)
    assert passes[0] != passes[1] != passes[2]
    resumed = EpochShuffle(20, seed=3)                         # a new object, as after a resume
    resumed.set_epoch(2)
    assert list(resumed) == passes[2]
    assert list(EpochShuffle(20, seed=4)) != passes[0]


def test_segmenter_keeps_a_frozen_backbone_in_eval_mode():
    backbone = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4))
    model = Segmenter(Head1x1(4, 3, size=8), num_outputs=3, backbone=backbone)
    statistics = backbone[1].running_mean.clone()
    model.train()
    assert model.head.training and not backbone.training
    assert not any(p.requires_grad for p in backbone.parameters())
    model(torch.randn(2, 3, 8, 8) * 5 + 3)
    assert torch.equal(backbone[1].running_mean, statistics), "BatchNorm statistics of a frozen backbone moved"


def test_thing_scores_ignore_void_and_average_the_things():
    cm = ConfusionMatrix(3, ignore_index=0)
    # class 1: 2 right, 1 predicted as 2; class 2: 1 right; void (0) pixels are not scored
    cm.update(torch.tensor([1, 1, 2, 2, 1, 2]), torch.tensor([1, 1, 1, 2, 0, 0]))
    scores = thing_scores(cm)
    # IoU(1) = 2 / (3 + 2 - 2) = 2/3, IoU(2) = 1 / (1 + 2 - 1) = 1/2; pixel accuracy 3/4
    assert scores["miou"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert scores["pixel_acc"] == pytest.approx(3 / 4)


def test_report_item_is_square_normalised_and_void_first(ade_sample):
    raw = ADE20KSegmentation(ade_sample, "training", annotations="instance")
    image, mask = raw[0]
    x, y = report_transforms(48)(image, mask)
    assert x.shape == (3, 48, 48) and x.dtype == torch.float32 and y.shape == (48, 48) and y.dtype == torch.int64
    small = torch.nn.functional.interpolate(mask[None, None].float(), size=(48, 48), mode="nearest")[0, 0].long()
    expected = torch.where(small == 255, 0, small + 1)          # void (255) -> 0, thing class r -> r + 1
    assert (y == expected).float().mean() > 0.95                # torchvision's and F's nearest differ at a few edges
    assert set(y.unique().tolist()) <= set(range(raw.num_classes + 1))


def test_one_lightning_epoch_equals_the_engines_plain_loop():
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*but have no `val_dataloader`.*")
    g = torch.Generator().manual_seed(0)
    features = torch.randn(24, 8, 3, 3, generator=g)
    labels = torch.randint(0, 5, (24, 12, 12), generator=g)
    data = TensorDataset(features, labels)

    torch.manual_seed(1)
    by_lightning = Segmenter(Head1x1(8, 5, size=12), num_outputs=5, lr=1e-2)
    make_trainer(2, accelerator="cpu").fit(by_lightning, train_loader(data, batch_size=8, seed=7))
    torch.manual_seed(1)
    by_engine = Head1x1(8, 5, size=12)
    fit(by_engine, train_loader(data, batch_size=8, seed=7), None, epochs=2, num_classes=5,
        optimizer=torch.optim.Adam(by_engine.parameters(), lr=1e-2), loss_fn=nn.CrossEntropyLoss(ignore_index=0),
        device="cpu", amp=False, channels_last=False, progress=False, verbose=False, write_checkpoints=False)
    for a, b in zip(by_lightning.head.parameters(), by_engine.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert not torch.equal(by_engine.score.bias, Head1x1(8, 5).score.bias)


def test_the_stand_in_alexnet_is_frozen_and_repeatable(ade_sample):
    first, history = stand_in_alexnet(ade_sample, size=64, epochs=1, batch_size=4)
    again, _ = stand_in_alexnet(ade_sample, size=64, epochs=1, batch_size=4)
    assert len(history) == 1 and np.isfinite(history[0]["train_loss"])
    assert not first.training and not any(p.requires_grad for p in first.parameters())
    for a, b in zip(first.parameters(), again.parameters()):
        assert torch.equal(a, b)
    assert first(torch.zeros(1, 3, 64, 64)).shape[1] == 256
