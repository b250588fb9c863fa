import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from seg_common.losses import (WeightedSum, cross_entropy, dice_loss, focal_loss, lovasz_grad,
                               lovasz_softmax)

LOSSES = [cross_entropy, lovasz_softmax, dice_loss, focal_loss]


def jaccard_loss_of_set(wrong: set[int], fg: set[int]) -> float:
    """The Jaccard loss of one class when the pixels in ``wrong`` are mispredicted: |M| / |F u M|."""
    if not wrong:
        return 0.0
    return len(wrong) / len(fg | wrong)


def lovasz_by_definition(errors: list[float], fg: set[int]) -> float:
    """The Lovasz extension written out: sort the errors, then sum error_i times the increase of
    the set function when the i-th worst pixel joins the set of wrong pixels."""
    order = sorted(range(len(errors)), key=lambda i: -errors[i])
    total, wrong = 0.0, set()
    for i in order:
        before = jaccard_loss_of_set(wrong, fg)
        wrong = wrong | {i}
        total += errors[i] * (jaccard_loss_of_set(wrong, fg) - before)
    return total


def test_lovasz_softmax_equals_its_definition_on_tiny_inputs():
    torch.manual_seed(0)
    for _ in range(5):
        logits = torch.randn(1, 3, 2, 3)
        target = torch.randint(0, 3, (1, 2, 3))
        target[0, 0, 0] = 255                                  # one void pixel, left out
        probs = logits.softmax(1)[0].reshape(3, -1).T           # [pixels, classes]
        labels = target.reshape(-1)
        keep = labels != 255
        probs, labels = probs[keep], labels[keep]
        expected = []
        for c in labels.unique().tolist():
            fg = {i for i, y in enumerate(labels.tolist()) if y == c}
            errors = [abs(float(y == c) - float(p)) for y, p in zip(labels.tolist(), probs[:, c])]
            expected.append(lovasz_by_definition(errors, fg))
        assert lovasz_softmax(logits, target).item() == pytest.approx(sum(expected) / len(expected), abs=1e-6)


def test_lovasz_on_hard_predictions_is_one_minus_iou():
    """On one-hot 'probabilities' the extension equals the set function: 1 - IoU per class."""
    target = torch.tensor([[[0, 0, 1, 1, 2, 2]]])
    pred = torch.tensor([[[0, 1, 1, 1, 2, 0]]])
    logits = F.one_hot(pred, 3).permute(0, 3, 1, 2).float() * 100    # softmax = one-hot
    ious = []
    for c in range(3):
        inter = ((pred == c) & (target == c)).sum().item()
        union = ((pred == c) | (target == c)).sum().item()
        ious.append(inter / union)
    assert lovasz_softmax(logits, target).item() == pytest.approx(1 - sum(ious) / 3, abs=1e-5)


def test_lovasz_grad_by_hand():
    # gt sorted by error: [1, 0, 1]; |F| = 2. J after 1 wrong: 1 - 1/2, after 2: 1 - 1/3, after 3: 1
    g = lovasz_grad(torch.tensor([1.0, 0.0, 1.0]))
    assert g.tolist() == pytest.approx([0.5, 2 / 3 - 0.5, 1 - 2 / 3])


def test_cross_entropy_and_focal_by_hand():
    logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 1.0]]]])          # [1, 2, 1, 2]
    target = torch.tensor([[[0, 255]]])
    p = math.exp(2) / (math.exp(2) + 1)
    assert cross_entropy(logits, target).item() == pytest.approx(-math.log(p))
    assert focal_loss(logits, target, gamma=2).item() == pytest.approx(-(1 - p) ** 2 * math.log(p), rel=1e-5)
    assert focal_loss(logits, target, gamma=0).item() == pytest.approx(cross_entropy(logits, target).item())


def test_dice_by_hand():
    logits = torch.log(torch.tensor([[[[0.8, 0.3]], [[0.2, 0.7]]]]))  # softmax = these probabilities
    target = torch.tensor([[[0, 1]]])
    d0 = (2 * 0.8 + 1) / (1.1 + 1 + 1)
    d1 = (2 * 0.7 + 1) / (0.9 + 1 + 1)
    assert dice_loss(logits, target).item() == pytest.approx(1 - (d0 + d1) / 2, rel=1e-5)


@pytest.mark.parametrize("loss_fn", LOSSES)
def test_perfect_prediction_costs_almost_nothing(loss_fn):
    target = torch.randint(0, 4, (2, 5, 6))
    logits = F.one_hot(target, 4).permute(0, 3, 1, 2).float() * 30
    assert loss_fn(logits, target).item() < 1e-3 * (30 if loss_fn is dice_loss else 1)


@pytest.mark.parametrize("loss_fn", LOSSES)
def test_all_void_batches_give_zero_and_a_finite_gradient(loss_fn):
    logits = torch.randn(2, 4, 3, 3, requires_grad=True)
    loss = loss_fn(logits, torch.full((2, 3, 3), 255))
    loss.backward()
    assert loss.item() == 0 and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("loss_fn", LOSSES)
def test_void_pixels_are_masked_not_relabelled(loss_fn):
    torch.manual_seed(1)
    logits = torch.randn(1, 4, 4, 4, requires_grad=True)
    target = torch.randint(0, 4, (1, 4, 4))
    target[0, :2] = 255
    loss = loss_fn(logits, target)
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad[0, :, :2].abs().max() == 0             # void pixels get no gradient
    changed = logits.detach().clone()
    changed[0, :, :2] = torch.randn(4, 2, 4) * 10              # whatever the model says there...
    assert loss_fn(changed, target).item() == pytest.approx(loss.item(), abs=1e-6)   # ...costs nothing
    relabelled = target.clone()
    relabelled[relabelled == 255] = 0
    assert loss_fn(logits, relabelled).item() != pytest.approx(loss.item(), abs=1e-6)


def test_weighted_sum():
    torch.manual_seed(2)
    logits, target = torch.randn(1, 3, 4, 4), torch.randint(0, 3, (1, 4, 4))
    combo = WeightedSum([(cross_entropy, 1.0), (lovasz_softmax, 0.5)])
    expected = cross_entropy(logits, target) + 0.5 * lovasz_softmax(logits, target)
    assert combo(logits, target).item() == pytest.approx(expected.item())
    assert set(combo.last) == {"cross_entropy", "lovasz_softmax"}
    with pytest.raises(ValueError):
        WeightedSum([])


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match=r"logits \[B, K, H, W\]"):
        lovasz_softmax(torch.randn(1, 3, 4, 4), torch.zeros(1, 5, 4, dtype=torch.long))


def test_with_aux_adds_the_weighted_auxiliary_loss_and_passes_plain_logits_through():
    from seg_common.losses import cross_entropy, with_aux
    torch.manual_seed(0)
    main, aux = torch.randn(2, 3, 5, 5), torch.randn(2, 3, 5, 5)
    target = torch.randint(0, 3, (2, 5, 5))
    target[0, 0] = 255
    loss = with_aux(weight=0.4)
    expected = cross_entropy(main, target) + 0.4 * cross_entropy(aux, target)
    assert torch.allclose(loss((main, aux), target), expected)
    assert torch.allclose(loss.last["aux"], cross_entropy(aux, target))
    assert torch.allclose(loss(main, target), cross_entropy(main, target))
    with pytest.raises(ValueError, match="non-negative"):
        with_aux(weight=-1)


def test_distillation_loss_is_the_temperature_scaled_kl_over_non_void_pixels():
    import torch.nn.functional as F
    from seg_common.losses import distillation_loss
    torch.manual_seed(0)
    student = torch.randn(2, 4, 3, 3, requires_grad=True)
    teacher = torch.randn(2, 4, 3, 3, requires_grad=True)
    target = torch.randint(0, 4, (2, 3, 3))
    target[1, :, 0] = 255
    T = 2.0
    keep = (target != 255).reshape(-1)
    s = student.permute(0, 2, 3, 1).reshape(-1, 4)[keep]
    t = teacher.permute(0, 2, 3, 1).reshape(-1, 4)[keep]
    reference = F.kl_div((s / T).log_softmax(1), (t / T).log_softmax(1), log_target=True,
                         reduction="batchmean") * T * T
    loss = distillation_loss(student, teacher, target, temperature=T)
    assert torch.allclose(loss, reference, atol=1e-6)
    loss.backward()
    assert student.grad is not None and torch.isfinite(student.grad).all()
    assert teacher.grad is None                              # nothing flows back into the teacher
    assert student.grad[1, :, :, 0].abs().max() == 0          # void pixels give no gradient
    same = distillation_loss(student.detach(), student.detach(), target)
    assert same.abs() < 1e-7                                  # zero when the student equals the teacher
    everything_void = torch.full_like(target, 255)
    assert distillation_loss(student, teacher, everything_void).item() == 0.0
