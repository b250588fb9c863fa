import math

import pytest
import torch
from torch import nn

from seg_common.engine import fit, train_one_epoch
from seg_common.models import DeepLabV3Plus
from seg_common.optim import freeze_backbone, param_groups


class WithBackbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.head = nn.Sequential(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4), nn.Conv2d(4, 3, 1))

    def forward(self, x):
        return self.head(self.backbone(x))


def batches(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(2, 3, 8, 8, generator=g), torch.randint(0, 3, (2, 8, 8), generator=g)) for _ in range(n)]


def test_param_groups_cover_every_weight_once_at_the_right_rates():
    model = DeepLabV3Plus(5, "resnet18", 16)
    groups = param_groups(model, 0.01, backbone_lr_scale=0.1, weight_decay=1e-4)
    assert [g["name"] for g in groups] == ["head", "backbone"]
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in model.backbone.parameters()}
    opt = torch.optim.SGD(groups, lr=0.01, momentum=0.9)
    assert [g["lr"] for g in opt.param_groups] == [0.01, pytest.approx(0.001)]
    assert all(g["weight_decay"] == 1e-4 for g in opt.param_groups)


def test_schedulers_keep_the_ratio_between_groups():
    model = WithBackbone()
    opt = torch.optim.SGD(param_groups(model, 0.1, backbone_lr_scale=0.1), lr=0.1)
    sched = torch.optim.lr_scheduler.PolynomialLR(opt, total_iters=10, power=0.9)
    for t in range(1, 9):
        opt.step()
        sched.step()
        head, backbone = (g["lr"] for g in opt.param_groups)
        assert head == pytest.approx(0.1 * (1 - t / 10) ** 0.9)
        assert backbone == pytest.approx(0.1 * head)


def test_frozen_backbone_does_not_change_and_is_left_out_of_the_optimizer():
    torch.manual_seed(0)
    model = WithBackbone()
    assert freeze_backbone(model) == 4                     # conv weight + bias, BN weight + bias
    groups = param_groups(model, 0.1)
    assert [g["name"] for g in groups] == ["head"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(groups, lr=0.1, momentum=0.9)
    train_one_epoch(model, batches(), opt, device="cpu", progress=False, freeze_bn=model.backbone)
    after = model.state_dict()
    for key in before:                                     # weights and running statistics
        same = torch.equal(before[key], after[key])
        assert same == key.startswith("backbone."), key
    freeze_backbone(model, frozen=False)
    assert all(p.requires_grad for p in model.parameters())


def test_freeze_bn_on_a_submodule_leaves_the_rest_training():
    torch.manual_seed(0)
    model = WithBackbone()
    before = model.backbone[1].running_mean.clone(), model.head[1].running_mean.clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    train_one_epoch(model, batches(2), opt, device="cpu", progress=False, freeze_bn=model.backbone)
    assert torch.equal(model.backbone[1].running_mean, before[0])
    assert not torch.equal(model.head[1].running_mean, before[1])


def test_models_without_a_backbone_get_a_clear_error():
    with pytest.raises(ValueError, match="no `backbone`"):
        param_groups(nn.Conv2d(3, 3, 1), 0.1)


def test_fit_records_every_steps_loss_and_rates_per_group():
    torch.manual_seed(0)
    model = WithBackbone()
    opt = torch.optim.SGD(param_groups(model, 0.2, backbone_lr_scale=0.1), lr=0.2)
    steps = 2 * 3
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[0.2, 0.02], total_steps=steps)
    history = fit(model, batches(3), None, optimizer=opt, scheduler=sched, scheduler_per_iteration=True,
                  epochs=2, num_classes=3, device="cpu", record_steps=True, progress=False, verbose=False)
    lrs = [lr for h in history for lr in h["step_lr"]]
    assert len(lrs) == steps and all(len(h["step_loss"]) == 3 for h in history)
    # OneCycle (cosine, 30% warm-up) from max_lr / 25, rate used by step t (before its scheduler step)
    up = 0.3 * steps - 1
    def expected(t, top):
        lo, end = top / 25, top / 25 / 1e4
        if t <= up:
            return lo + (top - lo) * (1 - math.cos(math.pi * t / up)) / 2
        return end + (top - end) * (1 + math.cos(math.pi * (t - up) / (steps - 1 - up))) / 2
    for t, (head, backbone) in enumerate(lrs):
        assert head == pytest.approx(expected(t, 0.2)) and backbone == pytest.approx(expected(t, 0.02))
    for h in history:                                   # the epoch's loss is the mean of its steps
        assert h["train_loss"] == pytest.approx(sum(h["step_loss"]) / 3, rel=1e-5)
