"""A segmentation head on a frozen backbone, trained with PyTorch Lightning (notebooks 09).

Notebook ``09_ade20k_lightning`` builds most of these pieces inline, one at a time, and checks that
they equal the ones here; ``09_ade20k_experiments`` imports them:

- :func:`alexnet_features` and :class:`Head1x1`: the learner's report's model - torchvision's
  AlexNet ``features`` (frozen) and one 1x1 convolution, upsampled bilinearly to the input size;
- :class:`Segmenter`: the ``LightningModule`` (the backbone optional: ``None`` when the inputs are
  cached features), scored on the thing classes with output 0 (void) ignored;
- :class:`EpochShuffle`: an epoch's order drawn from ``(seed, epoch)`` only, so a resumed run sees
  the uninterrupted run's batches;
- :func:`make_trainer`: a ``lightning.Trainer`` with deterministic, quiet outputs;
- :func:`report_transforms`, :func:`image_names` and :func:`stand_in_alexnet`: the report's item
  (resize to a square, normalise, void-first labels), the image files a feature cache records, and
  the sample profile's offline stand-in for ImageNet weights.
"""
from __future__ import annotations

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, Sampler
from torchvision import models
from torchvision.transforms import v2

from . import dryrun
from .data.ade20k import ADE20KSegmentation, void_first
from .data.transforms import to_model_input
from .engine import fit
from .metrics import ConfusionMatrix

STUFF = ("wall", "floor", "ceiling")


def alexnet_features(pretrained: bool = False) -> nn.Sequential:
    """torchvision's AlexNet ``features`` (five convolutions, three max-pools; ImageNet weights
    when ``pretrained``): 256 channels at about 1/40 of the input size."""
    weights = models.AlexNet_Weights.IMAGENET1K_V1 if pretrained else None
    return models.alexnet(weights=weights).features


class Head1x1(nn.Module):
    """The report's head: a 1x1 convolution to the outputs, then a bilinear upsample to ``size``."""

    def __init__(self, in_channels: int, num_outputs: int, size: int = 240):
        super().__init__()
        self.score, self.size = nn.Conv2d(in_channels, num_outputs, 1), size

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.score(features), size=(self.size, self.size), mode="bilinear", align_corners=False)


def thing_scores(cm: ConfusionMatrix) -> dict:
    """Pixel accuracy and mIoU over the thing classes (output 0, void, is never a target)."""
    s = cm.compute()
    return {"pixel_acc": s.pixel_acc, "miou": float(np.nanmean(s.iou[1:].numpy()))}


class Segmenter(L.LightningModule):
    """``head(backbone(x))`` with the backbone frozen (kept in eval mode, so that a ResNet's
    BatchNorm keeps its statistics), cross-entropy with void (0) ignored, Adam on the head only.
    ``history`` holds the validation scores per epoch and travels in the checkpoint."""

    def __init__(self, head: nn.Module, num_outputs: int, backbone: nn.Module | None = None, lr: float = 1e-2):
        super().__init__()
        self.head, self.backbone, self.lr, self.num_outputs = head, backbone, lr, num_outputs
        if backbone is not None:
            backbone.requires_grad_(False)
        self.loss_fn = nn.CrossEntropyLoss(ignore_index=0)
        self.history: list[dict] = []

    def forward(self, x):
        return self.head(self.backbone(x) if self.backbone is not None else x)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.backbone is not None:
            self.backbone.eval()
        return self

    def training_step(self, batch, batch_index):
        x, y = batch
        loss = self.loss_fn(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def on_validation_epoch_start(self):
        self.cm = ConfusionMatrix(self.num_outputs, ignore_index=0)

    def validation_step(self, batch, batch_index):
        x, y = batch
        self.cm.update(self(x).argmax(1).cpu(), y.cpu())

    def on_validation_epoch_end(self):
        scores = thing_scores(self.cm)
        self.log_dict({"val_" + k: v for k, v in scores.items()})
        self.history.append({"epoch": self.current_epoch + 1, **scores})

    def configure_optimizers(self):
        return torch.optim.Adam(self.head.parameters(), lr=self.lr)

    def on_save_checkpoint(self, checkpoint):
        checkpoint["history"] = self.history

    def on_load_checkpoint(self, checkpoint):
        self.history = checkpoint["history"]


class EpochShuffle(Sampler):
    """A permutation per epoch, drawn from ``(seed, epoch)``: the same order after a resume.
    Lightning calls ``set_epoch`` before each epoch; a loop that does not gets the next epoch's
    order on each pass."""

    def __init__(self, size: int, seed: int):
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed * 1000 + self.epoch))
        self.epoch += 1
        return iter(order.tolist())


def train_loader(dataset, batch_size: int, seed: int = 0, workers: int = 0) -> DataLoader:
    """Batches in :class:`EpochShuffle` order. ``workers`` defaults to 0: cached features are in
    memory already, and with worker processes Lightning 2.6 starts a resumed run's first epoch
    before it calls ``set_epoch`` (that epoch then gets epoch 0's order)."""
    return DataLoader(dataset, batch_size=batch_size, sampler=EpochShuffle(len(dataset), seed), num_workers=workers)


def make_trainer(epochs: int, callbacks=(), keep_epochs: bool = False, **kwargs) -> L.Trainer:
    """A Trainer without progress bars, model summary and logger folders (outputs that do not
    change between machines). A dry run trains one epoch unless ``keep_epochs``."""
    kwargs = {"accelerator": "auto", "devices": 1, **kwargs}
    return L.Trainer(max_epochs=epochs if keep_epochs else dryrun.epochs(epochs), logger=False,
                     enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                     callbacks=list(callbacks),
                     enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks), **kwargs)


def image_names(dataset) -> list:
    """The image files of a dataset (or of a ``Subset`` of one, as a dry run makes), in item order:
    what a feature cache's fingerprint records."""
    if isinstance(dataset, torch.utils.data.Subset):
        return [dataset.dataset.images[i] for i in dataset.indices]
    return dataset.images


def _resize_and_normalise(size: int) -> v2.Compose:
    return v2.Compose([v2.Resize((size, size)), *to_model_input()])


def report_transforms(size: int = 240):
    """The report's item: ``(uint8 image, labels) -> (normalised float image [3, size, size],
    void-first labels [size, size])``, both resized to a square."""
    resize = _resize_and_normalise(size)

    def item(image, mask):
        image, mask = resize(image, mask)
        return image, void_first(mask)

    return item


def stand_in_alexnet(root, size: int = 240, epochs: int = 6, batch_size: int = 16, device: str = "cpu",
                     seed: int = 0) -> tuple[nn.Sequential, list[dict]]:
    """The sample profile's stand-in for ImageNet weights: AlexNet's features trained from
    ``seed`` by ``seg_common``'s engine on wall vs floor vs ceiling (the SceneParsing labels, every
    thing pixel ignored) for ``epochs`` epochs, then frozen. Returns the frozen features (on the
    CPU, eval mode) and the engine's history."""
    scene = ADE20KSegmentation(root, "training", annotations="scene")
    lut = torch.full((256,), 255)
    lut[[scene.classes.index(name) for name in STUFF]] = torch.arange(len(STUFF))
    resize = _resize_and_normalise(size)

    def stuff_item(image, mask):
        image, mask = resize(image, mask)
        return image, lut[mask]

    torch.manual_seed(seed)
    model = nn.Sequential(alexnet_features(), Head1x1(256, len(STUFF), size))
    stuff_set = ADE20KSegmentation(root, "training", stuff_item, annotations="scene")
    history = fit(model, train_loader(stuff_set, batch_size, seed), None, epochs=epochs, num_classes=len(STUFF),
                  optimizer=torch.optim.Adam(model.parameters(), lr=1e-3), device=device, amp=False,
                  channels_last=False, progress=False, verbose=False)
    return model[0].cpu().eval().requires_grad_(False), history
