"""A U-Net whose encoder is a torchvision ResNet-18.

Encoder stages (stride and channels for ResNet-18):

    layer0 = conv1 + bn1 + relu    stride 2,  64 channels
    layer1 = maxpool + layer1      stride 4,  64
    layer2                         stride 8,  128
    layer3                         stride 16, 256
    layer4                         stride 32, 512

The decoder climbs back one scale at a time: upsample x2 (bilinear resize, then convolutions - no
transposed convolution, so no checkerboard), concatenate the encoder stage of that scale (the skip
connection that carries the sharp positions), and mix with two 3x3 conv + BN + ReLU. The last block
returns to the input's resolution without a skip, and a 3x3 convolution gives the class scores.

This is the structure of segmentation-models-pytorch's ``Unet`` with a ResNet-18 encoder, widths
included: ``(256, 128, 64, 32, 16)`` for the blocks at strides 16, 8, 4, 2 and 1 (the
full-resolution blocks are the expensive ones - every channel there costs 4x one at stride 2 - so
they are kept narrow); the parameter count is the same (a test checks it). The only difference:
bilinear instead of nearest-neighbour upsampling. Notebook 04 shows why a branch of convolutions on
the raw input, joined at full resolution (a common addition), slows learning from scratch.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import load_resnet
from .fcn import pad_to_multiple


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class UpBlock(nn.Module):
    """Upsample ``x`` to the size of ``skip``, concatenate, then two conv-BN-ReLU. Without a skip
    (``skip_channels=0``), ``forward(x, size=(h, w))`` upsamples to ``size`` and mixes alone."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.mix = nn.Sequential(conv_bn_relu(in_channels + skip_channels, out_channels),
                                 conv_bn_relu(out_channels, out_channels))

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None,
                size: tuple[int, int] | None = None) -> torch.Tensor:
        size = skip.shape[-2:] if skip is not None else size
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return self.mix(x if skip is None else torch.cat([x, skip], dim=1))


class ResNetUNet(nn.Module):
    """U-Net with a ResNet-18 encoder; ``[B, 3, H, W]`` -> ``[B, num_classes, H, W]`` for any H, W."""

    stride = 32

    def __init__(self, num_classes: int = 21, pretrained: bool = False,
                 decoder_channels: Sequence[int] = (256, 128, 64, 32, 16)) -> None:
        super().__init__()
        if len(decoder_channels) != 5 or min(decoder_channels) < 1:
            raise ValueError("decoder_channels needs 5 positive widths (strides 16, 8, 4, 2, 1), "
                             f"got {tuple(decoder_channels)}")
        c16, c8, c4, c2, c1 = (int(c) for c in decoder_channels)
        net = load_resnet("resnet18", pretrained)
        self.layer0 = nn.Sequential(net.conv1, net.bn1, net.relu)
        self.layer1 = nn.Sequential(net.maxpool, net.layer1)
        self.layer2, self.layer3, self.layer4 = net.layer2, net.layer3, net.layer4
        self.up3 = UpBlock(512, 256, c16)
        self.up2 = UpBlock(c16, 128, c8)
        self.up1 = UpBlock(c8, 64, c4)
        self.up0 = UpBlock(c4, 64, c2)
        self.up_full = UpBlock(c2, 0, c1)                  # back to the input size, no skip
        self.classifier = nn.Conv2d(c1, num_classes, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, (h, w) = pad_to_multiple(x, self.stride)
        s2 = self.layer0(x)
        s4 = self.layer1(s2)
        s8 = self.layer2(s4)
        s16 = self.layer3(s8)
        s32 = self.layer4(s16)
        d = self.up3(s32, s16)
        d = self.up2(d, s8)
        d = self.up1(d, s4)
        d = self.up0(d, s2)
        d = self.up_full(d, size=x.shape[-2:])
        return self.classifier(d)[..., :h, :w]


def unet_resnet18(num_classes: int = 21, pretrained: bool = False) -> ResNetUNet:
    """The ResNet-18 U-Net (encoder ImageNet-pretrained when ``pretrained``)."""
    return ResNetUNet(num_classes, pretrained)
