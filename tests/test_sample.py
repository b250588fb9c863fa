import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seg_common.data.sample import (CONTEXT_PAIRS, PERSON, SAMPLE_D2L_CROP, SCENES, SMALL_CLASSES,
                                    THIN_CLASSES,
                                    class_appearance, make_sample_voc)
from seg_common.data.voc import VOC_CLASSES, VOC_PALETTE

BULKY = [VOC_CLASSES.index(c) for c in ("bus", "train", "tv/monitor", "boat", "car")]
from seg_common.profile import SAMPLE_MARKER

SPLITS = Path("VOCdevkit/VOC2012/ImageSets/Segmentation")


def ids(root, split):
    return (root / SPLITS / f"{split}.txt").read_text().split()


def voc(root):
    return root / "VOCdevkit" / "VOC2012"


def test_layout_and_voc_style_ids(sample_root):
    v = voc(sample_root)
    for split in ("train", "val", "trainval", "train_aug"):
        assert (sample_root / SPLITS / f"{split}.txt").is_file()
    train, val = ids(sample_root, "train"), ids(sample_root, "val")
    assert len(train) == 20 and len(val) == 20
    assert not set(train) & set(val)
    assert sorted(train + val) == ids(sample_root, "trainval")
    aug = ids(sample_root, "train_aug")
    assert set(train) <= set(aug) and not set(aug) & set(val) and len(aug) == 24
    for image_id in train + val:
        year, number = image_id.split("_")
        assert 2007 <= int(year) <= 2012 and len(number) == 6
        assert (v / "JPEGImages" / f"{image_id}.jpg").is_file()
        assert (v / "SegmentationClass" / f"{image_id}.png").is_file()
        assert (v / "SegmentationObject" / f"{image_id}.png").is_file()
    for image_id in aug:
        assert (v / "SegmentationClassAug" / f"{image_id}.png").is_file()
        assert (v / "JPEGImages" / f"{image_id}.jpg").is_file()


def test_masks_are_voc_palette_pngs_with_a_void_band(sample_root):
    v = voc(sample_root)
    for image_id in ids(sample_root, "trainval"):
        with Image.open(v / "SegmentationClass" / f"{image_id}.png") as png:
            assert png.format == "PNG" and png.mode == "P"
            palette = np.array(png.getpalette()[: 256 * 3]).reshape(256, 3)
            mask = np.asarray(png)
        with Image.open(v / "JPEGImages" / f"{image_id}.jpg") as jpg:
            assert jpg.format == "JPEG" and jpg.mode == "RGB" and jpg.size == png.size
        np.testing.assert_array_equal(palette, VOC_PALETTE)
        values = set(np.unique(mask).tolist())
        assert values <= set(range(21)) | {255}
        if values - {0, 255}:
            assert 255 in values
        # Where two non-void neighbours meet, they have the same class: every border is void.
        for a, b in ((mask[:, 1:], mask[:, :-1]), (mask[1:, :], mask[:-1, :])):
            both = (a != 255) & (b != 255)
            assert np.all(a[both] == b[both])


def test_aug_masks_are_grayscale_index_pngs(sample_root):
    v = voc(sample_root)
    for image_id in ids(sample_root, "train"):
        with Image.open(v / "SegmentationClassAug" / f"{image_id}.png") as aug, \
             Image.open(v / "SegmentationClass" / f"{image_id}.png") as cls:
            assert aug.mode == "L"
            np.testing.assert_array_equal(np.asarray(aug), np.asarray(cls))


def test_every_class_appears_in_each_split_with_several_objects(sample_root):
    v = voc(sample_root)
    for split in ("train", "val"):
        seen, per_image = set(), []
        for image_id in ids(sample_root, split):
            objects = np.asarray(Image.open(v / "SegmentationObject" / f"{image_id}.png"))
            classes = np.asarray(Image.open(v / "SegmentationClass" / f"{image_id}.png"))
            seen |= set(np.unique(classes).tolist())
            per_image.append(len(set(np.unique(objects).tolist()) - {0, 255}))
        assert set(range(1, 21)) <= seen, f"{split} misses classes {set(range(1, 21)) - seen}"
        assert max(per_image) >= 3 and np.mean(per_image) > 1.5


def test_sizes_spread_like_voc_at_the_sample_scale(tmp_path):
    # VOC's sizes x 0.4: mostly landscape 200x150, some portrait, some below d2l's crop at that scale.
    root = tmp_path
    make_sample_voc(root, n_train=60, n_val=1, n_aug_only=0)
    sizes = [Image.open(voc(root) / "JPEGImages" / f"{i}.jpg").size for i in ids(root, "train")]
    crop_h, crop_w = SAMPLE_D2L_CROP
    assert SAMPLE_D2L_CROP == (128, 192)
    portrait = sum(h > w for w, h in sizes)
    too_small = sum(h < crop_h or w < crop_w for w, h in sizes)
    assert max(max(s) for s in sizes) == 200
    assert 0.05 < portrait / len(sizes) < 0.4
    assert 0.1 < too_small / len(sizes) < 0.5


def test_deterministic_and_idempotent(sample_root, tmp_path):
    make_sample_voc(tmp_path, n_train=20, n_val=20, n_aug_only=4)

    def digest(root):
        h = hashlib.sha256()
        for path in sorted(voc(root).rglob("*")):
            if path.is_file():
                h.update(path.relative_to(root).as_posix().encode())
                h.update(path.read_bytes())
        return h.hexdigest()

    assert digest(tmp_path) == digest(sample_root)
    stamp = (voc(tmp_path) / "JPEGImages").stat().st_mtime_ns
    make_sample_voc(tmp_path, n_train=20, n_val=20, n_aug_only=4)        # already there: no-op
    assert (voc(tmp_path) / "JPEGImages").stat().st_mtime_ns == stamp
    make_sample_voc(tmp_path, n_train=3, n_val=2, n_aug_only=0)          # other settings: rebuilt
    assert len(ids(tmp_path, "train")) == 3
    assert len(list((voc(tmp_path) / "JPEGImages").iterdir())) == 5     # replaced whole, not merged
    assert not voc(tmp_path).with_name("VOC2012.partial").exists()
    (voc(tmp_path) / SAMPLE_MARKER).write_text("{truncated")              # a damaged marker: rebuilt
    make_sample_voc(tmp_path, n_train=3, n_val=2, n_aug_only=0)
    assert json.loads((voc(tmp_path) / SAMPLE_MARKER).read_text())["n_train"] == 3


def test_refuses_to_overwrite_real_data(tmp_path):
    jpegs = voc(tmp_path) / "JPEGImages"
    jpegs.mkdir(parents=True)
    (jpegs / "2007_000032.jpg").write_bytes(b"real")
    with pytest.raises(FileExistsError, match="did not write"):
        make_sample_voc(tmp_path, n_train=1, n_val=1)
    assert (jpegs / "2007_000032.jpg").read_bytes() == b"real"


def test_classes_look_different_except_the_context_pairs():
    looks = {c: class_appearance(c) for c in range(1, 21)}
    appearance = {c: (look.colour, look.surface, look.shape) for c, look in looks.items()}
    paired = {c for pair in CONTEXT_PAIRS for c in pair}
    for a, b in CONTEXT_PAIRS:
        assert appearance[a] == appearance[b]                 # only the scene tells them apart
        assert not set(looks[a].scenes) & set(looks[b].scenes)
    alone = [appearance[c] for c in range(1, 21) if c not in paired]
    assert len(set(alone)) == len(alone)                      # every other class has its own look
    assert all(look.scenes and set(look.scenes) <= set(SCENES) for look in looks.values())
    with pytest.raises(ValueError):
        class_appearance(0)


def _survives_erosion(mask: np.ndarray, size: int = 7) -> float:
    """Share of the True pixels of ``mask`` whose whole ``size`` x ``size`` neighbourhood is True."""
    padded = np.pad(mask, size // 2)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (size, size))
    return float(windows.all(axis=(-1, -2))[mask].mean()) if mask.any() else float("nan")


def test_thin_parts_and_small_objects(sample_root):
    # Small classes cover few pixels per object; thin classes lose most of their pixels to a 7x7
    # erosion (parts narrower than 7 px: a 32-px output grid cannot draw them), bulky ones do not.
    v = voc(sample_root)
    areas, kept = {c: [] for c in range(1, 21)}, {c: [] for c in range(1, 21)}
    for image_id in ids(sample_root, "trainval"):
        classes = np.asarray(Image.open(v / "SegmentationClass" / f"{image_id}.png"))
        objects = np.asarray(Image.open(v / "SegmentationObject" / f"{image_id}.png"))
        for k in set(np.unique(objects).tolist()) - {0, 255}:
            region = objects == k
            c = int(np.bincount(classes[region]).argmax())
            areas[c].append(int(region.sum()))
            kept[c].append(_survives_erosion(region | (objects == 255)))
    median_area = {c: np.median(a) for c, a in areas.items() if a}
    for c in SMALL_CLASSES:
        assert median_area[c] < 0.25 * np.median(list(median_area.values())), VOC_CLASSES[c]
    bulky = np.median([np.median(kept[c]) for c in BULKY])
    for c in THIN_CLASSES:
        if kept[c]:
            assert np.median(kept[c]) < 0.6 * bulky, VOC_CLASSES[c]


def test_person_is_the_most_frequent_object_class(sample_root):
    v = voc(sample_root)
    counts = np.zeros(21)
    for image_id in ids(sample_root, "trainval"):
        present = set(np.unique(np.asarray(Image.open(v / "SegmentationClass" / f"{image_id}.png"))).tolist())
        for c in present - {0, 255}:
            counts[c] += 1
    assert counts.argmax() == PERSON
