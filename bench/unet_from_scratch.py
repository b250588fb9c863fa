"""Why does the U-Net learn slower than FCN-8s from scratch? Train both, and two U-Net variants, on
the offline sample with the same batches and the same recipe, and print each run's training loss
and validation mIoU.

Variants (all with the same ResNet-18 encoder, trained from random weights):

* ``fcn8s``: the FCN-8s head - three 1x1 score layers and fixed bilinear upsampling;
* ``unet``: the course's U-Net (segmentation-models-pytorch's layout, widths 256-128-64-32-16);
* ``unet+input``: the same plus a branch of two 3x3 conv-BN-ReLU on the raw image, joined at full
  resolution before the last block (a common addition: "full-resolution detail from the input");
* ``unet wide``: the U-Net with 64 channels in its last three decoder blocks instead of 64-32-16.

Recipe: 128x128 crops after a random 0.75-1.25 rescale, flips, batch 8, AdamW with one-cycle to 3e-3,
``--steps`` optimizer steps (default 300), whole-image validation on the sample's val split; the
engine's defaults (bfloat16 where the CPU has it, channels_last). About 1 minute per run on 2 cores.

    .venv/bin/python bench/unet_from_scratch.py [--steps 300] [--seeds 0 1]
"""
from __future__ import annotations

import argparse
import math

import torch
from torch import nn

from seg_common.data.loading import seeded_loader
from seg_common.data.sample import make_sample_voc
from seg_common.data.transforms import eval_transforms, train_transforms
from seg_common.data.voc import NUM_CLASSES, VOCSegmentation
from seg_common.engine import fit
from seg_common.models import ResNetUNet, build_model
from seg_common.models.fcn import pad_to_multiple
from seg_common.models.unet import UpBlock, conv_bn_relu
from seg_common.profile import Profile


class UNetWithInputBranch(ResNetUNet):
    """The U-Net plus two convolutions on the raw image, concatenated before the last block."""

    def __init__(self, num_classes: int) -> None:
        super().__init__(num_classes)
        self.full_res = nn.Sequential(conv_bn_relu(3, 16), conv_bn_relu(16, 16))
        self.up_full = UpBlock(32, 16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, (h, w) = pad_to_multiple(x, self.stride)
        s2 = self.layer0(x)
        s4 = self.layer1(s2)
        s8 = self.layer2(s4)
        s16 = self.layer3(s8)
        d = self.up0(self.up1(self.up2(self.up3(self.layer4(s16), s16), s8), s4), s2)
        return self.classifier(self.up_full(d, self.full_res(x)))[..., :h, :w]


VARIANTS = {
    "fcn8s": lambda: build_model("fcn8s_resnet18", NUM_CLASSES),
    "unet": lambda: ResNetUNet(NUM_CLASSES),
    "unet+input": lambda: UNetWithInputBranch(NUM_CLASSES),
    "unet wide": lambda: ResNetUNet(NUM_CLASSES, decoder_channels=(256, 128, 64, 64, 64)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    root = Profile("sample", Profile.from_env().base_root).data_root
    make_sample_voc(root)
    augment = train_transforms((128, 128), base_size=150, scale_range=(0.75, 1.25), rotation=0, hflip=0.5,
                               color_jitter=0)
    train_set = VOCSegmentation(root, "train", augment, cache=True)
    val_loader = torch.utils.data.DataLoader(VOCSegmentation(root, "val", eval_transforms(), cache=True))
    print(f"{'variant':<11} {'seed':>4} {'params':>7} {'ms/step':>8} {'train loss':>11} {'val mIoU':>9}")
    for name in args.variants:
        for seed in args.seeds:
            torch.manual_seed(seed)
            model = VARIANTS[name]()
            loader = seeded_loader(train_set, 8, seed=seed, drop_last=True)
            epochs = math.ceil(args.steps / len(loader))
            optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
            scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, 3e-3, total_steps=epochs * len(loader))
            history = fit(model, loader, val_loader, optimizer=optimizer, scheduler=scheduler,
                          scheduler_per_iteration=True, epochs=epochs, num_classes=NUM_CLASSES, device="cpu",
                          eval_every=epochs, progress=False, verbose=False)
            train_seconds = sum(h["train_seconds"] for h in history)
            params = sum(p.numel() for p in model.parameters()) / 1e6
            print(f"{name:<11} {seed:>4} {params:>6.2f}M {1000 * train_seconds / (epochs * len(loader)):>8.0f} "
                  f"{history[-1]['train_loss']:>11.3f} {history[-1]['miou']:>9.3f}", flush=True)


if __name__ == "__main__":
    main()
