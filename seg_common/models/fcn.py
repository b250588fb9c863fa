"""Fully convolutional networks on a ResNet-18 backbone.

* :class:`FCN32s` - the d2l book's FCN exactly: ResNet-18 without its average pool and fully
  connected layer (output stride 32), a 1x1 convolution to the classes, and one transposed
  convolution (kernel 64, stride 32, padding 16) initialised as bilinear upsampling.
* :class:`FCN8s` - the same backbone with the skip connections of the original FCN paper
  (Long, Shelhamer & Darrell, 2015): class scores from layer3 (stride 16) and layer2 (stride 8) are
  added to the upsampled coarse scores before the final x8 upsampling.

Both accept any input size: the input is padded on the right and bottom to a multiple of 32, and
the prediction is cropped back, so it covers the whole image at its own size.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import resnet18_backbone


def bilinear_kernel(in_channels: int, out_channels: int, kernel_size: int) -> torch.Tensor:
    """Weights ``[in, out, k, k]`` that make a ConvTranspose2d upsample bilinearly (as in d2l).

    Channel ``i`` maps to channel ``i`` with the tent filter ``(1 - |x - c| / f)(1 - |y - c| / f)``;
    all cross-channel weights are zero.
    """
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    og = (torch.arange(kernel_size).reshape(-1, 1), torch.arange(kernel_size).reshape(1, -1))
    filt = (1 - torch.abs(og[0] - center) / factor) * (1 - torch.abs(og[1] - center) / factor)
    weight = torch.zeros((in_channels, out_channels, kernel_size, kernel_size))
    channels = min(in_channels, out_channels)
    weight[range(channels), range(channels), :, :] = filt
    return weight


def bilinear_upsampler(channels: int, factor: int) -> nn.ConvTranspose2d:
    """A ConvTranspose2d that upsamples ``factor`` times, initialised bilinear (kernel 2f, padding f/2)."""
    layer = nn.ConvTranspose2d(channels, channels, kernel_size=2 * factor, stride=factor,
                               padding=factor // 2, bias=False)
    layer.weight.data.copy_(bilinear_kernel(channels, channels, 2 * factor))
    return layer


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Zero-pad ``[B, C, H, W]`` on the right/bottom so H and W divide by ``multiple``."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph))
    return x, (h, w)


class FCN32s(nn.Module):
    """The d2l book's FCN. ``features`` is ResNet-18 minus avgpool and fc; then
    ``final_conv`` (1x1, 512 -> classes) and ``transpose_conv`` (k=64, s=32, p=16, bilinear init).

    Shapes for a 320x480 input: features ``[B, 512, 10, 15]`` -> scores ``[B, K, 10, 15]`` ->
    output ``[B, K, 320, 480]``.
    """

    stride = 32

    def __init__(self, num_classes: int = 21, pretrained: bool = False) -> None:
        super().__init__()
        self.features = resnet18_backbone(pretrained)
        self.final_conv = nn.Conv2d(512, num_classes, kernel_size=1)
        self.transpose_conv = nn.ConvTranspose2d(num_classes, num_classes, kernel_size=64,
                                                 padding=16, stride=32)
        self.transpose_conv.weight.data.copy_(bilinear_kernel(num_classes, num_classes, 64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, (h, w) = pad_to_multiple(x, self.stride)
        out = self.transpose_conv(self.final_conv(self.features(x)))
        return out[..., :h, :w]


class FCN8s(nn.Module):
    """FCN-8s on ResNet-18: coarse scores (stride 32) are upsampled x2 and added to scores from
    layer3 (stride 16), upsampled x2 again and added to scores from layer2 (stride 8), then
    upsampled x8. The skip score layers start at zero, so training starts from FCN-32s behaviour
    (the paper's initialisation)."""

    stride = 32

    def __init__(self, num_classes: int = 21, pretrained: bool = False) -> None:
        super().__init__()
        self.features = resnet18_backbone(pretrained)
        self.score32 = nn.Conv2d(512, num_classes, kernel_size=1)
        self.score16 = nn.Conv2d(256, num_classes, kernel_size=1)
        self.score8 = nn.Conv2d(128, num_classes, kernel_size=1)
        for layer in (self.score16, self.score8):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.up32to16 = bilinear_upsampler(num_classes, 2)
        self.up16to8 = bilinear_upsampler(num_classes, 2)
        self.up8to1 = bilinear_upsampler(num_classes, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, (h, w) = pad_to_multiple(x, self.stride)
        f = self.features
        x = f[3](f[2](f[1](f[0](x))))          # conv1, bn1, relu, maxpool: stride 4
        c8 = f[5](f[4](x))                     # layer1, layer2: stride 8, 128 channels
        c16 = f[6](c8)                         # layer3: stride 16, 256 channels
        c32 = f[7](c16)                        # layer4: stride 32, 512 channels
        s16 = self.up32to16(self.score32(c32)) + self.score16(c16)
        s8 = self.up16to8(s16) + self.score8(c8)
        return self.up8to1(s8)[..., :h, :w]


def fcn_resnet18_d2l(num_classes: int = 21, pretrained: bool = False) -> FCN32s:
    """The d2l book's FCN (ResNet-18, 1x1 conv, ConvTranspose2d(k=64, p=16, s=32), bilinear init)."""
    return FCN32s(num_classes, pretrained)


def fcn8s_resnet18(num_classes: int = 21, pretrained: bool = False) -> FCN8s:
    """FCN-8s (skips from layer2 and layer3) on the same ResNet-18 backbone."""
    return FCN8s(num_classes, pretrained)
