"""DeepLabV3+: a dilated ResNet, atrous spatial pyramid pooling (ASPP) and a light decoder.

Chen, Zhu, Papandreou, Schroff and Adam, "Encoder-Decoder with Atrous Separable Convolution for
Semantic Image Segmentation" (ECCV 2018). The backbone keeps its last stages at stride 16 (or 8)
by replacing their strides with dilation; ASPP looks at the stride-16 features at several rates at
once; the decoder joins the result with 48 channels projected from the stride-4 features and
upsamples to the input size.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import load_resnet

BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101")


def dilate_layer(layer: nn.Sequential, dilation: int, previous: int) -> None:
    """Turn a stride-2 ResNet layer into a stride-1 layer with dilated 3x3 convolutions, in place.

    The rule of torchvision's ``replace_stride_with_dilation``: the first block keeps the previous
    dilation, every later block uses the new one. torchvision applies it only to Bottleneck blocks
    (ResNet-50 and up); this function also converts the BasicBlocks of ResNet-18/34, and a test
    checks it against torchvision on ResNet-50.
    """
    for i, block in enumerate(layer):
        rate = previous if i == 0 else dilation
        for conv in block.modules():
            if not isinstance(conv, nn.Conv2d):
                continue
            conv.stride = (1, 1)
            if conv.kernel_size == (3, 3):
                conv.dilation, conv.padding = (rate, rate), (rate, rate)


class AtrousResNet(nn.Module):
    """A torchvision ResNet at output stride 8, 16 or 32; returns ``(low, high)``: the stride-4
    features of layer1 and the features of layer4."""

    def __init__(self, name: str = "resnet50", output_stride: int = 16, pretrained: bool = False) -> None:
        super().__init__()
        if name not in BACKBONES:
            raise ValueError(f"Unknown backbone {name!r}. Choose one of: {', '.join(BACKBONES)}.")
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        dilate = {8: [False, True, True], 16: [False, False, True], 32: [False, False, False]}[output_stride]
        bottleneck = name in ("resnet50", "resnet101")
        net = load_resnet(name, pretrained)
        rate = 1
        for layer, flag in zip((net.layer2, net.layer3, net.layer4), dilate):
            if flag:
                previous, rate = rate, rate * 2
                dilate_layer(layer, rate, previous)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.output_stride = output_stride
        self.low_channels = 64 if not bottleneck else 256
        self.mid_channels = 256 if not bottleneck else 1024            # layer3, for auxiliary heads
        self.high_channels = 512 if not bottleneck else 2048

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = self.layer1(self.stem(x))
        return low, self.layer4(self.layer3(self.layer2(low)))


def separable_conv(in_channels: int, out_channels: int, dilation: int = 1) -> nn.Sequential:
    """Depthwise 3x3 (dilated) then pointwise 1x1: about 1/9 of the weights of a full 3x3 conv."""
    return nn.Sequential(
        nn.Conv2d(in_channels, in_channels, 3, padding=dilation, dilation=dilation, groups=in_channels, bias=False),
        nn.Conv2d(in_channels, out_channels, 1, bias=False))


def _conv_bn_relu(conv: nn.Module, channels: int) -> nn.Sequential:
    return nn.Sequential(conv, nn.BatchNorm2d(channels), nn.ReLU())


class ImagePooling(nn.Sequential):
    """Global average pool, 1x1 conv + BN + ReLU, broadcast back to the input's size."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_channels, out_channels, 1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(super().forward(x), size=x.shape[-2:], mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: a 1x1 branch, one 3x3 branch per rate, image pooling;
    concatenated, projected to ``out_channels`` by a 1x1 conv, then dropout.

    With ``separable=False`` the layout (and the state-dict keys) are those of torchvision's
    ``ASPP``, so the two can exchange weights.
    """

    def __init__(self, in_channels: int, rates: Sequence[int] = (6, 12, 18), out_channels: int = 256,
                 separable: bool = False, dropout: float = 0.5) -> None:
        super().__init__()
        branches = [_conv_bn_relu(nn.Conv2d(in_channels, out_channels, 1, bias=False), out_channels)]
        for rate in rates:
            conv = (separable_conv(in_channels, out_channels, rate) if separable else
                    nn.Conv2d(in_channels, out_channels, 3, padding=rate, dilation=rate, bias=False))
            branches.append(_conv_bn_relu(conv, out_channels))
        branches.append(ImagePooling(in_channels, out_channels))
        self.convs = nn.ModuleList(branches)
        self.project = nn.Sequential(nn.Conv2d(len(branches) * out_channels, out_channels, 1, bias=False),
                                     nn.BatchNorm2d(out_channels), nn.ReLU(), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.convs], dim=1))


class DeepLabV3Plus(nn.Module):
    """DeepLabV3+: ``[B, 3, H, W]`` -> ``[B, num_classes, H, W]`` for any H, W.

    ASPP rates are 6/12/18 at output stride 16 and doubled at 8 (the paper's, chosen for 513-pixel
    crops); ``atrous_rates`` overrides them, e.g. smaller rates for small crops, where a rate as
    large as the feature map leaves only the centre tap of each 3x3 kernel inside it. The decoder
    projects the stride-4 features to 48 channels, concatenates them with the upsampled ASPP
    output, mixes with two 3x3 conv + BN + ReLU and classifies with a 1x1 conv.
    """

    def __init__(self, num_classes: int = 21, backbone: str = "resnet50", output_stride: int = 16,
                 pretrained: bool = False, separable: bool = False,
                 atrous_rates: Sequence[int] | None = None) -> None:
        super().__init__()
        if output_stride not in (8, 16):
            raise ValueError(f"DeepLabV3+ uses output stride 8 or 16, got {output_stride}")
        if atrous_rates is None:
            atrous_rates = (6, 12, 18) if output_stride == 16 else (12, 24, 36)
        rates = tuple(int(r) for r in atrous_rates)
        if not rates or min(rates) < 1:
            raise ValueError(f"atrous_rates must be positive integers, got {atrous_rates}")
        self.backbone = AtrousResNet(backbone, output_stride, pretrained)
        self.atrous_rates = rates
        self.aspp = ASPP(self.backbone.high_channels, rates, 256, separable=separable)
        self.low_project = _conv_bn_relu(nn.Conv2d(self.backbone.low_channels, 48, 1, bias=False), 48)
        conv = (lambda i, o: separable_conv(i, o)) if separable else (lambda i, o: nn.Conv2d(i, o, 3, padding=1, bias=False))
        self.decoder = nn.Sequential(_conv_bn_relu(conv(256 + 48, 256), 256), _conv_bn_relu(conv(256, 256), 256))
        self.classifier = nn.Conv2d(256, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low, high = self.backbone(x)
        context = F.interpolate(self.aspp(high), size=low.shape[-2:], mode="bilinear", align_corners=False)
        out = self.classifier(self.decoder(torch.cat([context, self.low_project(low)], dim=1)))
        return F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)


def deeplabv3plus_resnet18(num_classes: int = 21, pretrained: bool = False) -> DeepLabV3Plus:
    return DeepLabV3Plus(num_classes, "resnet18", 16, pretrained)


def deeplabv3plus_resnet50(num_classes: int = 21, pretrained: bool = False) -> DeepLabV3Plus:
    return DeepLabV3Plus(num_classes, "resnet50", 16, pretrained)


def deeplabv3plus_resnet101(num_classes: int = 21, pretrained: bool = False) -> DeepLabV3Plus:
    return DeepLabV3Plus(num_classes, "resnet101", 16, pretrained)


def deeplabv3plus_resnet18_os8(num_classes: int = 21, pretrained: bool = False) -> DeepLabV3Plus:
    return DeepLabV3Plus(num_classes, "resnet18", 8, pretrained)


def deeplabv3plus_resnet50_os8(num_classes: int = 21, pretrained: bool = False) -> DeepLabV3Plus:
    return DeepLabV3Plus(num_classes, "resnet50", 8, pretrained)
