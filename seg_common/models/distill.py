"""Knowledge distillation: a student trained to match a frozen teacher as well as the labels."""
from __future__ import annotations

import torch
from torch import nn


class Distiller(nn.Module):
    """A student and a frozen teacher as one model, so the engine trains it like any other.

    In training mode the forward returns ``(student_output, teacher_logits)`` - the student's
    output as it is (a PSPNet's ``(main, aux)`` pair too) and the teacher's eval-mode logits, computed
    without gradients. In eval mode it returns the student's output only, so ``evaluate`` scores
    the student. The teacher stays in eval mode (fixed BatchNorm statistics, no dropout) and its
    weights never change. Train with ``losses.DistillationLoss``; save ``distiller.student``
    (the distiller's own ``state_dict``, and so the engine's checkpoints, hold the teacher too).
    """

    def __init__(self, student: nn.Module, teacher: nn.Module) -> None:
        super().__init__()
        for name, module in (("student", student), ("teacher", teacher)):
            if not isinstance(module, nn.Module):
                raise TypeError(f"Distiller needs a {name} nn.Module, got {type(module).__name__} "
                                "(train or load the teacher first)")
        self.student = student
        self.teacher = teacher.eval()
        self.teacher.requires_grad_(False)

    def train(self, mode: bool = True) -> "Distiller":
        super().train(mode)
        self.teacher.eval()
        return self

    def forward(self, x: torch.Tensor):
        out = self.student(x)
        if not self.training:
            return out
        with torch.no_grad():
            teacher_logits = self.teacher(x)
        return out, teacher_logits
