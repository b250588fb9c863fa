"""Training throughput of the book's FCN: seg_common's engine versus d2l.train_ch13.

Both train the same FCN (ResNet-18, the book's 320x480 crops - 128x192 on the sample, whose images
are VOC's x 0.4 -, batch 8) on the same batches - d2l's own VOCSegDataset, built from the data root
of the active profile - with the same SGD, on this machine's default device. Throughput is images
per second over whole epochs of training:

* d2l: the "examples/sec" that train_ch13 prints (its timer covers the training batches only, not
  its plotting or evaluation - the most favourable measure for d2l), and the wall-clock rate of the
  whole call (which includes its per-batch accuracy, plotting and evaluation on a one-batch test set);
* engine: train_one_epoch, timed wall-clock, with its defaults (mixed precision where the device
  computes bfloat16 natively, channels_last: ``seg_common.precision``) and in plain float32 with
  the channels-first layout, d2l's numerics.

Run from the repository root:  .venv/bin/python bench/fcn_throughput.py [--epochs 2]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import re
import time
import warnings

import matplotlib

matplotlib.use("Agg")
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from d2l import torch as d2l  # noqa: E402

from seg_common import precision  # noqa: E402
from seg_common.data import prepare_voc  # noqa: E402
from seg_common.data.sample import SAMPLE_D2L_CROP  # noqa: E402
from seg_common.engine import default_device, train_one_epoch  # noqa: E402
from seg_common.models import fcn_resnet18_d2l  # noqa: E402
from seg_common.profile import Profile  # noqa: E402

BATCH = 8


def book_loss(inputs, targets):
    return F.cross_entropy(inputs, targets, reduction="none").mean(1).mean(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    profile = Profile.from_env()
    voc_dir = prepare_voc(profile) / "VOCdevkit" / "VOC2012"
    crop = profile.pick(sample=SAMPLE_D2L_CROP, full=(320, 480))
    device = default_device()
    print(f"{profile.name} profile, device {device.type}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, crop {crop}, batch {BATCH}, {args.epochs} epochs each; "
          f"engine defaults: {precision.describe(device)}, channels_last")

    with contextlib.redirect_stdout(io.StringIO()):           # d2l prints "read N examples"
        train_set = d2l.VOCSegDataset(True, crop, str(voc_dir))
        test_set = torch.utils.data.Subset(d2l.VOCSegDataset(False, crop, str(voc_dir)), range(BATCH))
    loader = torch.utils.data.DataLoader(train_set, BATCH, shuffle=True, drop_last=True,
                                         generator=torch.Generator().manual_seed(0))
    test_loader = torch.utils.data.DataLoader(test_set, BATCH)
    images = len(loader) * BATCH
    print(f"{len(train_set)} training images -> {len(loader)} batches per epoch")

    def fresh():
        torch.manual_seed(0)
        net = fcn_resnet18_d2l().to(device)
        return net, torch.optim.SGD(net.parameters(), lr=0.001, weight_decay=1e-3)

    # Warm-up: one step each way, so that one-time costs (allocator, kernels) count for neither.
    net, opt = fresh()
    train_one_epoch(net, [next(iter(loader))], opt, device=device, progress=False)

    net, opt = fresh()
    out = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # d2l's Accumulator calls float() on a grad tensor
        d2l.train_ch13(net, loader, test_loader, book_loss, opt, args.epochs, [device])
    d2l_wall = images * args.epochs / (time.perf_counter() - started)
    match = re.search(r"([\d.]+) examples/sec", out.getvalue())
    d2l_own = float(match.group(1)) if match else float("nan")

    rates = {}
    for name, options in (("defaults", {}), ("float32", {"amp": False, "channels_last": False})):
        net, opt = fresh()
        if options.get("channels_last", "auto") == "auto" and device.type in ("cpu", "cuda"):
            net = net.to(memory_format=torch.channels_last)        # as fit does
        started = time.perf_counter()
        for _ in range(args.epochs):
            train_one_epoch(net, loader, opt, device=device, progress=False,
                            loss_fn=lambda x, y: book_loss(x, y).sum(), **options)
        rates[name] = images * args.epochs / (time.perf_counter() - started)

    print(f"d2l.train_ch13, its own timer (training batches only): {d2l_own:7.2f} images/s")
    print(f"d2l.train_ch13, wall clock (with accuracy, plots, eval): {d2l_wall:7.2f} images/s")
    print(f"engine train_one_epoch, defaults:                        {rates['defaults']:7.2f} images/s")
    print(f"engine train_one_epoch, float32, channels first:         {rates['float32']:7.2f} images/s")
    print(f"ratio engine (defaults) / d2l own timer: {rates['defaults'] / d2l_own:.2f}x; "
          f"/ d2l wall clock: {rates['defaults'] / d2l_wall:.2f}x; "
          f"engine float32 / d2l own timer: {rates['float32'] / d2l_own:.2f}x")


if __name__ == "__main__":
    main()
