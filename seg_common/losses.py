"""Segmentation losses that ignore void pixels: cross-entropy, Lovasz-Softmax, Dice, Focal, sums.

Every loss takes ``(logits [B, K, H, W], target [B, H, W])`` with ``ignore_index`` (255) for void
and returns a scalar. Ignored pixels are **masked out**, never rewritten to another class, and a
batch whose pixels are all ignored gives a loss of 0 that still backpropagates (no NaN).

Lovasz-Softmax follows Berman, Triki and Blaschko, "The Lovasz-Softmax loss: a tractable surrogate
for the optimization of the intersection-over-union measure in neural networks" (CVPR 2018): the
Jaccard loss of each class, extended from sets of wrong pixels to per-pixel errors in [0, 1] by
its Lovasz extension, averaged over the classes.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

IGNORE_INDEX = 255


def _valid(logits: torch.Tensor, target: torch.Tensor, ignore_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flatten to ``[N, K]`` probabilities-to-be and ``[N]`` labels, keeping non-ignored pixels."""
    if logits.ndim != 4 or target.ndim != 3 or logits.shape[0] != target.shape[0] \
            or logits.shape[-2:] != target.shape[-2:]:
        raise ValueError(f"expected logits [B, K, H, W] and target [B, H, W] of the same B, H, W; got "
                         f"{tuple(logits.shape)} and {tuple(target.shape)}")
    flat_logits = logits.permute(0, 2, 3, 1).reshape(-1, logits.shape[1])
    flat_target = target.reshape(-1)
    keep = flat_target != ignore_index
    return flat_logits[keep], flat_target[keep]


def _zero(logits: torch.Tensor) -> torch.Tensor:
    """A zero that is connected to the graph (so .backward() works on an all-void batch)."""
    return logits.sum() * 0.0


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX,
                  weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy over the non-void pixels (0 for an all-void batch), the value of
    ``F.cross_entropy(..., ignore_index=...)`` otherwise. The sum is divided by the (weighted) count
    of labelled pixels, clamped away from 0, instead of asking first whether any pixel is labelled:
    that question would make the CPU wait for the GPU at every batch."""
    total = F.cross_entropy(logits, target, weight=weight, ignore_index=ignore_index, reduction="sum")
    labelled = target != ignore_index
    if weight is None:
        count = labelled.sum().to(total.dtype)
    else:
        count = torch.where(labelled, weight[target.clamp(0, len(weight) - 1)], 0).sum().to(total.dtype)
    return total / count.clamp(min=torch.finfo(total.dtype).tiny)


def lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovasz extension of the Jaccard loss for ground truth ``gt_sorted`` (0/1),
    ordered by decreasing error: ``g_i = J(first i pixels wrong) - J(first i-1 pixels wrong)``."""
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.cumsum(0)
    union = gts + (1.0 - gt_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    if len(gt_sorted) > 1:
        jaccard[1:] = jaccard[1:] - jaccard[:-1].clone()
    return jaccard


def lovasz_softmax(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX,
                   classes: str | Sequence[int] = "present") -> torch.Tensor:
    """Lovasz-Softmax over the batch (the paper's "per_image=False" variant).

    ``classes``: ``"present"`` averages over the classes present in the (non-void) target, as in
    the paper's reference code; ``"all"`` over every class; or a list of class indices.
    """
    probs, labels = _valid(logits.softmax(1), target, ignore_index)
    if labels.numel() == 0:
        return _zero(logits)
    num_classes = probs.shape[1]
    if classes == "present":
        chosen = labels.unique().tolist()
    elif classes == "all":
        chosen = list(range(num_classes))
    else:
        chosen = list(classes)
    losses = []
    for c in chosen:
        fg = (labels == c).to(probs.dtype)
        errors = (fg - probs[:, c]).abs()
        errors_sorted, order = torch.sort(errors, descending=True)
        losses.append(torch.dot(errors_sorted, lovasz_grad(fg[order])))
    return torch.stack(losses).mean() if losses else _zero(logits)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX,
              smooth: float = 1.0) -> torch.Tensor:
    """Soft Dice loss ``1 - (2 sum p g + s) / (sum p + sum g + s)`` per class present in the
    target, averaged (void pixels masked)."""
    probs, labels = _valid(logits.softmax(1), target, ignore_index)
    if labels.numel() == 0:
        return _zero(logits)
    onehot = F.one_hot(labels, probs.shape[1]).to(probs.dtype)
    present = onehot.sum(0) > 0
    intersection = (probs * onehot).sum(0)
    dice = (2 * intersection + smooth) / (probs.sum(0) + onehot.sum(0) + smooth)
    return (1 - dice[present]).mean()


def focal_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX,
               gamma: float = 2.0) -> torch.Tensor:
    """Focal loss ``-(1 - p_t)^gamma log p_t``, mean over non-void pixels (gamma 0 = cross-entropy)."""
    flat_logits, labels = _valid(logits, target, ignore_index)
    if labels.numel() == 0:
        return _zero(logits)
    log_pt = flat_logits.log_softmax(1).gather(1, labels[:, None])[:, 0]
    return (-(1 - log_pt.exp()) ** gamma * log_pt).mean()


class WeightedSum(nn.Module):
    """``sum_i w_i * loss_i(logits, target)``, e.g. ``WeightedSum([(cross_entropy, 1.0),
    (lovasz_softmax, 0.5)])``; the parts of the last call stay in ``.last`` (detached tensors,
    no host sync) for logging."""

    def __init__(self, terms: Sequence[tuple]) -> None:
        super().__init__()
        if not terms:
            raise ValueError("WeightedSum needs at least one (loss, weight) pair")
        self.terms = list(terms)
        self.last: dict[str, torch.Tensor] = {}

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = None
        self.last = {}
        for loss_fn, weight in self.terms:
            value = loss_fn(logits, target)
            self.last[getattr(loss_fn, "__name__", type(loss_fn).__name__)] = value.detach()
            total = weight * value if total is None else total + weight * value
        return total


class WithAux(nn.Module):
    """For models that return ``(main, aux)`` logits in training (PSPNet): ``loss(main) +
    weight * loss(aux)``; plain logits (eval mode, other models) get ``loss(logits)``. The parts
    of the last call stay in ``.last`` (detached): ``main`` and, with an auxiliary output, ``aux``
    (the engine records them per epoch as ``train_loss_main`` / ``train_loss_aux``)."""

    def __init__(self, loss_fn=cross_entropy, weight: float = 0.4) -> None:
        super().__init__()
        if weight < 0:
            raise ValueError(f"the auxiliary weight must be non-negative, got {weight}")
        self.loss_fn, self.weight = loss_fn, float(weight)
        self.last: dict[str, torch.Tensor] = {}

    def forward(self, output, target: torch.Tensor) -> torch.Tensor:
        if torch.is_tensor(output):
            main_loss = self.loss_fn(output, target)
            self.last = {"main": main_loss.detach()}
            return main_loss
        main, aux = output
        main_loss, aux_loss = self.loss_fn(main, target), self.loss_fn(aux, target)
        self.last = {"main": main_loss.detach(), "aux": aux_loss.detach()}
        return main_loss + self.weight * aux_loss


def with_aux(loss_fn=cross_entropy, weight: float = 0.4) -> WithAux:
    """``main + weight * aux`` (PSPNet's auxiliary loss; weight 0.4 in the paper)."""
    return WithAux(loss_fn, weight)


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor,
                      temperature: float = 1.0, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Per-pixel knowledge distillation (Hinton, Vinyals and Dean, 2015):
    ``T^2 * mean over non-void pixels of KL(softmax(teacher / T) || softmax(student / T))``.

    The teacher's logits are detached (no gradient reaches the teacher); ``target`` only says
    which pixels are void. Scaling by ``T^2`` keeps the gradient's size independent of ``T``.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student and teacher logits differ in shape: {tuple(student_logits.shape)} "
                         f"vs {tuple(teacher_logits.shape)}")
    student, _ = _valid(student_logits, target, ignore_index)
    teacher, labels = _valid(teacher_logits.detach(), target, ignore_index)
    if labels.numel() == 0:
        return _zero(student_logits)
    log_p_student = (student / temperature).log_softmax(1)
    log_p_teacher = (teacher / temperature).log_softmax(1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(1)
    return temperature ** 2 * kl.mean()


class DistillationLoss(nn.Module):
    """For a ``models.Distiller``: ``loss_fn(student_output, target) + alpha * distillation_loss(
    student_main, teacher, target, temperature)``. ``loss_fn`` sees the student's output as it is
    (use ``with_aux`` for a PSPNet student); the distillation term uses its main logits. Plain
    logits (eval mode) get ``loss_fn`` alone. The parts of the last call stay in ``.last``: those
    ``loss_fn`` reports (``main``, ``aux`` for ``with_aux``) or ``task``, and ``distill``.

    ``distill_fn(student_main, teacher)`` replaces the KL term for outputs that are not class
    logits, e.g. regression maps (``distill_fn=models.ggcnn.grasp_mse``: the student matches the
    teacher's maps); the teacher's output is detached and ``temperature`` is then unused."""

    def __init__(self, loss_fn=cross_entropy, alpha: float = 1.0, temperature: float = 1.0,
                 distill_fn=None) -> None:
        super().__init__()
        if alpha < 0:
            raise ValueError(f"alpha must be non-negative, got {alpha}")
        self.loss_fn, self.alpha, self.temperature = loss_fn, float(alpha), float(temperature)
        self.distill_fn = distill_fn
        self.last: dict[str, torch.Tensor] = {}

    def forward(self, output, target: torch.Tensor) -> torch.Tensor:
        if torch.is_tensor(output):
            return self.loss_fn(output, target)
        student, teacher = output
        main = student if torch.is_tensor(student) else student[0]
        task = self.loss_fn(student, target)
        if self.distill_fn is not None:
            distill = self.distill_fn(main, teacher.detach())
        else:
            distill = distillation_loss(main, teacher, target, self.temperature)
        inner = getattr(self.loss_fn, "last", None) or {"task": task}
        self.last = {**{k: v.detach() for k, v in inner.items()}, "distill": distill.detach()}
        return task + self.alpha * distill
