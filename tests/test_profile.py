from pathlib import Path

import pytest

from seg_common.data.sample import make_sample_voc
from seg_common.profile import Profile, default_base_root


def test_default_is_sample_without_real_data(tmp_path):
    p = Profile.from_env({"SEG_DATA": str(tmp_path)})
    assert p.name == "sample" and not p.explicit
    assert p.base_root == tmp_path
    assert p.data_root == tmp_path / "sample"


def test_detects_full_when_real_voc_is_present(tmp_path):
    jpegs = tmp_path / "VOCdevkit" / "VOC2012" / "JPEGImages"
    jpegs.mkdir(parents=True)
    assert Profile.from_env({"SEG_DATA": str(tmp_path)}).name == "sample"   # empty folder: not data
    (jpegs / "2007_000032.jpg").write_bytes(b"x")
    p = Profile.from_env({"SEG_DATA": str(tmp_path)})
    assert p.name == "full" and p.data_root == tmp_path


def test_generated_sample_is_not_mistaken_for_real_data(tmp_path):
    make_sample_voc(tmp_path, n_train=1, n_val=1, n_aug_only=0)   # sample written at the base root
    assert Profile.from_env({"SEG_DATA": str(tmp_path)}).name == "sample"


def test_explicit_choice_wins_and_is_case_insensitive(tmp_path):
    p = Profile.from_env({"SEG_DATA": str(tmp_path), "SEG_PROFILE": "FULL"})
    assert p.name == "full" and p.explicit
    assert Profile.from_env({"SEG_DATA": str(tmp_path), "SEG_PROFILE": "sample"}).name == "sample"


def test_bad_profile_name_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="SEG_PROFILE must be one of sample, full"):
        Profile.from_env({"SEG_DATA": str(tmp_path), "SEG_PROFILE": "fast"})


def test_pick_and_describe(tmp_path):
    sample = Profile("sample", tmp_path)
    full = Profile("full", tmp_path)
    assert sample.pick(sample=4, full=30) == 4
    assert full.pick(sample=4, full=30) == 30
    assert "SEG_PROFILE=full" in sample.describe() and "SEG_PROFILE=sample" in full.describe()
    assert str(tmp_path) not in sample.describe()        # no machine paths in notebook output


def test_the_summary_line_sends_each_notebook_to_its_own_dataset(tmp_path):
    env = {"SEG_DATA": str(tmp_path), "SEG_PROFILE": "sample"}
    assert "`download_data.sh voc`" in Profile.from_env(env).describe()       # the default: VOC
    assert "`download_data.sh ade20k`" in Profile.from_env(env, dataset="ade20k").describe()
    cornell = Profile.from_env(env, dataset="cornell").describe()
    assert "Cornell" in cornell and "download_data.sh voc" not in cornell
    with pytest.raises(ValueError, match="Unknown dataset 'coco'"):
        Profile.from_env(env, dataset="coco")


def test_default_root_is_the_repository_data_folder():
    repo = Path(__file__).resolve().parents[1]
    assert default_base_root() == repo / "data"
    assert Profile.from_env({}).base_root == repo / "data"
