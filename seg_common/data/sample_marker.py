"""How an offline sample is recognised and put in place - shared by both sample generators.

A generated sample holds a marker file (``profile.SAMPLE_MARKER``) with the settings it was made
with. ``is_current`` says whether a folder already holds a sample of the same settings (and refuses
a folder of real data, which has no marker); ``publish`` writes the marker into the folder the
generator filled and renames it into place, so an interrupted generator leaves nothing half-written.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ..profile import SAMPLE_MARKER


def is_current(folder: Path, settings: dict[str, Any], what: str, generator: str, example_root: str) -> bool:
    """True if ``folder`` holds a sample made with ``settings``; False if it is absent, empty or an
    older sample (to be rebuilt); FileExistsError if it holds files no generator wrote."""
    marker = folder / SAMPLE_MARKER
    if marker.is_file():
        try:
            return json.loads(marker.read_text()) == settings
        except json.JSONDecodeError:
            return False
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(
            f"{folder} holds files that the sample generator did not write (real {what}?). "
            f"Give {generator} another root, e.g. {example_root}.")
    return False


def partial_folder(folder: Path) -> Path:
    """An empty temporary folder beside ``folder`` for the generator to fill."""
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    return tmp


def publish(tmp: Path, folder: Path, settings: dict[str, Any]) -> Path:
    """Mark the filled ``tmp`` with ``settings`` and rename it to ``folder`` (replacing an older sample)."""
    (tmp / SAMPLE_MARKER).write_text(json.dumps(settings))
    if folder.exists():
        shutil.rmtree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(folder)
    return folder
