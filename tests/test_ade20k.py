"""ADE20K: the class lists and loader on the real SceneParsing files, both annotation formats on the
offline sample, the sample itself, and the errors for bad input."""
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors

from seg_common.data import prepare_ade20k
from seg_common.data.ade20k import (
    ADE20KSegmentation, ade_palette, main, read_instance_info, read_object_info, void_first,
)
from seg_common.data.sample_ade20k import (
    INSTANCE_CLASSES, SCENE_CLASSES, THINGS, make_sample_ade20k, render_room,
)
from seg_common.profile import SAMPLE_MARKER, Profile

REAL_ADE = Path(__file__).resolve().parents[1].parent / "shared" / "realdata" / "ade"


@pytest.fixture
def real_ade() -> Path:
    if not (REAL_ADE / "ADEChallengeData2016").is_dir():
        pytest.skip("../shared/realdata is not present")
    return REAL_ADE


@pytest.fixture(scope="module")
def ade_sample(tmp_path_factory) -> Path:
    """12 training / 9 validation rooms: every thing class once in each split."""
    return make_sample_ade20k(tmp_path_factory.mktemp("ade"), n_train=12, n_val=9)


@pytest.fixture
def ade_copy(ade_sample, tmp_path) -> Path:
    """A private copy of the sample that a test may damage."""
    shutil.copytree(ade_sample / "ADEChallengeData2016", tmp_path / "ADEChallengeData2016")
    return tmp_path


# -- the real files ------------------------------------------------------------------------------
def test_real_object_info_gives_150_first_synonyms(real_ade):
    names = read_object_info(real_ade / "objectInfo150.txt")
    assert len(names) == 150
    assert names[:8] == ("wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed")
    assert names[12] == "person" and names[-1] == "flag"        # "person, individual, someone, ..."
    assert all(name and name == name.strip() and "," not in name for name in names)


def test_real_instance_info_gives_the_100_things_in_their_own_order(real_ade):
    things = read_instance_info(real_ade / "instanceInfo100_train.txt")
    assert len(things) == 100
    assert things[:10] == ("bed", "windowpane", "cabinet", "person", "door", "table", "curtain",
                           "chair", "car", "painting")
    assert things[-1] == "flag" and all(name == name.strip() for name in things)
    scene = read_object_info(real_ade / "objectInfo150.txt")
    assert sum(name in scene for name in things) >= 99              # the things are ADE classes


def test_real_scene_annotations_shift_by_one_and_ignore_other(real_ade):
    ds = ADE20KSegmentation(real_ade, "validation")
    assert len(ds) == 3 and ds.num_classes == 150 and ds.classes[0] == "wall"
    assert [p.name for p in ds.images] == [f"ADE_val_0000000{i}.jpg" for i in (1, 2, 3)]
    for index, size in enumerate([(512, 683), (364, 500), (300, 400)]):
        image, mask = ds[index]
        assert isinstance(image, tv_tensors.Image) and image.dtype == torch.uint8
        assert isinstance(mask, tv_tensors.Mask) and mask.dtype == torch.int64
        assert tuple(image.shape) == (3, *size) and tuple(mask.shape) == size
        raw = torch.from_numpy(np.asarray(Image.open(ds.masks[index])).astype(np.int64))
        assert (raw == 0).any() and raw.max() <= 150
        assert torch.equal(mask, torch.where(raw == 0, 255, raw - 1))
        assert torch.equal(void_first(mask), raw)                    # the report's labels
        np.testing.assert_array_equal(image.permute(1, 2, 0).numpy(),
                                      np.asarray(Image.open(ds.images[index]).convert("RGB")))


def test_real_training_split_is_absent_and_the_error_says_how_to_get_it(real_ade):
    with pytest.raises(FileNotFoundError, match=r"images[/\\]training does not exist.*download_data.sh ade20k"):
        ADE20KSegmentation(real_ade, "training")
    with pytest.raises(FileNotFoundError,
                       match=r"annotations_instance[/\\]validation does not exist.*annotations_instance.tar"):
        ADE20KSegmentation(real_ade, "validation", annotations="instance")


def test_instance_r_channel_with_the_official_list(real_ade, tmp_path):
    """A hand-made instance PNG read with the real instanceInfo100_train.txt."""
    ade = tmp_path / "ADEChallengeData2016"
    for part in ("images", "annotations_instance"):
        (ade / part / "validation").mkdir(parents=True)
    shutil.copy(real_ade / "instanceInfo100_train.txt", ade)
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[0, :4, 0] = [1, 4, 100, 0]                                 # bed, person, flag, nothing
    rgb[0, :4, 1] = [1, 2, 3, 7]                                   # instance ids (G), any value
    rgb[1:, :, 0], rgb[1:, :, 1] = 4, 9                           # a big person
    Image.fromarray(rgb).save(ade / "annotations_instance/validation/ADE_val_00000001.png")
    Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(ade / "images/validation/ADE_val_00000001.jpg")
    ds = ADE20KSegmentation(tmp_path, "validation", annotations="instance")
    assert ds.num_classes == 100
    _, mask = ds[0]
    assert mask[0, :4].tolist() == [0, 3, 99, 255]
    assert [ds.classes[c] for c in mask[0, :3].tolist()] == ["bed", "person", "flag"]
    assert (mask[1:] == 3).all()
    assert ds.read_instance_ids(0)[0, :4].tolist() == [1, 2, 3, 0]  # G only where there is an object
    assert torch.equal(void_first(mask), torch.from_numpy(rgb[..., 0].astype(np.int64)))


# -- the palette ---------------------------------------------------------------------------------
def test_palette_colours_are_distinct_and_far_apart():
    palette = ade_palette(150)
    assert palette.shape == (256, 3) and palette.dtype == np.uint8
    colours = palette[:150].astype(float)
    distance = np.linalg.norm(colours[:, None] - colours[None], axis=-1)
    np.fill_diagonal(distance, np.inf)
    assert distance.min() > 40                                    # no two classes look alike
    assert np.linalg.norm(colours, axis=1).min() > 60              # none is near void's black
    assert not palette[150:].any()
    np.testing.assert_array_equal(ade_palette(12)[:12], palette[:12])   # a prefix: same colour per index
    np.testing.assert_array_equal(ade_palette(150), palette)          # deterministic
    with pytest.raises(ValueError, match="1..255"):
        ade_palette(256)


# -- both formats on the sample ------------------------------------------------------------------
def test_sample_items_and_class_lists(ade_sample):
    scene = ADE20KSegmentation(ade_sample, "training")
    assert len(scene) == 12 and scene.classes == SCENE_CLASSES and scene.num_classes == 12
    things = ADE20KSegmentation(ade_sample, "training", annotations="instance")
    assert things.classes == INSTANCE_CLASSES and things.num_classes == len(THINGS)
    assert things.classes != tuple(c for c in SCENE_CLASSES if c in THINGS)   # another order
    image, mask = scene[0]
    assert image.dtype == torch.uint8 and image.shape[0] == 3 and mask.dtype == torch.int64
    assert image.shape[1:] == mask.shape
    assert "annotations='instance'" in repr(things) and "images=12" in repr(things)


def test_scene_and_instance_annotations_name_the_same_class(ade_sample):
    """Decoded with their own lists, both formats agree on every object pixel: this fails if either
    reader is off by one or reads the other list's order."""
    for split in ("training", "validation"):
        scene = ADE20KSegmentation(ade_sample, split)
        things = ADE20KSegmentation(ade_sample, split, annotations="instance")
        stuff_seen = 0
        for index in range(len(scene)):
            scene_mask, thing_mask = scene[index][1], things[index][1]
            objects = thing_mask != 255
            assert objects.any()
            scene_names = [scene.classes[c] for c in scene_mask[objects].tolist()]
            thing_names = [things.classes[c] for c in thing_mask[objects].tolist()]
            assert scene_names == thing_names
            rest = scene_mask[~objects]
            labelled = rest[rest != 255]
            assert {scene.classes[c] for c in labelled.unique().tolist()} <= {"wall", "floor", "ceiling"}
            stuff_seen += len(labelled)
        assert stuff_seen > 0


def test_sample_instance_ids_number_each_object(ade_sample):
    ds = ADE20KSegmentation(ade_sample, "validation", annotations="instance")
    for index in range(len(ds)):
        raw = np.asarray(Image.open(ds.masks[index]))
        assert raw.ndim == 3 and not raw[..., 2].any()
        ids = ds.read_instance_ids(index)
        assert sorted(set(np.unique(ids).tolist()) - {0}) == list(range(1, ids.max() + 1))
        for instance in range(1, ids.max() + 1):              # one category per instance
            assert len(np.unique(raw[..., 0][ids == instance])) == 1


def test_sample_lists_follow_the_official_formats_and_count_the_files(ade_sample):
    ade = ade_sample / "ADEChallengeData2016"
    lines = (ade / "objectInfo150.txt").read_text().splitlines()
    assert lines[0] == "Idx\tRatio\tTrain\tVal\tName" and len(lines) == 1 + len(SCENE_CLASSES)
    present = {"training": np.zeros(13, int), "validation": np.zeros(13, int)}
    for split in present:
        for png in sorted((ade / "annotations" / split).glob("*.png")):
            present[split][np.unique(np.asarray(Image.open(png)))] += 1
    for line in lines[1:]:
        idx, ratio, train, val, name = line.split("\t")
        assert re.fullmatch(r"0\.\d{4}", ratio)
        assert (int(train), int(val)) == (present["training"][int(idx)], present["validation"][int(idx)])
        assert int(train) >= 1 and int(val) >= 1                     # every class in both splits
    info = (ade / "instanceInfo100_train.txt").read_text().splitlines()
    assert info[0] == "Idx\tObject Names\t\t#Inst.\t#Pix. per Inst.(*1e3)"
    assert re.fullmatch(r"1\tchair {14}\t\d+\t\d+\.\d\d", info[1])


def test_a_forced_thing_is_drawn_and_rooms_have_stuff():
    for name in THINGS:
        rgb, scene, annotation = render_room(240, 180, np.random.default_rng(3), forced=name)
        assert rgb.shape == (180, 240, 3) and scene.shape == (180, 240) and annotation.shape == (180, 240, 3)
        assert (scene == SCENE_CLASSES.index(name) + 1).any(), name
        assert (annotation[..., 0] == INSTANCE_CLASSES.index(name) + 1).any(), name
        assert ((scene == 1).mean() + (scene == 2).mean()) > 0.25       # wall and floor: large


def test_sample_is_deterministic_and_built_once(ade_sample, tmp_path):
    ade = ade_sample / "ADEChallengeData2016"
    files = sorted(p for p in ade.rglob("*") if p.is_file())
    mtimes = [p.stat().st_mtime_ns for p in files]
    assert make_sample_ade20k(ade_sample, n_train=12, n_val=9) == ade_sample          # no-op
    assert [p.stat().st_mtime_ns for p in files] == mtimes and (ade / SAMPLE_MARKER).is_file()
    assert json.loads((ade / SAMPLE_MARKER).read_text())["n_train"] == 12      # says it is a sample
    other = make_sample_ade20k(tmp_path / "again", n_train=12, n_val=9) / "ADEChallengeData2016"
    again = sorted(p for p in other.rglob("*") if p.is_file())
    assert [p.relative_to(other) for p in again] == [p.relative_to(ade) for p in files]
    for a, b in zip(files, again):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_sample_refuses_real_data_and_too_few_images(tmp_path):
    images = tmp_path / "ADEChallengeData2016" / "images"
    images.mkdir(parents=True)
    (images / "README").write_text("real data")
    with pytest.raises(FileExistsError, match="did not write"):
        make_sample_ade20k(tmp_path, n_train=12, n_val=9)
    with pytest.raises(ValueError, match="at least 9"):
        make_sample_ade20k(tmp_path / "new", n_train=12, n_val=3)


def test_check_counts_images(ade_sample, capsys):
    ade = str(ade_sample / "ADEChallengeData2016")
    assert main(["--check", ade, "--expect", "12", "9"]) == 0
    assert "complete" in capsys.readouterr().out
    assert main(["--check", ade]) == 1                            # not the official 20,210 / 2,000
    assert "expected 20210" in capsys.readouterr().err


# -- bad input: each error names the file and the fix --------------------------------------------
def test_missing_dataset_names_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"ADEChallengeData2016 does not exist.*download_data.sh ade20k"):
        ADE20KSegmentation(tmp_path)
    with pytest.raises(ValueError, match="training"):
        ADE20KSegmentation(tmp_path, split="train")
    with pytest.raises(ValueError, match="'scene' or 'instance'"):
        ADE20KSegmentation(tmp_path, annotations="panoptic")


def test_image_without_annotation(ade_copy):
    ds = ADE20KSegmentation(ade_copy, "validation")
    ds.masks[2].unlink()
    with pytest.raises(FileNotFoundError,
                       match=r"ADE_val_00000003.jpg has no annotation: expected .*ADE_val_00000003.png"):
        ADE20KSegmentation(ade_copy, "validation")


def test_values_above_the_class_list(ade_copy):
    ds = ADE20KSegmentation(ade_copy, "validation")
    labels = np.asarray(Image.open(ds.masks[0])).copy()
    labels[0, :3] = [12, 13, 200]                                  # 12 = lamp is fine
    Image.fromarray(labels).save(ds.masks[0])
    with pytest.raises(ValueError, match=r"ADE_val_00000001.png has class values \[13, 200\] above 12"):
        ds[0]
    things = ADE20KSegmentation(ade_copy, "validation", annotations="instance")
    rgb = np.asarray(Image.open(things.masks[1])).copy()
    rgb[0, 0] = [10, 1, 0]
    Image.fromarray(rgb).save(things.masks[1])
    with pytest.raises(ValueError, match=r"ADE_val_00000002.png has category \(R\) values \[10\] above 9"):
        things[1]


def test_the_wrong_format_for_the_reader(ade_copy):
    scene = ADE20KSegmentation(ade_copy, "validation")
    things = ADE20KSegmentation(ade_copy, "validation", annotations="instance")
    shutil.copy(things.masks[0], scene.masks[0])                  # an instance PNG in annotations/
    with pytest.raises(ValueError, match="mode RGB.*pass annotations='instance'"):
        scene[0]
    shutil.copy(scene.masks[1], things.masks[1])                  # a SceneParsing PNG in annotations_instance/
    with pytest.raises(ValueError, match="mode L.*pass annotations='scene'"):
        things[1]


def test_annotation_of_another_size(ade_copy):
    ds = ADE20KSegmentation(ade_copy, "validation")
    with Image.open(ds.masks[0]) as png:
        png.crop((0, 0, 100, 80)).save(ds.masks[0])
    with pytest.raises(ValueError, match=r"is \d+x\d+ but its annotation .* is 100x80"):
        ds[0]


def test_missing_object_info_says_the_zip_ships_it(ade_copy):
    (ade_copy / "ADEChallengeData2016" / "objectInfo150.txt").unlink()
    with pytest.raises(FileNotFoundError, match="objectInfo150.txt is missing.*download_data.sh ade20k"):
        ADE20KSegmentation(ade_copy, "validation")
    (ade_copy / "ADEChallengeData2016" / "instanceInfo100_train.txt").unlink()
    things = ADE20KSegmentation(ade_copy, "validation", annotations="instance")
    assert things.num_classes == 100 and things.classes[0] == "thing 1"      # R values still decode
    assert (things[0][1] < 9).logical_or(things[0][1] == 255).all()


def test_cache_gives_the_same_items_and_reads_each_file_once(ade_sample):
    plain = ADE20KSegmentation(ade_sample, "validation")
    cached = ADE20KSegmentation(ade_sample, "validation", cache=True)
    reads = []
    read_image = cached.read_image
    cached.read_image = lambda i: reads.append(i) or read_image(i)
    for _ in range(2):
        for i in (0, -1):
            image, mask = cached[i]
            assert torch.equal(image, plain[i][0]) and torch.equal(mask, plain[i][1])
    assert reads == [0, len(plain) - 1]


def test_transforms_are_applied_jointly(ade_sample):
    calls = []

    def record(image, mask):
        calls.append((type(image), type(mask)))
        return image[:, :10, :10], mask[:10, :10]

    image, mask = ADE20KSegmentation(ade_sample, "training", transforms=record)[0]
    assert calls == [(tv_tensors.Image, tv_tensors.Mask)]
    assert tuple(image.shape) == (3, 10, 10) and tuple(mask.shape) == (10, 10)


def test_prepare_ade20k_full_without_data_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="ADEChallengeData2016.*download_data.sh ade20k.*SEG_PROFILE=sample"):
        prepare_ade20k(Profile("full", tmp_path))
