"""DeepLabV3+-ResNet-50 training step: seg_common versus segmentation-models-pytorch, on this machine.

One forward + backward pass (cross-entropy, 21 classes, batch 2, random data, train mode) per step,
output stride 16, no pretrained weights. Models:

* ``smp``        - ``smp.DeepLabV3Plus("resnet50", encoder_weights=None)``, atrous rates 6/12/18;
                   depthwise-separable convs in ASPP and decoder (smp's default);
* ``ours-sep``   - ``DeepLabV3Plus(separable=True)``: the same layers and parameter count as smp's
                   (a unit test checks it), so the like-for-like comparison;
* ``ours-dense`` - ``DeepLabV3Plus()`` as the notebook uses it: full 3x3 convs (torchvision's ASPP);
* ``ours-backbone`` / ``smp-backbone`` - the dilated ResNet-50 alone (loss: mean square of its
  stride-16 features), the part where both do exactly the same work.

The two full models differ in one place: ours (like the paper and mmsegmentation) mixes the
concatenated decoder features with two separable 3x3 convs at stride 4; smp applies one of them to
the ASPP output at stride 16 instead, before upsampling. Same weights, less work for smp.

Time: all models live in this process and take turns, one step each per round (the order flips
every round), after one warm-up step each, so that no model gets a quieter stretch of the machine;
the time per step is the median over the rounds. Memory: each model trains one step in its own
fresh process, whose peak RSS above its idle peak after imports is reported (as
``seg_common.benchmark`` does). smp needs sides divisible by 16: at 513x513 it is fed the input
padded to 528x528, which is what a user of smp has to do; the like-for-like ratio is at 512x512.

Run from the repository root:  .venv/bin/python bench/deeplab_vs_smp.py [--sizes 513 512 --rounds 4]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

MODELS = ("ours-sep", "smp", "ours-dense", "ours-backbone", "smp-backbone")


def build(name: str):
    if name.endswith("-backbone"):
        full = build(name.replace("-backbone", "-sep" if name.startswith("ours") else ""))
        return full.backbone if name.startswith("ours") else full.encoder
    if name == "smp":
        import segmentation_models_pytorch as smp
        return smp.DeepLabV3Plus(encoder_name="resnet50", encoder_weights=None, classes=21,
                                 encoder_output_stride=16, decoder_atrous_rates=(6, 12, 18))
    from seg_common.models import DeepLabV3Plus
    return DeepLabV3Plus(21, "resnet50", 16, separable=(name == "ours-sep"))


def batch_for(name: str, size: int, batch: int):
    import torch
    fed = size if not name.startswith("smp") else -(-size // 16) * 16      # smp: pad to a multiple of 16
    generator = torch.Generator().manual_seed(0)
    return (torch.randn(batch, 3, fed, fed, generator=generator),
            torch.randint(0, 21, (batch, fed, fed), generator=generator))


def step(model, x, y) -> float:
    import torch
    import torch.nn.functional as F
    started = time.perf_counter()
    out = model(x)
    loss = F.cross_entropy(out, y) if torch.is_tensor(out) else out[-1].square().mean()
    loss.backward()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - started


def child(name: str, size: int, batch: int) -> dict:
    """In a fresh process: one training step; the peak memory it took above the idle process."""
    import torch

    from seg_common.benchmark import peak_rss_mb
    idle = peak_rss_mb()
    torch.manual_seed(0)
    model = build(name).train()
    step(model, *batch_for(name, size, batch))
    peak = peak_rss_mb()
    return {"peak_mb": None if peak is None or idle is None else peak - idle}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 513])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4, help="timed steps per model and size (after a warm-up)")
    parser.add_argument("--child", choices=MODELS, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.size, args.batch)))
        return

    import torch
    import segmentation_models_pytorch as smp
    print(f"torch {torch.__version__}, smp {smp.__version__}, {torch.get_num_threads()} threads, batch "
          f"{args.batch}, {args.rounds} timed steps per model and size")
    torch.manual_seed(0)
    models = {name: build(name).train() for name in MODELS}
    rows = []
    for size in args.sizes:
        data = {name: batch_for(name, size, args.batch) for name in MODELS}
        seconds: dict[str, list[float]] = {name: [] for name in MODELS}
        for name in MODELS:
            step(models[name], *data[name])                              # warm-up
        for r in range(args.rounds):
            for name in (MODELS if r % 2 == 0 else MODELS[::-1]):
                seconds[name].append(step(models[name], *data[name]))
        for name in MODELS:
            done = subprocess.run([sys.executable, __file__, "--child", name, "--size", str(size),
                                   "--batch", str(args.batch)], capture_output=True, text=True)
            if done.returncode != 0:
                sys.exit(f"{name} at {size} failed:\n{done.stderr[-2000:]}")
            peak = json.loads(done.stdout.strip().splitlines()[-1])["peak_mb"]
            rows.append({"model": name, "size": size, "fed": data[name][0].shape[-1],
                         "params_m": sum(p.numel() for p in models[name].parameters()) / 1e6,
                         "seconds": statistics.median(seconds[name]), "peak_mb": peak})
    print(f"\n{'model':<14} {'input':>9} {'fed':>9} {'params':>8} {'s/step':>7} {'peak MB':>8}")
    median = {}
    for row in rows:
        median[row["model"], row["size"]] = row["seconds"]
        peak = row["peak_mb"] if row["peak_mb"] is not None else float("nan")
        print(f"{row['model']:<14} {row['size']:>4}x{row['size']:<4} {row['fed']:>4}x{row['fed']:<4} "
              f"{row['params_m']:>7.1f}M {row['seconds']:>7.2f} {peak:>8.0f}")
    print()
    for size in args.sizes:
        ratio = lambda a, b: median[a, size] / median[b, size]
        print(f"{size}x{size}" + ("" if size % 16 == 0 else " (smp fed 528x528)")
              + f": ours-sep / smp = {ratio('ours-sep', 'smp'):.2f}x"
              + f";  backbones ours / smp = {ratio('ours-backbone', 'smp-backbone'):.2f}x"
              + f";  ours-dense / smp = {ratio('ours-dense', 'smp'):.2f}x")
    print("target: ours-sep / smp <= 1.10x at a size both take as it is")


if __name__ == "__main__":
    main()
