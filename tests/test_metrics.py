import math

import pytest
import torch
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

from seg_common.metrics import ConfusionMatrix


def test_hand_computed_case():
    target = torch.tensor([[0, 0, 1, 1],
                           [0, 2, 2, 255]])
    pred = torch.tensor([[0, 1, 1, 1],
                         [0, 2, 0, 2]])
    cm = ConfusionMatrix(3)
    cm.update(pred, target)
    # 7 valid pixels; correct: (0,0),(0,2),(0,3),(1,0),(1,1) -> 5
    assert cm.mat.tolist() == [[2, 1, 0],
                               [0, 2, 0],
                               [1, 0, 1]]
    m = cm.compute()
    assert m.pixel_acc == pytest.approx(5 / 7)
    # IoU: class 0: 2 / (3 + 3 - 2) = 1/2; class 1: 2 / (2 + 3 - 2) = 2/3; class 2: 1 / (2 + 1 - 1) = 1/2
    assert m.iou.tolist() == pytest.approx([1 / 2, 2 / 3, 1 / 2])
    assert m.miou == pytest.approx((1 / 2 + 2 / 3 + 1 / 2) / 3)
    assert m.mean_acc == pytest.approx((2 / 3 + 1 + 1 / 2) / 3)


def test_absent_classes_are_left_out_of_the_mean():
    cm = ConfusionMatrix(5)
    cm.update(torch.tensor([0, 0, 1]), torch.tensor([0, 1, 1]))
    m = cm.compute()
    assert math.isnan(m.iou[3]) and math.isnan(m.iou[4])
    assert m.miou == pytest.approx((1 / 2 + 1 / 2) / 2)
    # a class that is predicted but never true counts, with IoU 0
    cm.update(torch.tensor([4]), torch.tensor([0]))
    assert cm.compute().iou[4] == 0 and cm.compute().miou == pytest.approx((1 / 3 + 1 / 2 + 0) / 3)


def test_matches_torchmetrics_over_batches():
    gen = torch.Generator().manual_seed(0)
    k = 21
    cm = ConfusionMatrix(k)
    jaccard = MulticlassJaccardIndex(k, average=None, ignore_index=255)
    acc_micro = MulticlassAccuracy(k, average="micro", ignore_index=255)
    acc_macro = MulticlassAccuracy(k, average="macro", ignore_index=255)
    for _ in range(3):
        target = torch.randint(0, k, (2, 30, 40), generator=gen)
        target[torch.rand(target.shape, generator=gen) < 0.1] = 255
        pred = torch.where(torch.rand(target.shape, generator=gen) < 0.6, target.clamp(max=k - 1),
                           torch.randint(0, k, target.shape, generator=gen))
        cm.update(pred, target)
        jaccard.update(pred, target)
        acc_micro.update(pred, target)
        acc_macro.update(pred, target)
    m = cm.compute()
    assert torch.allclose(m.iou, jaccard.compute(), atol=1e-6)
    assert m.miou == pytest.approx(jaccard.compute().mean().item(), abs=1e-6)
    assert m.pixel_acc == pytest.approx(acc_micro.compute().item(), abs=1e-6)
    assert m.mean_acc == pytest.approx(acc_macro.compute().item(), abs=1e-6)


def test_ignore_only_batch_and_reset():
    cm = ConfusionMatrix(3)
    cm.update(torch.zeros(4, dtype=torch.long), torch.full((4,), 255))
    m = cm.compute()
    assert cm.mat.sum() == 0 and math.isnan(m.pixel_acc) and math.isnan(m.miou)
    cm.update(torch.tensor([1]), torch.tensor([1]))
    cm.reset()
    assert cm.mat.sum() == 0


def test_bad_inputs():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="same shape"):
        cm.update(torch.zeros(2, 3, 4, dtype=torch.long), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="integer class indices"):
        cm.update(torch.zeros(4), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[7\] are outside 0..2"):
        cm.update(torch.tensor([0, 1]), torch.tensor([7, 1]))
