"""Recorded runs: a small JSON summary per run, so notebooks compare runs without retraining, and
statistics over the seeds of each setting."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from torch import nn

from .checkpoints import CHECKPOINT_FORMAT, CheckpointError, _model_name, save_weights


RUN_FILE = "run.json"


def save_run(
    run_dir: str | Path,
    *,
    history: list[dict[str, Any]],
    settings: dict[str, Any],
    class_names: list[str] | tuple[str, ...],
    final: dict[str, Any] | None = None,
    model: nn.Module | None = None,
) -> Path:
    """Record a finished run in ``run_dir/run.json`` (history, settings, final scores, classes).

    ``final`` defaults to the last validated epoch of ``history``. With ``model`` the weights go to
    ``run_dir/weights.pt`` too. The JSON is written atomically, like the checkpoints.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    validated = [h for h in history if "miou" in h]
    if final is None:
        if not validated:
            raise ValueError("save_run needs a final score: no epoch of the history was validated")
        final = {k: v for k, v in validated[-1].items() if k != "epoch"}
    record = {"format": CHECKPOINT_FORMAT, "settings": settings, "class_names": list(class_names),
              "history": history, "final": final}
    if model is not None:
        record["model_class"] = _model_name(model)
        record["parameters"] = sum(p.numel() for p in model.parameters())
        save_weights(model, run_dir / "weights.pt", settings=settings)
    tmp = run_dir / f".{RUN_FILE}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, run_dir / RUN_FILE)
    return run_dir / RUN_FILE


def load_run(run_dir: str | Path) -> dict[str, Any]:
    """Read a run recorded by :func:`save_run`; the error names the folder when it is not there."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"No recorded run in {Path(run_dir)} ({RUN_FILE} is missing). Train and record it first "
            "(save_run), or check the run's name.")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc}); record the run again.") from exc


def load_runs(run_dirs: dict[str, str | Path]) -> dict[str, dict[str, Any]]:
    """Load several runs for a comparison, refusing runs trained on different class sets."""
    runs = {name: load_run(path) for name, path in run_dirs.items()}
    reference_name, reference = next(iter(runs.items()))
    for name, run in runs.items():
        if run["class_names"] != reference["class_names"]:
            raise ValueError(
                f"Runs {reference_name!r} and {name!r} were trained on different class sets "
                f"({len(reference['class_names'])} vs {len(run['class_names'])} classes); their "
                "scores cannot be compared.")
    return runs


def summarize_runs(runs: dict[str, list[dict[str, Any]]],
                   keys: Iterable[str] = ("miou", "pixel_acc", "mean_acc")):
    """Mean, spread (min-max) and standard deviation over the seeds of each named setting.

    ``runs`` maps a setting's name to its recorded runs (one per seed, as :func:`load_run`
    returns them). Returns a pandas DataFrame, one row per setting, with the columns
    ``<key> mean``, ``<key> std``, ``<key> min``, ``<key> max`` and ``seeds``. Settings trained on
    different class sets are refused, as in :func:`load_runs`.
    """
    import pandas as pd

    classes = None
    rows = {}
    for name, seeds in runs.items():
        if not seeds:
            raise ValueError(f"setting {name!r} has no recorded runs")
        for run in seeds:
            if classes is None:
                classes = run["class_names"]
            elif run["class_names"] != classes:
                raise ValueError(f"{name!r} has runs trained on a different class set "
                                 f"({len(run['class_names'])} vs {len(classes)} classes)")
        row: dict[str, float] = {}
        for key in keys:
            values = np.array([run["final"][key] for run in seeds], dtype=float)
            row.update({f"{key} mean": values.mean(), f"{key} std": values.std(ddof=1) if len(values) > 1 else 0.0,
                        f"{key} min": values.min(), f"{key} max": values.max()})
        row["seeds"] = len(seeds)
        rows[name] = row
    return pd.DataFrame(rows).T


def compare_settings(summary, pairs: Iterable[tuple[str, str]], key: str = "miou"):
    """For each ``(before, after)`` pair of a :func:`summarize_runs` table: the change of the mean
    and whether it is larger than the spread - the seeds' ranges ``[min, max]`` do not overlap.

    With fewer than two seeds on either side there is no spread, and the answer is None. The test
    is a modest bar: with three seeds each and no real difference, the two ranges still fail to
    overlap in 2 of the 20 equally likely orderings of the six scores (10% of the time)."""
    import pandas as pd

    rows = []
    for before, after in pairs:
        for name in (before, after):
            if name not in summary.index:
                raise KeyError(f"no setting {name!r} in the summary (have: {', '.join(summary.index)})")
        b, a = summary.loc[before], summary.loc[after]
        change = a[f"{key} mean"] - b[f"{key} mean"]
        separated = a[f"{key} min"] > b[f"{key} max"] or a[f"{key} max"] < b[f"{key} min"]
        if min(a["seeds"], b["seeds"]) < 2:
            separated = None
        rows.append({"change": f"{before} -> {after}", f"{key} before": b[f"{key} mean"],
                     f"{key} after": a[f"{key} mean"], "difference": change,
                     "larger than the spread": separated if separated is None else bool(separated)})
    return pd.DataFrame(rows).set_index("change")
