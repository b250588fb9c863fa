"""The sample/full switch every notebook starts with.

Two profiles run the same cells:

* ``sample``: offline datasets that :mod:`seg_common.data.sample` generates in the real on-disk
  formats, small crops, small models, a few epochs - a notebook runs in minutes on a laptop CPU.
* ``full``: the real datasets (``download_data.sh``), the references' hyper-parameters,
  ImageNet-pretrained backbones - meant for a GPU or Colab.

Environment variables:

* ``SEG_PROFILE`` = ``sample`` or ``full`` chooses explicitly. Unset, the profile is ``full`` when
  the real VOC 2012 is present under the data root and ``sample`` otherwise.
* ``SEG_DATA`` overrides the data root (default: ``data/`` at the repository root, or ``./data``
  when the package is installed outside a checkout, as on Colab).
* ``SEG_RUNS`` and ``SEG_PICTURES`` move the training runs (checkpoints, histories) and the
  figures (default: ``runs/`` and ``pictures/`` beside ``data/``). On Colab, point ``SEG_DATA`` and
  ``SEG_RUNS`` at Google Drive: ``/content`` is wiped with the runtime.
* ``SEG_DRY_RUN=1`` keeps every setting and cuts the work (:mod:`seg_common.dryrun`).

The sample datasets live in ``<data root>/sample`` so that they never mix with real data;
``Profile.data_root`` already points at the right folder for the active profile.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, TypeVar

T = TypeVar("T")

PROFILES = ("sample", "full")
SAMPLE_SUBDIR = "sample"
# A file the sample generator writes; real data never has it.
SAMPLE_MARKER = ".seg_common_sample"


def repo_root() -> Path | None:
    """The repository checkout this package lives in, or None when installed elsewhere."""
    candidate = Path(__file__).resolve().parents[1]
    if (candidate / "pyproject.toml").is_file() and (candidate / "seg_common").is_dir():
        return candidate
    return None


def project_path(name: str) -> Path:
    """``name`` at the repository root, or in the current folder outside a checkout (Colab)."""
    root = repo_root()
    return (root if root is not None else Path.cwd()) / name


def default_base_root() -> Path:
    return project_path("data")


def _from_env(variable: str, default: str) -> Path:
    value = os.environ.get(variable, "").strip()
    return Path(value).expanduser() if value else project_path(default)


def _dry_run() -> bool:
    from . import dryrun

    return dryrun.active()


def pictures_dir() -> Path:
    """Where notebooks save their figures: ``SEG_PICTURES`` when set, else ``pictures/`` at the
    repository root (``./pictures`` when the package is installed outside a checkout). A dry run
    (``SEG_DRY_RUN``) without ``SEG_PICTURES`` writes to ``<runs_dir()>/pictures`` instead: its
    figures of barely trained models must not replace the real ones."""
    if _dry_run() and not os.environ.get("SEG_PICTURES", "").strip():
        return runs_dir() / "pictures"
    return _from_env("SEG_PICTURES", "pictures")


def runs_dir() -> Path:
    """Where training runs keep checkpoints and histories: ``SEG_RUNS`` when set, else ``runs/`` at
    the repository root (``./runs`` outside a checkout; git ignores it). On Colab point
    ``SEG_RUNS`` at Google Drive, so that a resume after a runtime reset finds the checkpoints.

    A dry run (``SEG_DRY_RUN``) keeps its runs in a ``dry-run`` folder below: a notebook loads a
    recorded run instead of training it, and resumes from ``last.pt``, so the real run must never
    find the dry run's two-batch checkpoints in its own folder."""
    base = _from_env("SEG_RUNS", "runs")
    return base / "dry-run" if _dry_run() else base


def real_voc_present(base_root: Path) -> bool:
    """True when ``base_root`` holds a real (not generated) VOC 2012 with images in it."""
    voc = Path(base_root) / "VOCdevkit" / "VOC2012"
    jpegs = voc / "JPEGImages"
    return jpegs.is_dir() and not (voc / SAMPLE_MARKER).exists() and any(jpegs.iterdir())


# Where the one-line summary sends a learner for each real dataset (the README explains each).
DATA_HINTS = {
    "voc": "`download_data.sh voc`",
    "cityscapes": "`download_data.sh cityscapes`",
    "ade20k": "`download_data.sh ade20k`",
    "cornell": "its section on Cornell: placed by hand, `download_data.sh` does not fetch it",
}


@dataclass(frozen=True)
class Profile:
    """Which datasets and hyper-parameters a notebook uses.

    Attributes:
        name: ``"sample"`` or ``"full"``.
        base_root: the data root (``SEG_DATA``), where real datasets live.
        data_root: the folder that holds this profile's datasets: ``base_root`` in the full
            profile, ``base_root / "sample"`` in the sample profile.
        explicit: whether ``SEG_PROFILE`` chose the profile (False: it was detected).
        dataset: the notebook's real dataset (a key of ``DATA_HINTS``): where the one-line summary
            sends a learner for the real data.
    """

    name: str
    base_root: Path
    explicit: bool = False
    dataset: str = "voc"

    def __post_init__(self) -> None:
        if self.name not in PROFILES:
            raise ValueError(
                f"Unknown profile {self.name!r}: SEG_PROFILE must be one of {', '.join(PROFILES)}."
            )
        if self.dataset not in DATA_HINTS:
            raise ValueError(f"Unknown dataset {self.dataset!r}: one of {', '.join(DATA_HINTS)}.")

    @property
    def data_root(self) -> Path:
        return self.base_root / SAMPLE_SUBDIR if self.name == "sample" else self.base_root

    @property
    def is_sample(self) -> bool:
        return self.name == "sample"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, dataset: str = "voc") -> "Profile":
        """Build the profile from ``SEG_PROFILE`` and ``SEG_DATA`` (see the module docstring);
        ``dataset`` only chooses where the summary line sends a learner for the real data."""
        env = os.environ if environ is None else environ
        base = Path(env["SEG_DATA"]).expanduser() if env.get("SEG_DATA") else default_base_root()
        chosen = env.get("SEG_PROFILE", "").strip().lower()
        if chosen:
            return cls(chosen, base, explicit=True, dataset=dataset)
        return cls("full" if real_voc_present(base) else "sample", base, explicit=False, dataset=dataset)

    def pick(self, *, sample: T, full: T) -> T:
        """The value for the active profile: ``EPOCHS = P.pick(sample=4, full=30)``."""
        return sample if self.is_sample else full

    def describe(self) -> str:
        """One line for a notebook: which profile runs and how to switch (no machine paths)."""
        how = "set by SEG_PROFILE" if self.explicit else "detected"
        if self.is_sample:
            return (
                f"Profile: sample ({how}) - offline sample data, small models, a few epochs. "
                f"For the real data see the README ({DATA_HINTS[self.dataset]}; on Colab its Colab section) "
                "and set SEG_PROFILE=full."
            )
        return (
            f"Profile: full ({how}) - real datasets and the references' settings (a GPU helps). "
            "Set SEG_PROFILE=sample for the quick offline run."
        )

    def __str__(self) -> str:  # print(P) gives the one-line summary (and says so in a dry run)
        from . import dryrun

        return "\n".join(filter(None, [self.describe(), dryrun.describe()]))
