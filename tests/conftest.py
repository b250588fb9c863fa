import shutil
from pathlib import Path

import pytest

from seg_common.data.sample import make_sample_voc

REPO = Path(__file__).resolve().parents[1]
REALDATA = REPO.parent / "shared" / "realdata"


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory) -> Path:
    """A small sample (20 train / 20 val: enough for every class to appear in each split)."""
    root = tmp_path_factory.mktemp("sample")
    make_sample_voc(root, n_train=20, n_val=20, n_aug_only=4)
    return root


@pytest.fixture
def sample_copy(sample_root, tmp_path) -> Path:
    """A private copy of the sample that a test may damage."""
    shutil.copytree(sample_root / "VOCdevkit", tmp_path / "VOCdevkit")
    return tmp_path


@pytest.fixture
def realdata() -> Path:
    if not (REALDATA / "VOCdevkit" / "VOC2012").is_dir():
        pytest.skip("../shared/realdata is not present")
    return REALDATA
