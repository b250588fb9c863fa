"""torchvision backbones, with ImageNet weights on request and a clear error when they can't load."""
from __future__ import annotations

from torch import nn
from torchvision import models


def load_resnet(name: str, pretrained: bool, **kwargs) -> models.ResNet:
    """``torchvision.models.<name>`` with ImageNet weights when ``pretrained``.

    Downloads the weights on first use (to ``~/.cache/torch``); without network that fails, and the
    error says how to go on without them.
    """
    builder = getattr(models, name)
    if not pretrained:
        return builder(weights=None, **kwargs)
    weights = models.get_model_weights(name).DEFAULT
    try:
        return builder(weights=weights, **kwargs)
    except Exception as exc:  # URLError, HTTPError, a truncated file, ...
        raise RuntimeError(
            f"Could not load the ImageNet weights {weights} for {name} ({type(exc).__name__}: {exc}). "
            "Check the network connection, or put the file in ~/.cache/torch/hub/checkpoints, "
            "or build the model with pretrained=False (the sample profile does)."
        ) from exc


def resnet18_backbone(pretrained: bool = False) -> nn.Sequential:
    """ResNet-18 without avgpool and fc: ``[B, 3, H, W]`` -> ``[B, 512, H/32, W/32]``.

    Children in order: conv1, bn1, relu, maxpool, layer1 (stride 4), layer2 (8), layer3 (16),
    layer4 (32) - the d2l book's ``list(net.children())[:-2]``.
    """
    net = load_resnet("resnet18", pretrained)
    return nn.Sequential(*list(net.children())[:-2])
