"""Optimiser set-up for fine-tuning: learning rates per part of the network, frozen parts.

A pretrained backbone already computes useful features; the new head starts from random numbers.
The references train the backbone at a tenth of the head's learning rate (``backbone_lr_scale``)
or not at all (``freeze_backbone``). Every model in ``seg_common.models`` that has a pretrained
part calls it ``backbone``; the head is everything else.

Schedulers are torch's own: ``torch.optim.lr_scheduler.PolynomialLR(optimizer, total_iters,
power=0.9)`` and ``OneCycleLR``, stepped per iteration (``fit(..., scheduler_per_iteration=True)``).
They scale every group's rate by the same factor, so the 10:1 ratio holds through the schedule.
"""
from __future__ import annotations

from typing import Any

from torch import nn


def _backbone(model: nn.Module) -> nn.Module:
    backbone = getattr(getattr(model, "module", model), "backbone", None)
    if not isinstance(backbone, nn.Module):
        raise ValueError(f"{type(model).__name__} has no `backbone` submodule; differential learning rates "
                         "and freezing need one (DeepLabV3Plus and the PSPNet have it)")
    return backbone


def freeze_backbone(model: nn.Module, frozen: bool = True) -> int:
    """Stop (or restart, with ``frozen=False``) gradients to the backbone; returns how many
    parameter tensors changed. Its BatchNorm layers still update their running statistics in
    training mode: pass ``freeze_bn=model.backbone`` to ``fit`` to keep those fixed as well."""
    params = list(_backbone(model).parameters())
    for p in params:
        p.requires_grad_(not frozen)
    return len(params)


def param_groups(model: nn.Module, lr: float, *, backbone_lr_scale: float = 0.1,
                 weight_decay: float = 0.0) -> list[dict[str, Any]]:
    """Two optimiser groups: ``head`` at ``lr`` and ``backbone`` at ``lr * backbone_lr_scale``.

    The head group comes first, so ``optimizer.param_groups[0]["lr"]`` is the base rate. Frozen
    parameters (``requires_grad=False``) are left out; a fully frozen backbone gives one group.
    """
    if lr <= 0 or backbone_lr_scale < 0:
        raise ValueError(f"lr must be positive and backbone_lr_scale non-negative, got {lr} and {backbone_lr_scale}")
    backbone_ids = {id(p) for p in _backbone(model).parameters()}
    head = [p for p in model.parameters() if id(p) not in backbone_ids and p.requires_grad]
    backbone = [p for p in _backbone(model).parameters() if p.requires_grad]
    groups = [{"name": "head", "params": head, "lr": lr, "weight_decay": weight_decay}]
    if backbone:
        groups.append({"name": "backbone", "params": backbone, "lr": lr * backbone_lr_scale,
                       "weight_decay": weight_decay})
    return groups
