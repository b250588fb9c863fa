"""Segmentation metrics from one confusion matrix.

For ``K`` classes the confusion matrix ``C`` is ``K x K`` with ``C[t, p]`` = number of pixels of true
class ``t`` predicted as ``p`` (void pixels are skipped). Everything follows from it:

* pixel accuracy  = sum_c C[c, c] / sum C
* class accuracy  = C[c, c] / sum_p C[c, p]          (recall of class c)
* IoU_c           = C[c, c] / (sum_p C[c, p] + sum_t C[t, c] - C[c, c]) = TP / (TP + FP + FN)
* mIoU            = mean of IoU_c over the classes that occur in the target or the prediction

The matrix has a fixed size, so evaluating a whole dataset costs the same memory as one image.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class SegMetrics:
    """The scores of a :class:`ConfusionMatrix` (floats in [0, 1]; NaN where undefined)."""

    pixel_acc: float
    mean_acc: float
    iou: torch.Tensor          # [K] per-class IoU, NaN for classes absent from target and prediction
    miou: float
    class_acc: torch.Tensor    # [K] per-class accuracy, NaN for classes absent from the target

    def as_dict(self) -> dict[str, float]:
        return {"pixel_acc": self.pixel_acc, "mean_acc": self.mean_acc, "miou": self.miou}


class ConfusionMatrix:
    """Accumulates a confusion matrix over batches, ignoring ``ignore_index`` pixels.

    >>> cm = ConfusionMatrix(num_classes=21)
    >>> cm.update(pred, target)        # int tensors of equal shape, e.g. [B, H, W]
    >>> cm.compute().miou
    """

    def __init__(self, num_classes: int, ignore_index: int | None = 255) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.mat = torch.zeros((num_classes, num_classes), dtype=torch.int64)

    def reset(self) -> None:
        self.mat.zero_()

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch: ``pred`` and ``target`` are integer class maps of the same shape."""
        if pred.shape != target.shape:
            raise ValueError(
                f"pred and target must have the same shape, got {tuple(pred.shape)} and "
                f"{tuple(target.shape)} (take argmax over the class dimension of the logits first)"
            )
        if pred.is_floating_point() or target.is_floating_point():
            raise TypeError("pred and target must be integer class indices, not floats")
        k = self.num_classes
        pred, target = pred.flatten().long(), target.flatten().long()
        valid = target != self.ignore_index if self.ignore_index is not None else torch.ones_like(target, dtype=torch.bool)
        pred, target = pred[valid], target[valid]
        values = torch.cat([target, pred])
        out_of_range = (values < 0) | (values >= k)
        if out_of_range.any():
            bad = values[out_of_range].unique()[:10].tolist()
            raise ValueError(f"class indices {bad} are outside 0..{k - 1} and not the ignore index")
        counts = torch.bincount(target * k + pred, minlength=k * k).reshape(k, k)
        self.mat += counts.to(self.mat.device)

    def compute(self) -> SegMetrics:
        mat = self.mat.double()
        tp = mat.diag()
        per_target = mat.sum(1)           # TP + FN
        per_pred = mat.sum(0)             # TP + FP
        total = mat.sum()
        union = per_target + per_pred - tp
        nan = torch.tensor(float("nan"), dtype=torch.float64)
        iou = torch.where(union > 0, tp / union.clamp(min=1), nan)
        class_acc = torch.where(per_target > 0, tp / per_target.clamp(min=1), nan)
        return SegMetrics(
            pixel_acc=float(tp.sum() / total) if total > 0 else float("nan"),
            mean_acc=float(class_acc.nanmean()),
            iou=iou.float(),
            miou=float(iou.nanmean()),
            class_acc=class_acc.float(),
        )
