"""Cityscapes: the label mapping against cityscapesscripts' table, the sample against the official
json -> PNG tools, the dataset on the sample, and on a real (downscaled) frame."""
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from cityscapesscripts.helpers.labels import id2label, labels, name2label, trainId2label
from cityscapesscripts.preparation.json2instanceImg import json2instanceImg
from cityscapesscripts.preparation.json2labelImg import json2labelImg
from PIL import Image
from torchvision import tv_tensors

from seg_common.data.cityscapes import (
    CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, IGNORE_INDEX, LABEL_TO_TRAIN, NUM_CLASSES,
    TRAIN_TO_LABEL, CityscapesSegmentation, label_table, main, train_to_label_ids,
)
from seg_common.data import prepare_cityscapes
from seg_common.data.sample_cityscapes import (
    CITY_SPREAD, SAMPLE_CITIES, CityStyle, build_street, make_sample_cityscapes,
)
from seg_common.profile import SAMPLE_MARKER, Profile

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"
STEM = r"(?P<city>[a-z]+)_(?P<seq>\d{6})_(?P<frame>\d{6})"
GT_SUFFIXES = ("labelIds.png", "instanceIds.png", "color.png", "polygons.json")
VALID_TRAIN_IDS = set(range(NUM_CLASSES)) | {IGNORE_INDEX}


# -- the label table -----------------------------------------------------------------------------
def test_label_to_train_follows_the_official_table():
    assert (LABEL_TO_TRAIN[7], LABEL_TO_TRAIN[8], LABEL_TO_TRAIN[26], LABEL_TO_TRAIN[33]) == (0, 1, 13, 18)
    assert LABEL_TO_TRAIN[1] == 255 and LABEL_TO_TRAIN[0] == 255        # ego vehicle, unlabeled
    for label in labels:
        if label.id < 0:                      # license plate: no id, never in a PNG
            assert label.name == "license plate" and label.id not in range(256)
            continue
        expected = label.trainId if 0 <= label.trainId < NUM_CLASSES else 255
        assert LABEL_TO_TRAIN[label.id] == expected, label.name
    unknown = [i for i in range(256) if i not in id2label]
    assert unknown[0] == 34 and (LABEL_TO_TRAIN[unknown] == 255).all()
    assert LABEL_TO_TRAIN.shape == (256,) and LABEL_TO_TRAIN.dtype == np.uint8


def test_classes_palette_and_inverse_mapping_match_trainId2label():
    assert CITYSCAPES_CLASSES[:3] == ("road", "sidewalk", "building") and CITYSCAPES_CLASSES[-1] == "bicycle"
    assert len(CITYSCAPES_CLASSES) == NUM_CLASSES == 19 and IGNORE_INDEX == 255
    assert CITYSCAPES_PALETTE.shape == (256, 3) and CITYSCAPES_PALETTE.dtype == np.uint8
    for train_id in range(NUM_CLASSES):
        assert CITYSCAPES_CLASSES[train_id] == trainId2label[train_id].name
        assert tuple(CITYSCAPES_PALETTE[train_id]) == trainId2label[train_id].color
        assert TRAIN_TO_LABEL[train_id] == trainId2label[train_id].id
    assert tuple(CITYSCAPES_PALETTE[0]) == (128, 64, 128) and tuple(CITYSCAPES_PALETTE[13]) == (0, 0, 142)
    assert not CITYSCAPES_PALETTE[NUM_CLASSES:].any()                   # 255 and unused: black
    np.testing.assert_array_equal(LABEL_TO_TRAIN[TRAIN_TO_LABEL], np.arange(NUM_CLASSES))


def test_train_to_label_ids_for_the_official_evaluator():
    pred = np.array([[0, 13, 255], [18, 10, 5]])
    expected = np.array([[7, 26, 0], [33, 23, 17]], dtype=np.uint8)
    np.testing.assert_array_equal(train_to_label_ids(pred), expected)
    out = train_to_label_ids(torch.from_numpy(pred))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)
    with pytest.raises(ValueError, match=r"\[-1, 19\]"):
        train_to_label_ids(np.array([[19, -1]]))


def test_label_table():
    table = label_table()
    assert len(table) == len(labels) == 35
    assert list(table.columns) == ["name", "id", "trainId", "category", "hasInstances",
                                   "ignoreInEval", "color"]
    car = table.set_index("name").loc["car"]
    assert (car.id, car.trainId, car.hasInstances, car.color) == (26, 13, True, (0, 0, 142))


# -- the sample ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cs_sample(tmp_path_factory) -> Path:
    """One frame per city: train aachen, bochum, bremen; val frankfurt, lindau."""
    return make_sample_cityscapes(tmp_path_factory.mktemp("cs") / "cityscapes", frames_per_city=1)


def frames(root: Path) -> list[Path]:
    return sorted(root.glob("leftImg8bit/*/*/*_leftImg8bit.png"))


def gt(frame: Path, suffix: str) -> Path:
    root = frame.parents[3]
    stem = frame.name[:-len("_leftImg8bit.png")]
    return root / "gtFine" / frame.parts[-3] / frame.parent.name / f"{stem}_gtFine_{suffix}"


def test_sample_layout_and_names_follow_cityscapes(cs_sample):
    assert sorted(p.name for p in (cs_sample / "leftImg8bit").iterdir()) == ["train", "val"]
    for split, cities in SAMPLE_CITIES.items():
        assert len(cities) >= 2
        assert sorted(p.name for p in (cs_sample / "leftImg8bit" / split).iterdir()) == sorted(cities)
        assert sorted(p.name for p in (cs_sample / "gtFine" / split).iterdir()) == sorted(cities)
    assert len(frames(cs_sample)) == 5
    for frame in frames(cs_sample):
        match = re.fullmatch(STEM + "_leftImg8bit.png", frame.name)
        assert match and match["city"] == frame.parent.name and match["frame"] == "000019"
        for suffix in GT_SUFFIXES:
            label = gt(frame, suffix)
            assert label.is_file() and re.fullmatch(STEM + "_gtFine_" + re.escape(suffix), label.name)
        gt_files = sorted(p.name for p in gt(frame, "x").parent.iterdir())
        assert len(gt_files) == len(GT_SUFFIXES)          # nothing else next to them


def test_sample_png_modes_and_sizes(cs_sample):
    frame = frames(cs_sample)[0]
    for path, modes in ((frame, {"RGB"}), (gt(frame, "labelIds.png"), {"L"}),
                        (gt(frame, "instanceIds.png"), {"I;16", "I"}), (gt(frame, "color.png"), {"RGBA"})):
        with Image.open(path) as img:
            assert img.format == "PNG" and img.mode in modes and img.size == (2048, 1024), path.name
    annotation = json.loads(gt(frame, "polygons.json").read_text())
    assert (annotation["imgHeight"], annotation["imgWidth"]) == (1024, 2048)
    for obj in annotation["objects"]:
        name = obj["label"][:-len("group")] if obj["label"].endswith("group") else obj["label"]
        assert name in name2label and len(obj["polygon"]) >= 3
        xy = np.array(obj["polygon"])
        assert xy.dtype.kind == "i" and xy.min() >= 0 and (xy.max(0) < (2048, 1024)).all()


@pytest.mark.parametrize("which", [0, -1])              # one train frame, one val frame
def test_official_tools_reproduce_the_sample_labels_from_the_json(cs_sample, tmp_path, which):
    frame = frames(cs_sample)[which]
    polygons = str(gt(frame, "polygons.json"))
    label_ids = np.asarray(Image.open(gt(frame, "labelIds.png")))
    json2labelImg(polygons, str(tmp_path / "ids.png"), encoding="ids")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "ids.png")), label_ids)
    json2labelImg(polygons, str(tmp_path / "train.png"), encoding="trainIds")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "train.png")), LABEL_TO_TRAIN[label_ids])
    json2labelImg(polygons, str(tmp_path / "color.png"), encoding="color")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "color.png")),
                                  np.asarray(Image.open(gt(frame, "color.png"))))
    # json2instanceImg draws a 32-bit "I" image, which Pillow >= 11 no longer writes as PNG: TIFF.
    json2instanceImg(polygons, str(tmp_path / "instances.tif"), encoding="ids")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "instances.tif")).astype(np.int64),
                                  np.asarray(Image.open(gt(frame, "instanceIds.png"))).astype(np.int64))


def test_sample_instance_and_colour_files_agree_with_the_labels(cs_sample):
    present: set[int] = set()
    for frame in frames(cs_sample):
        label_ids = np.asarray(Image.open(gt(frame, "labelIds.png")))
        instances = np.asarray(Image.open(gt(frame, "instanceIds.png"))).astype(np.int64)
        things = instances >= 1000
        assert things.any()
        np.testing.assert_array_equal(instances[things] // 1000, label_ids[things])
        np.testing.assert_array_equal(instances[~things], label_ids[~things])
        assert all(id2label[i].hasInstances for i in np.unique(label_ids[things]))
        colour = np.asarray(Image.open(gt(frame, "color.png")))
        assert (colour[..., 3] == 255).all()
        for label_id in np.unique(label_ids):
            assert int(label_id) in id2label                  # every id is in the official table
            assert (colour[label_ids == label_id][:, :3] == id2label[int(label_id)].color).all()
            present.add(int(label_id))
    train_ids = set(LABEL_TO_TRAIN[sorted(present)].tolist())
    assert len(train_ids - {255}) >= 10 and 255 in train_ids
    assert {name2label[n].id for n in ("ego vehicle", "road", "car", "person", "sky")} <= present


def test_each_city_has_its_own_part_of_the_range_of_a_look():
    low, high = 0.5, 0.85
    centres = {}
    for city in SAMPLE_CITIES["train"] + SAMPLE_CITIES["val"]:
        style, rng = CityStyle(city), np.random.default_rng(0)
        values = np.array([style.uniform("plaster value", low, high, rng) for _ in range(500)])
        assert low <= values.min() and values.max() <= high
        assert np.ptp(values) <= CITY_SPREAD * (high - low) + 1e-12            # a part of the range...
        centres[city] = values.mean()
        again = CityStyle(city).uniform("plaster value", low, high, np.random.default_rng(0))
        assert again == values[0]                                               # ...that depends on the city only
        assert 0.1 <= style.chance("overcast", 0.1, 0.6) <= 0.6
    spread = sorted(centres.values())
    assert min(np.diff(spread)) > 0.005 and spread[-1] - spread[0] > 0.1 * (high - low)   # cities differ


def test_a_frame_takes_its_looks_from_its_city():
    """The same random draws laid out in two cities: identical within a city, other colours in the other."""
    x = np.arange(900, 964, dtype=np.float32)[None, :]
    y = np.arange(300, 364, dtype=np.float32)[:, None]

    def building_colours(city):
        street = build_street(np.random.default_rng(7), CityStyle(city))
        return [o.paint(x, y, np.random.default_rng(0)).mean((0, 1)) for o in street.objects if o.label == "building"]

    aachen = building_colours("aachen")
    np.testing.assert_array_equal(np.array(aachen), np.array(building_colours("aachen")))
    lindau = building_colours("lindau")
    assert not np.allclose(aachen[0], lindau[0], atol=1e-3)             # the style reaches the painted pixels


def test_sample_is_deterministic_and_built_once(cs_sample, tmp_path):
    marker = cs_sample / SAMPLE_MARKER
    files = sorted(p for p in cs_sample.rglob("*") if p.is_file())
    mtimes = [p.stat().st_mtime_ns for p in files]
    assert make_sample_cityscapes(cs_sample, frames_per_city=1) == cs_sample   # no-op
    assert [p.stat().st_mtime_ns for p in files] == mtimes and marker.is_file()
    other = make_sample_cityscapes(tmp_path / "again", frames_per_city=1)
    again = sorted(p for p in other.rglob("*") if p.is_file())
    assert [p.relative_to(other) for p in again] == [p.relative_to(cs_sample) for p in files]
    for a, b in zip(files, again):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_sample_refuses_a_folder_it_did_not_write(tmp_path):
    (tmp_path / "leftImg8bit").mkdir()
    (tmp_path / "leftImg8bit" / "README").write_text("real data")
    with pytest.raises(FileExistsError, match="did not write"):
        make_sample_cityscapes(tmp_path, frames_per_city=1)
    with pytest.raises(ValueError, match="at least 1"):
        make_sample_cityscapes(tmp_path / "new", frames_per_city={"train": 1, "val": 0})


def test_check_counts_frames(cs_sample, capsys):
    assert main(["--check", str(cs_sample), "--expect", "3", "2", "0"]) == 0
    assert "complete" in capsys.readouterr().out
    assert main(["--check", str(cs_sample)]) == 1                 # not the official 2975 / 500
    assert "expected 2975" in capsys.readouterr().err


# -- the dataset on the sample -------------------------------------------------------------------
def test_dataset_items(cs_sample):
    ds = CityscapesSegmentation(cs_sample, "train")
    assert len(ds) == 3 and ds.cities == list(SAMPLE_CITIES["train"])
    assert ds.classes == CITYSCAPES_CLASSES and ds.num_classes == 19 and ds.ignore_index == 255
    image, mask = ds[-1]
    assert isinstance(image, tv_tensors.Image) and image.dtype == torch.uint8
    assert image.shape == (3, 1024, 2048)
    assert isinstance(mask, tv_tensors.Mask) and mask.dtype == torch.int64 and mask.shape == (1024, 2048)
    assert set(mask.unique().tolist()) <= VALID_TRAIN_IDS
    label_ids = np.asarray(Image.open(ds.labels[-1]))
    np.testing.assert_array_equal(mask.numpy(), LABEL_TO_TRAIN[label_ids])
    np.testing.assert_array_equal(image.permute(1, 2, 0).numpy(), np.asarray(Image.open(ds.images[-1])))
    assert "split='train'" in repr(ds) and "images=3" in repr(ds)


def test_dataset_city_subsets(cs_sample):
    first = CityscapesSegmentation(cs_sample, "val", cities=1)
    assert first.cities == ["frankfurt"] and len(first) == 1
    assert all(p.parent.name == "frankfurt" for p in first.images + first.labels)
    named = CityscapesSegmentation(cs_sample, "train", cities=["bremen", "aachen"])
    assert named.cities == ["aachen", "bremen"] and len(named) == 2
    with pytest.raises(ValueError, match="cities=0"):
        CityscapesSegmentation(cs_sample, "train", cities=0)
    with pytest.raises(ValueError, match="Unknown cities.*paris.*aachen, bochum, bremen"):
        CityscapesSegmentation(cs_sample, "train", cities=["paris"])


def test_dataset_scale_downsamples_image_smoothly_and_mask_by_nearest(cs_sample):
    full = CityscapesSegmentation(cs_sample, "val", cities=["lindau"])
    small = CityscapesSegmentation(cs_sample, "val", cities=["lindau"], scale=0.25, cache=True)
    image, mask = small[0]
    assert image.shape == (3, 256, 512) and mask.shape == (256, 512)
    assert set(mask.unique().tolist()) <= VALID_TRAIN_IDS
    full_image, full_mask = full[0]
    # nearest: the centre pixel of each 4x4 block; bilinear with antialiasing: close to the mean,
    # much closer than the image's own centre pixels are (how close depends on the frame's detail)
    np.testing.assert_array_equal(mask.numpy(), full_mask.numpy()[2::4, 2::4])
    block_mean = full_image.float().reshape(3, 256, 4, 512, 4).mean((2, 4))
    nearest_error = (full_image.float()[:, 2::4, 2::4] - block_mean).abs().mean()
    assert (image.float() - block_mean).abs().mean() < 0.5 * nearest_error
    again_image, _ = small[0]
    assert torch.equal(again_image, image) and len(small._cache) == 1
    with pytest.raises(ValueError, match="scale"):
        CityscapesSegmentation(cs_sample, "val", scale=1.5)


@pytest.fixture
def cs_copy(cs_sample, tmp_path) -> Path:
    """A private copy of the sample's val split that a test may damage."""
    for part in ("leftImg8bit", "gtFine"):
        shutil.copytree(cs_sample / part / "val", tmp_path / part / "val")
    return tmp_path


def test_errors_for_missing_folders_and_labels(cs_copy):
    with pytest.raises(FileNotFoundError,
                       match=r"leftImg8bit[/\\]train.*download_data.sh cityscapes.*make_sample_cityscapes"):
        CityscapesSegmentation(cs_copy, "train")
    shutil.rmtree(cs_copy / "gtFine" / "val" / "lindau")
    (cs_copy / "gtFine" / "val" / "lindau").mkdir()
    with pytest.raises(FileNotFoundError, match=r"lindau_000000_000019_leftImg8bit.png has no label: "
                                                r"expected .*lindau_000000_000019_gtFine_labelIds.png"):
        CityscapesSegmentation(cs_copy, "val")
    shutil.rmtree(cs_copy / "gtFine")
    with pytest.raises(FileNotFoundError, match=r"gtFine[/\\]val"):
        CityscapesSegmentation(cs_copy, "val")


def test_errors_for_bad_label_files(cs_copy):
    ds = CityscapesSegmentation(cs_copy, "val")
    label = ds.labels[0]
    ids = np.asarray(Image.open(label)).copy()
    ids[:10, :10], ids[-1, -1] = 40, 200
    Image.fromarray(ids).save(label)
    with pytest.raises(ValueError,
                       match=r"frankfurt_000000_000019_gtFine_labelIds.png has values \[40, 200\]"):
        ds[0]
    Image.fromarray(np.zeros((1024, 2048, 3), np.uint8)).save(label)
    with pytest.raises(ValueError, match="mode RGB.*single-channel 8-bit"):
        ds[0]
    Image.fromarray(np.zeros((512, 1024), np.uint8)).save(label)
    with pytest.raises(ValueError, match="2048x1024 but its label .* is 1024x512"):
        ds[0]


def test_prepare_cityscapes_full_profile_says_how_to_download(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cityscapes.*download_data.sh cityscapes.*SEG_PROFILE=sample"):
        prepare_cityscapes(Profile("full", tmp_path))


# -- a real frame ------------------------------------------------------------------------------
@pytest.fixture
def real_cityscapes() -> Path:
    root = REAL / "cityscapes"
    if not (root / "leftImg8bit" / "val").is_dir():
        pytest.skip("../shared/realdata/cityscapes is not present")
    return root


def test_real_frame_loads_and_agrees_with_its_train_ids(real_cityscapes):
    ds = CityscapesSegmentation(root=real_cityscapes, split="val")
    assert len(ds) == 1 and ds.cities == ["frankfurt"]
    image, mask = ds[0]
    assert image.shape == (3, 128, 256) and mask.shape == (128, 256)
    assert set(mask.unique().tolist()) <= VALID_TRAIN_IDS
    stem = ds.labels[0].name[:-len("_gtFine_labelIds.png")]
    reference = np.asarray(Image.open(ds.labels[0].with_name(f"{stem}_gtFine_labelTrainIds.png")))
    evaluated = reference != 255
    assert (mask.numpy()[evaluated] == reference[evaluated]).mean() >= 0.99
    label_ids = np.asarray(Image.open(ds.labels[0]))
    instance_png = ds.labels[0].with_name(f"{stem}_gtFine_instanceIds.png")
    instances = np.asarray(Image.open(instance_png)).astype(np.int64)
    things = instances >= 1000
    assert things.any()
    np.testing.assert_array_equal(instances[things] // 1000, label_ids[things])


def test_real_colour_label_uses_only_table_colours():
    path = (REAL / "cityscapes_fullres_color_only/gtFine/val/frankfurt"
            / "frankfurt_000001_058914_gtFine_color.png")
    if not path.is_file():
        pytest.skip("../shared/realdata is not present")
    rgba = np.ascontiguousarray(np.asarray(Image.open(path)))
    colours = np.unique(rgba.view(np.uint32)).view(np.uint8).reshape(-1, 4)   # 2M pixels -> ~15
    assert (colours[:, 3] == 255).all()
    assert {tuple(int(v) for v in c[:3]) for c in colours} <= {label.color for label in labels}


def test_the_official_evaluator_agrees_with_our_confusion_matrix(cs_sample, tmp_path):
    from seg_common.data.cityscapes import official_evaluation, read_train_ids, train_to_label_ids
    from seg_common.metrics import ConfusionMatrix

    val = CityscapesSegmentation(cs_sample, "val")
    rng = np.random.default_rng(0)
    ours, prediction_files = ConfusionMatrix(19), []
    for index in range(len(val)):
        target = read_train_ids(val.labels[index])
        prediction = np.where(target == 255, 0, target).astype(np.uint8)       # right where labelled...
        wrong = rng.random(prediction.shape) < 0.3                               # ...but 30% random classes
        prediction[wrong] = rng.integers(0, 19, int(wrong.sum()))
        ours.update(torch.from_numpy(prediction.astype(np.int64)), torch.from_numpy(target.astype(np.int64)))
        path = tmp_path / val.images[index].name.replace("_leftImg8bit.png", "_prediction.png")
        Image.fromarray(train_to_label_ids(prediction)).save(path)
        prediction_files.append(path)
    official = official_evaluation(prediction_files, val.labels, export=tmp_path / "results.json")
    mine = ours.compute()
    assert 0.1 < mine.miou < 0.9
    assert abs(official["averageScoreClasses"] - mine.miou) < 1e-9
    for train_id, name in enumerate(CITYSCAPES_CLASSES):
        theirs, iou = official["classScores"][name], float(mine.iou[train_id])
        assert (np.isnan(theirs) and np.isnan(iou)) or abs(theirs - iou) < 1e-6, name   # ours: float32
    assert (tmp_path / "results.json").is_file()
    with pytest.raises(ValueError, match="pair them"):
        official_evaluation(prediction_files[:1], val.labels)
