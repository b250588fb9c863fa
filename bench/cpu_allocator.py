"""Does keeping freed memory in the process (``devices.keep_freed_memory``) make CPU training faster?

The engine's loops call ``keep_freed_memory`` on the CPU: glibc then serves large blocks from the
heap instead of a fresh ``mmap`` each time, and keeps freed memory instead of returning it to the
operating system. The setting is process-wide, so each measurement runs in a fresh process, the
two settings alternating (``--rounds`` of each): the engine's ``train_one_epoch`` over the same
``--steps`` random batches (bfloat16 where the CPU has it, channels_last), after two warm-up
steps. Prints milliseconds per step and the process's user and system CPU seconds per step (the
system time is where the mmap/munmap and page zeroing show), then the medians.

    .venv/bin/python bench/cpu_allocator.py [--model unet_resnet18] [--batch 4] [--crop 128] [--rounds 4]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch


def measure(model_name: str, batch: int, crop: int, steps: int, keep: bool) -> dict:
    """One process's measurement (run as a child: the allocator setting cannot be undone)."""
    from seg_common import devices, loops
    from seg_common.losses import cross_entropy
    from seg_common.models import build_model

    if not keep:        # the loops call keep_freed_memory: make it a no-op for the baseline
        devices._allocator_kept = False
    torch.manual_seed(0)
    model = build_model(model_name, 21)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = [(torch.randn(batch, 3, crop, crop), torch.randint(0, 21, (batch, crop, crop))) for _ in range(steps)]
    def loss_fn(output, target):          # PSPNet returns (main, aux) while training: the main head's loss
        return cross_entropy(output[0] if isinstance(output, tuple) else output, target)

    loops.train_one_epoch(model, batches[:2], optimizer, loss_fn=loss_fn, device="cpu", progress=False)  # warm-up
    start, cpu = time.perf_counter(), os.times()
    loops.train_one_epoch(model, batches, optimizer, loss_fn=loss_fn, device="cpu", progress=False)
    end, cpu_end = time.perf_counter(), os.times()
    return {"keep": devices.keep_freed_memory(torch.device("cpu")), "ms": 1000 * (end - start) / steps,
            "user_ms": 1000 * (cpu_end.user - cpu.user) / steps, "sys_ms": 1000 * (cpu_end.system - cpu.system) / steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="unet_resnet18")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--child", choices=["keep", "default"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.model, args.batch, args.crop, args.steps, args.child == "keep")))
        return
    results = {"default": [], "keep": []}
    for round_ in range(args.rounds):
        for setting in ("default", "keep"):
            out = subprocess.run([sys.executable, __file__, "--child", setting, "--model", args.model, "--batch",
                                  str(args.batch), "--crop", str(args.crop), "--steps", str(args.steps)],
                                 capture_output=True, text=True)
            if out.returncode:
                sys.exit(f"the measuring process failed:\n{out.stderr[-3000:]}")
            r = json.loads(out.stdout.strip().splitlines()[-1])
            results[setting].append(r)
            print(f"round {round_ + 1} {setting:<7} (in effect: {r['keep']!s:<5}) {r['ms']:6.0f} ms/step "
                  f"| CPU per step: user {r['user_ms']:5.0f} ms, system {r['sys_ms']:4.0f} ms", flush=True)
    med = {s: statistics.median(r["ms"] for r in rs) for s, rs in results.items()}
    sys_med = {s: statistics.median(r["sys_ms"] for r in rs) for s, rs in results.items()}
    print(f"{args.model}, batch {args.batch}, {args.crop}x{args.crop}: median {med['default']:.0f} ms/step "
          f"(system {sys_med['default']:.0f} ms) without, {med['keep']:.0f} ms/step (system {sys_med['keep']:.0f} ms) "
          f"with keep_freed_memory: {med['default'] / med['keep']:.2f}x")


if __name__ == "__main__":
    main()
