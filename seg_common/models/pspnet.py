"""PSPNet: a dilated ResNet at output stride 8 and a pyramid pooling module.

Zhao, Shi, Qi, Wang and Jia, "Pyramid Scene Parsing Network" (CVPR 2017), as in the authors'
PyTorch code (hszhao/semseg): bins 1, 2, 3 and 6; each pools the stride-8 features to a bins x bins
grid, reduces the channels to a quarter with a 1x1 conv + BN + ReLU and is upsampled back; the
four results are concatenated with the features (twice the channels), mixed by a 3x3 conv + BN +
ReLU, dropout 0.1 and classified by a 1x1 conv. During training an auxiliary head on layer3 gives
a second prediction whose loss (weight 0.4) helps the deep backbone learn.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .deeplab import AtrousResNet


def _upsample(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class PyramidPoolingModule(nn.Module):
    """``[B, C, H, W]`` -> ``[B, 2C, H, W]``: the input and one pooled, reduced, upsampled copy per bin."""

    def __init__(self, in_channels: int, bins: Sequence[int] = (1, 2, 3, 6)) -> None:
        super().__init__()
        if not bins or min(bins) < 1:
            raise ValueError(f"bins must be positive integers, got {bins}")
        reduced = in_channels // len(bins)
        self.bins = tuple(int(b) for b in bins)
        self.stages = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(b), nn.Conv2d(in_channels, reduced, 1, bias=False),
                          nn.BatchNorm2d(reduced), nn.ReLU())
            for b in self.bins)
        self.out_channels = in_channels + reduced * len(self.bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, *(_upsample(stage(x), x.shape[-2:]) for stage in self.stages)], dim=1)


def _head(in_channels: int, mid_channels: int, num_classes: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, mid_channels, 3, padding=1, bias=False),
                         nn.BatchNorm2d(mid_channels), nn.ReLU(), nn.Dropout2d(dropout),
                         nn.Conv2d(mid_channels, num_classes, 1))


class PSPNet(nn.Module):
    """PSPNet: ``[B, 3, H, W]`` -> ``[B, num_classes, H, W]`` for any H, W.

    In training mode with ``aux=True`` the forward returns ``(main, aux)``, both at the input size;
    train it with ``losses.with_aux(loss, weight=0.4)``. In eval mode it returns the main logits
    only, so ``evaluate`` and ``predict`` work unchanged.
    """

    def __init__(self, num_classes: int = 21, backbone: str = "resnet50", pretrained: bool = False,
                 aux: bool = True, bins: Sequence[int] = (1, 2, 3, 6), output_stride: int = 8,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.backbone = AtrousResNet(backbone, output_stride, pretrained)
        self.ppm = PyramidPoolingModule(self.backbone.high_channels, bins)
        self.head = _head(self.ppm.out_channels, 512, num_classes, dropout)
        self.aux_head = _head(self.backbone.mid_channels, 256, num_classes, dropout) if aux else None

    def forward(self, x: torch.Tensor):
        b = self.backbone
        mid = b.layer3(b.layer2(b.layer1(b.stem(x))))
        out = _upsample(self.head(self.ppm(b.layer4(mid))), x.shape[-2:])
        if self.training and self.aux_head is not None:
            return out, _upsample(self.aux_head(mid), x.shape[-2:])
        return out


def pspnet_resnet18(num_classes: int = 21, pretrained: bool = False) -> PSPNet:
    return PSPNet(num_classes, "resnet18", pretrained)


def pspnet_resnet50(num_classes: int = 21, pretrained: bool = False) -> PSPNet:
    return PSPNet(num_classes, "resnet50", pretrained)
