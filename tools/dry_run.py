"""The full profile's dry run (``make dry-run``): every notebook, every full-profile setting, a
sliver of the work, offline.

It builds, in a temporary folder,

* a data root laid out exactly as ``download_data.sh voc voc-aug cityscapes ade20k`` leaves it: VOC 2012
  with SBD's ``SegmentationClassAug`` and ``train_aug.txt``, Cityscapes' ``leftImg8bit`` /
  ``gtFine``, and ADE20K's ``ADEChallengeData2016`` with the instance annotations beside it -
  written by the sample generators, without the sample marker, so the package takes them for the
  real downloads (sample scenes at the real sizes: VOC's 500x375 and the others, Cityscapes'
  2048x1024; ADE20K's at the sample's own sizes, its generator having no other; fewer images),
  and the Cornell grasping scenes with the depth images GG-CNN's ``generate_cornell_depth`` writes;
* a ``TORCH_HOME`` holding stand-in ImageNet weights under torchvision's own file names (random
  weights of the right shapes: nothing is downloaded, and a wrong file name or a missing backbone
  fails here as it would on a learner's machine without them);

then executes copies of the notebooks with ``SEG_PROFILE=full SEG_DRY_RUN=1`` (see
:mod:`seg_common.dryrun`), runs and figures in the temporary folder: the committed notebooks,
``runs/`` and ``pictures/`` stay untouched. Without a GPU the batches are cut to
``--cpu-max-batch`` images, one batch per run is trained and scored (``--cpu-batches``) and the
networks see ``--cpu-scale`` of each side of their inputs (the data, crops and label maps keep
their sizes; said in the output); on a GPU the full batches run, and
``--gpu-memory-gb 16`` caps the memory PyTorch may use to that of a 16 GB card. A table at the end
gives each notebook's time and peak memory (GPU, or the kernel's resident memory on a CPU), and
the disk its runs took; each notebook's runs are deleted before the next one starts (no notebook
reads another's runs), so the dry run needs the disk of its largest notebook, not of all of them
(``--keep`` keeps them).

    .venv/bin/python tools/dry_run.py [--notebooks 03 06] [--keep] [--gpu-memory-gb 16]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BACKBONES = ("alexnet", "resnet18", "resnet34", "resnet50", "resnet101")
PEAK_TAG = "DRY-RUN-PEAK"


def build_data_root(root: Path) -> None:
    """VOC 2012 (+ SBD's aug masks), Cityscapes, ADE20K and Cornell grasping, as the real downloads lay them out."""
    from seg_common.data.ade20k import ADE_DIR
    from seg_common.data.sample import make_sample_voc
    from seg_common.data.sample_ade20k import make_sample_ade20k
    from seg_common.data.sample_cityscapes import make_sample_cityscapes
    from seg_common.data.sample_cornell import make_sample_cornell
    from seg_common.profile import SAMPLE_MARKER, real_voc_present

    voc = make_sample_voc(root, n_train=100, n_val=40, n_aug_only=20, scale=1.0)   # VOC's own sizes
    cityscapes = make_sample_cityscapes(root / "cityscapes")
    ade20k = make_sample_ade20k(root, n_train=40, n_val=20) / ADE_DIR
    cornell = make_sample_cornell(root / "cornell")         # as GG-CNN's generate_cornell_depth leaves it
    for folder in (voc, cityscapes, ade20k, cornell):
        (folder / SAMPLE_MARKER).unlink()            # now it looks like a real download
    assert real_voc_present(root), "the dry run's VOC must pass for the real one"


def stand_in_weights(torch_home: Path) -> list[str]:
    """Random ImageNet-shaped weights under every file name torchvision would download."""
    import torch
    from torchvision import models

    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in BACKBONES:
        state = getattr(models, name)(weights=None).state_dict()
        for weights in models.get_model_weights(name):
            target = folder / weights.url.rsplit("/", 1)[1]
            torch.save(state, target)
            written.append(target.name)
    return written


def peak_cell(gpu_memory_gb: float | None) -> tuple[str, str]:
    """Source of the first injected cell (memory cap, peak reset) and of the last (peak report)."""
    first = "import torch\n"
    if gpu_memory_gb:
        first += ("if torch.cuda.is_available():\n"
                  f"    _total = torch.cuda.get_device_properties(0).total_memory\n"
                  f"    torch.cuda.set_per_process_memory_fraction(min(1.0, {gpu_memory_gb} * 2**30 / _total))\n")
    last = ("import json, resource, torch\n"
            "_peak = {'cpu_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}\n"
            "if torch.cuda.is_available():\n"
            "    _peak['gpu_peak_mb'] = torch.cuda.max_memory_allocated() / 2**20\n"
            f"print('{PEAK_TAG}', json.dumps(_peak))\n")
    return first, last


def run_notebook(path: Path, workdir: Path, env: dict[str, str], gpu_memory_gb: float | None,
                 timeout: int) -> dict:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    first, last = peak_cell(gpu_memory_gb)
    nb.cells.insert(0, nbformat.v4.new_code_cell(first))
    nb.cells.append(nbformat.v4.new_code_cell(last))
    os.environ.update(env)                       # the kernel inherits the environment
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(REPO / "notebooks")}})
    started = time.perf_counter()
    result = {"notebook": path.name, "ok": True, "error": ""}
    try:
        client.execute()
    except Exception as exc:  # CellExecutionError, a timeout, a dead kernel
        result.update(ok=False, error=f"{type(exc).__name__}: {str(exc)[-3000:]}")
    result["seconds"] = time.perf_counter() - started
    result["slowest"] = slowest_cells(nb, skip=1)
    for output in nb.cells[-1].get("outputs", []):
        text = output.get("text", "")
        if PEAK_TAG in text:
            result.update(json.loads(text.split(PEAK_TAG, 1)[1]))
    nbformat.write(nb, workdir / "executed" / path.name)
    return result


def slowest_cells(nb, n: int = 3, skip: int = 0) -> list[tuple[int, float]]:
    """The ``n`` slowest cells of an executed notebook as (index in the committed notebook, seconds),
    from the timing nbclient records in each cell's metadata; ``skip``: cells inserted in front."""
    from datetime import datetime

    seconds = []
    for index, cell in enumerate(nb.cells):
        timing = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in timing and "shell.execute_reply" in timing:
            began, ended = (datetime.fromisoformat(timing[k].replace("Z", "+00:00"))
                            for k in ("iopub.execute_input", "shell.execute_reply"))
            seconds.append((index - skip, (ended - began).total_seconds()))
    return sorted(seconds, key=lambda item: -item[1])[:n]


def folder_mb(folder: Path) -> float:
    """What the files below ``folder`` take on disk, in MB (0 when it does not exist)."""
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20 if folder.is_dir() else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notebooks", nargs="*", default=None,
                        help="numbers or names of the notebooks to run (default: all)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where data, weights, runs and executed copies go (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the working folder afterwards")
    parser.add_argument("--cpu-max-batch", type=int, default=2,
                        help="without a GPU, train on at most this many images per batch (default 2)")
    parser.add_argument("--cpu-batches", type=int, default=1,
                        help="without a GPU, train and score this many batches per run (default 1; 2 on a GPU)")
    parser.add_argument("--cpu-scale", type=float, default=0.5,
                        help="without a GPU, the networks see this share of each side (default 0.5; 1 = all)")
    parser.add_argument("--gpu-memory-gb", type=float, default=None,
                        help="on a GPU, let PyTorch use at most this much memory (e.g. 16 for a T4)")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per cell (default 1200)")
    args = parser.parse_args(argv)

    import torch

    notebooks = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.notebooks:
        notebooks = [nb for nb in notebooks if any(nb.name.startswith(k) or nb.stem == k for k in args.notebooks)]
        if not notebooks:
            parser.error(f"no notebook matches {args.notebooks}")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="seg-dry-run-"))
    (workdir / "executed").mkdir(parents=True, exist_ok=True)
    gpu = torch.cuda.is_available()
    env = {"SEG_PROFILE": "full", "SEG_DRY_RUN": "1", "SEG_DATA": str(workdir / "data"),
           "SEG_RUNS": str(workdir / "runs"), "SEG_PICTURES": str(workdir / "pictures"),
           "TORCH_HOME": str(workdir / "torch")}
    if not gpu:
        env["SEG_DRY_RUN_MAX_BATCH"] = str(args.cpu_max_batch)
        env["SEG_DRY_RUN_BATCHES"] = str(args.cpu_batches)    # full-size steps take seconds on a CPU
        env["SEG_DRY_RUN_SCALE"] = str(args.cpu_scale)        # and a quarter of the arithmetic
    print(f"dry run in {workdir}")
    print("device:", torch.cuda.get_device_name(0) if gpu else
          f"CPU only: training batches cut to {args.cpu_max_batch} images (SEG_DRY_RUN_MAX_BATCH), "
          f"{args.cpu_batches} batch(es) trained and scored per run (SEG_DRY_RUN_BATCHES), "
          f"the networks see {args.cpu_scale:g} of each side (SEG_DRY_RUN_SCALE), "
          "to stay inside a laptop's memory; on a GPU the full batches run")
    started = time.perf_counter()
    build_data_root(workdir / "data")
    written = stand_in_weights(workdir / "torch")
    print(f"data root and {len(written)} stand-in weight files ready in {time.perf_counter() - started:.0f} s")

    results = []
    kept = args.keep or args.workdir is not None
    for path in notebooks:
        result = run_notebook(path, workdir, env, args.gpu_memory_gb if gpu else None, args.timeout)
        result["runs_mb"] = folder_mb(workdir / "runs")
        if not kept:                             # checkpoints of full-size models: GBs per notebook
            shutil.rmtree(workdir / "runs", ignore_errors=True)
        results.append(result)
        peak = (f"GPU peak {result['gpu_peak_mb']:.0f} MB" if "gpu_peak_mb" in result else
                f"kernel RSS peak {result.get('cpu_rss_mb', float('nan')):.0f} MB")
        print(f"{'ok  ' if result['ok'] else 'FAIL'} {path.name:<32} {result['seconds']:6.0f} s  {peak}  "
              f"runs {result['runs_mb']:.0f} MB on disk | slowest cells: "
              + ", ".join(f"[{index}] {seconds:.0f} s" for index, seconds in result["slowest"]), flush=True)
        if not result["ok"]:
            print("     " + result["error"].replace("\n", "\n     "), flush=True)
    (workdir / "dry_run.json").write_text(json.dumps(results, indent=1))
    failed = [r["notebook"] for r in results if not r["ok"]]
    print(f"{len(results) - len(failed)}/{len(results)} notebooks ran in the full profile's dry run "
          f"({time.perf_counter() - started:.0f} s)" + (f"; executed copies in {workdir / 'executed'}" if kept else ""))
    if not kept:
        shutil.rmtree(workdir, ignore_errors=True)
    if failed:
        print("failed:", ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
