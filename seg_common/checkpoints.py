"""Checkpoint files: written atomically, read with errors that say what is wrong, and the random
states that make a resume exact.

``save_checkpoint`` writes to a temporary name and renames, so an interruption (a Colab disconnect,
Ctrl-C, a killed process) never leaves a half-written file; ``load_checkpoint`` and
``load_state_into`` turn PyTorch's messages into ones that name the file and the remedy. The random
states (torch, NumPy, Python, CUDA, and a loader's private generators) are saved with every
``last.pt`` so that :func:`seg_common.engine.fit` resumes exactly where it stopped.
"""
from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from torch import nn

CHECKPOINT_FORMAT = 1
LAST, BEST = "last.pt", "best.pt"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or does not fit the model or the run."""


def save_checkpoint(state: dict, path: str | Path) -> Path:
    """``torch.save`` to a temporary file in the same folder, flushed to disk, then renamed over
    ``path``: a process killed at any moment leaves either the old checkpoint or the new one, never
    a half-written ``path`` (at worst a stray ``.<name>.tmp-<pid>`` file, which
    :func:`remove_stale_temporaries` clears)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as file:
            torch.save(state, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        # A full disk reaches us as torch.save's "file write failed" / "unexpected pos": say so.
        free = shutil.disk_usage(path.parent).free / 2**20
        raise CheckpointError(
            f"Could not write the checkpoint {path} ({type(exc).__name__}: {str(exc).strip()[:200]}). "
            f"{free:.0f} MB are free on that disk, and a full disk is the usual cause: delete old runs "
            "(runs/<notebook>/...) or point SEG_RUNS at a disk with room. "
            + (f"The previous {path.name} is untouched." if path.exists() else "")
        ) from exc
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files that a killed process left in a checkpoint folder (files named
    ``.<name>.tmp-<pid>`` by :func:`save_checkpoint` and ``save_run``); returns what was removed."""
    removed = []
    for stray in Path(folder).glob(".*.tmp-*"):
        if stray.is_file():
            stray.unlink()
            removed.append(stray)
    return removed


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint written by this module, with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"No checkpoint at {path}. Train first (fit(..., checkpoint_dir=...)), or use "
            "resume='auto' to start from scratch when there is none."
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:
        raise CheckpointError(
            f"Checkpoint {path} is not readable ({type(exc).__name__}: {exc}); it may be truncated "
            "or not a PyTorch file. Delete it to start again, or resume from another copy."
        ) from exc
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path} is not a checkpoint of seg_common (no 'model' entry).")
    return state


def _model_name(model: nn.Module) -> str:
    model = getattr(model, "module", model)          # DataParallel / DDP wrappers
    return type(model).__name__


def load_state_into(model: nn.Module, state_dict: dict, *, source: str, saved_class: str | None) -> None:
    """``model.load_state_dict(state_dict)`` with an error that lists what does not fit."""
    target = getattr(model, "module", model)
    own = target.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state_dict and tuple(own[k].shape) != tuple(state_dict[k].shape)]
    if missing or unexpected or shapes:
        saved = f"the weights of {saved_class}" if saved_class else "weights"
        parts = [f"{source} holds {saved}, which do not fit this {_model_name(model)}:"]
        for label, items in (("missing in the file", missing), ("unexpected in the file", unexpected),
                             ("shape mismatch", shapes)):
            if items:
                more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
                parts.append(f"  {label}: {', '.join(items[:5])}{more}")
        parts.append("Build the same model (class, num_classes) that was saved, or train anew.")
        raise CheckpointError("\n".join(parts))
    target.load_state_dict(state_dict)


def save_weights(model: nn.Module, path: str | Path, **meta: Any) -> Path:
    """Save only the model weights (plus its class name and ``meta``), atomically."""
    target = getattr(model, "module", model)
    return save_checkpoint({"format": CHECKPOINT_FORMAT, "model": target.state_dict(),
                            "model_class": _model_name(model), "meta": meta}, path)


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load weights saved by :func:`save_weights` or :func:`fit` into ``model`` and return it."""
    state = load_checkpoint(path)
    load_state_into(model, state["model"], source=str(path), saved_class=state.get("model_class"))
    return model


def _rng_state(loader: Iterable | None) -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    for name, gen in _loader_generators(loader).items():
        state[name] = gen.get_state()
    return state


def _set_rng_state(state: dict, loader: Iterable | None) -> None:
    """Restore what :func:`_rng_state` saved. Every generator, CUDA's included, takes its state as
    a CPU ByteTensor, and a checkpoint loaded with ``map_location="cuda"`` holds GPU copies: they
    are brought back to the CPU first."""
    torch.set_rng_state(state["torch"].cpu())
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    for name, gen in _loader_generators(loader).items():
        if name in state:
            gen.set_state(state[name].cpu())


def _loader_generators(loader: Iterable | None) -> dict[str, torch.Generator]:
    """The private generators a DataLoader shuffles with, if it was given any."""
    gens = {}
    if loader is not None:
        if isinstance(getattr(loader, "generator", None), torch.Generator):
            gens["loader"] = loader.generator
        sampler = getattr(loader, "sampler", None)
        if isinstance(getattr(sampler, "generator", None), torch.Generator):
            gens["sampler"] = sampler.generator
    return gens
