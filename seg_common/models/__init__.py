"""Segmentation models built on torchvision backbones.

``build_model(name, num_classes, pretrained)`` builds any of them by name; ``MODELS`` lists the
names, so a typo gets an error that shows the valid choices instead of a traceback.
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from .deeplab import (ASPP, AtrousResNet, DeepLabV3Plus, deeplabv3plus_resnet18, deeplabv3plus_resnet18_os8,
                      deeplabv3plus_resnet50, deeplabv3plus_resnet50_os8,
                      deeplabv3plus_resnet101)
from .distill import Distiller
from .ggcnn import GGCNN, GRASP_MAPS, depth_conv1, grasp_mse
from .pspnet import PSPNet, PyramidPoolingModule, pspnet_resnet18, pspnet_resnet50
from .fcn import FCN8s, FCN32s, bilinear_kernel, fcn8s_resnet18, fcn_resnet18_d2l
from .unet import ResNetUNet, unet_resnet18

MODELS: dict[str, Callable[..., nn.Module]] = {
    "fcn32s_resnet18": fcn_resnet18_d2l,
    "fcn8s_resnet18": fcn8s_resnet18,
    "unet_resnet18": unet_resnet18,
    "deeplabv3plus_resnet18": deeplabv3plus_resnet18,
    "deeplabv3plus_resnet50": deeplabv3plus_resnet50,
    "deeplabv3plus_resnet101": deeplabv3plus_resnet101,
    "deeplabv3plus_resnet18_os8": deeplabv3plus_resnet18_os8,
    "deeplabv3plus_resnet50_os8": deeplabv3plus_resnet50_os8,
    "pspnet_resnet18": pspnet_resnet18,
    "pspnet_resnet50": pspnet_resnet50,
}


def build_model(name: str, num_classes: int = 21, pretrained: bool = False) -> nn.Module:
    """Build the model called ``name`` (one of ``MODELS``)."""
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}. Choose one of: {', '.join(sorted(MODELS))}.")
    return MODELS[name](num_classes=num_classes, pretrained=pretrained)


__all__ = ["GGCNN", "GRASP_MAPS", "depth_conv1", "grasp_mse", "ASPP", "AtrousResNet", "DeepLabV3Plus", "Distiller", "FCN32s", "FCN8s", "MODELS", "PSPNet", "PyramidPoolingModule",
           "ResNetUNet", "pspnet_resnet18", "pspnet_resnet50", "bilinear_kernel", "build_model", "deeplabv3plus_resnet18", "deeplabv3plus_resnet50",
           "fcn8s_resnet18", "fcn_resnet18_d2l", "unet_resnet18"]
