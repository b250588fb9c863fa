"""What every notebook opens with (DEVELOPERS' standards): a numbered title, an "Open in Colab"
badge that opens this very notebook, and what it teaches; and the README's table links it."""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
COLAB = "https://colab.research.google.com/github/seg-course/seg-course-companion/blob/main/notebooks/"


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 10


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_notebook_opens_with_its_title_badge_and_what_it_teaches(path):
    first = json.loads(path.read_text(encoding="utf-8"))["cells"][0]
    text = "".join(first["source"])
    assert first["cell_type"] == "markdown", f"{path.name}: the first cell is {first['cell_type']}, not the title"
    assert re.match(rf"# {path.name[:2]} · \S", text), f"{path.name}: no '# {path.name[:2]} · ...' title"
    assert f"({COLAB}{path.name})" in text, f"{path.name}: no Colab badge opening {path.name}"
    assert "**You will learn**" in text, f"{path.name}: the title cell does not say what it teaches"


def test_the_readme_links_every_notebook():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for path in NOTEBOOKS:
        assert f"(notebooks/{path.name})" in readme, f"README does not link {path.name}"
