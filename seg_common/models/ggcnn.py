"""GG-CNN and a PSPNet for grasp maps: dense prediction of four regression maps instead of classes.

GG-CNN (Morrison, Corke and Leitner, "Closing the Loop for Robotic Grasping", RSS 2018;
github.com/dougsm/ggcnn, ``models/ggcnn.py``): three strided convolutions down (9x9 / 3, 5x5 / 2,
3x3 / 2; 32, 16, 8 channels) and three transposed convolutions back up, then four 2x2 convolutions,
one per map - grasp quality, cos 2a, sin 2a and width. About 62 thousand weights: it runs at camera
rate on a robot's CPU. Its 300x300 input gives 100, 50, 25, then 50, 100, 301 and 300 px.

Both models here return the four maps stacked as one tensor ``[B, 4, H, W]`` (quality, cos, sin,
width), the layout :func:`seg_common.data.cornell.encode` gives the targets, so any loss
``(output, target)`` and the engine train them like a segmentation network with 4 "classes".
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .pspnet import PSPNet

GRASP_MAPS = ("quality", "cos", "sin", "width")


class GGCNN(nn.Module):
    """GG-CNN: ``[B, C, 300, 300]`` (depth, C=1) -> ``[B, 4, 300, 300]``, as dougsm/ggcnn's GGCNN
    (same layers, strides, paddings and Xavier-uniform initialisation), the four 1-channel heads
    kept as one 4-channel 2x2 convolution (the same computation)."""

    def __init__(self, in_channels: int = 1) -> None:
        super().__init__()
        self.down = nn.Sequential(
            nn.Conv2d(in_channels, 32, 9, stride=3, padding=3), nn.ReLU(),
            nn.Conv2d(32, 16, 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv2d(16, 8, 3, stride=2, padding=1), nn.ReLU())
        self.up = nn.Sequential(
            nn.ConvTranspose2d(8, 8, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
            nn.ConvTranspose2d(8, 16, 5, stride=2, padding=2, output_padding=1), nn.ReLU(),
            nn.ConvTranspose2d(16, 32, 9, stride=3, padding=3, output_padding=1), nn.ReLU())
        self.heads = nn.Conv2d(32, len(GRASP_MAPS), kernel_size=2)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.xavier_uniform_(m.weight, gain=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.heads(self.up(self.down(x)))
        if out.shape[-2:] != x.shape[-2:]:         # sizes other than GG-CNN's 300 (multiples of 12 fit)
            out = F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return out


def grasp_mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """GG-CNN's loss: the sum over the four maps of each map's mean squared error."""
    if output.shape != target.shape:
        raise ValueError(f"output {tuple(output.shape)} and target {tuple(target.shape)} differ in shape")
    return F.mse_loss(output, target, reduction="none").mean(dim=(0, 2, 3)).sum()


def depth_conv1(model: PSPNet, mode: str = "average") -> PSPNet:
    """Make an RGB PSPNet take a 1-channel depth image, in one of two ways:

    * ``"average"``: conv1's filters summed over their three input channels (the usual way
      to reuse ImageNet filters for one channel: a grey image gives the same response as before);
    * ``"1x1"``: a learned 1x1 convolution (1 -> 3 channels) in front of the unchanged network.

    Returns the model, changed in place.
    """
    stem_conv = model.backbone.stem[0]
    if mode == "average":
        conv = nn.Conv2d(1, stem_conv.out_channels, stem_conv.kernel_size, stem_conv.stride,
                         stem_conv.padding, bias=False)
        with torch.no_grad():
            conv.weight.copy_(stem_conv.weight.sum(dim=1, keepdim=True))
        model.backbone.stem[0] = conv
    elif mode == "1x1":
        model.backbone.stem[0] = nn.Sequential(nn.Conv2d(1, 3, 1), stem_conv)
    else:
        raise ValueError(f"mode must be 'average' or '1x1', got {mode!r}")
    return model
