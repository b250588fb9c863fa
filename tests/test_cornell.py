"""Cornell grasping: rectangle files, GG-CNN's maps and grasp evaluation (hand-computed cases and
scikit-image as the independent reference GG-CNN itself uses), depth hole filling, the offline
sample and the dataset with its errors."""
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.draw import polygon
from skimage.feature import peak_local_max
from skimage.filters import gaussian

import seg_common.data.sample_cornell as sample_cornell
from seg_common.data import prepare_cornell
from seg_common.data.cornell import (
    CornellGrasping, Grasp, crop_origin, decode, detect_grasps, encode, fill_depth_holes,
    grasp_from_rectangle, grasp_maps, grasp_success, normalise_depth, peak_coordinates,
    read_rectangles, rectangle_iou, rectangle_mask, write_rectangles,
)
from seg_common.data.sample_cornell import make_sample_cornell
from seg_common.profile import SAMPLE_MARKER, Profile

SMALL = 0.1          # 4 scenes per folder, 8 in all


@pytest.fixture(scope="module")
def cornell_sample(tmp_path_factory) -> Path:
    return make_sample_cornell(tmp_path_factory.mktemp("cornell") / "cornell", size=SMALL)


@pytest.fixture
def cornell_copy(cornell_sample, tmp_path) -> Path:
    """A private copy of the sample that a test may damage."""
    return Path(shutil.copytree(cornell_sample, tmp_path / "cornell"))


def _axis_aligned(top, left, bottom, right):
    """A rectangle whose gripper axis runs along the rows' direction (horizontal): (row, col) corners."""
    return np.array([[top, left], [top, right], [bottom, right], [bottom, left]], float)


# -- rectangle files ---------------------------------------------------------------------------
def test_rectangle_file_is_x_y_and_comes_back_as_row_col(tmp_path):
    path = tmp_path / "pcd0100cpos.txt"
    path.write_text("10 20\n30 20.5\n30 25\n10 25\n\n1 2\n3 4\n5 6\n7 8\n")
    rectangles = read_rectangles(path)
    assert rectangles.shape == (2, 4, 2)
    np.testing.assert_array_equal(rectangles[0], [[20, 10], [20.5, 30], [25, 30], [25, 10]])
    np.testing.assert_array_equal(rectangles[1, :, 1], [1, 3, 5, 7])        # x is the column
    write_rectangles(tmp_path / "again.txt", rectangles)
    np.testing.assert_array_equal(read_rectangles(tmp_path / "again.txt"), rectangles)


def test_rectangle_file_with_7_lines_fails_naming_the_file(tmp_path):
    path = tmp_path / "pcd0123cneg.txt"
    path.write_text("1 2\n" * 7)
    with pytest.raises(ValueError, match=r"pcd0123cneg\.txt: 7 non-empty lines, not a multiple of 4"):
        read_rectangles(path)


def test_rectangle_with_nan_is_skipped(tmp_path):
    path = tmp_path / "pcd0100cpos.txt"
    path.write_text("1 2\n3 4\n5 6\n7 8\nNaN NaN\n3 4\n5 6\n7 8\n9 10\n11 12\n13 14\n15 16\n")
    rectangles = read_rectangles(path)
    assert rectangles.shape == (2, 4, 2)
    assert rectangles[1, 0].tolist() == [10, 9]


def test_bad_token_names_the_file_and_line(tmp_path):
    path = tmp_path / "pcd0100cpos.txt"
    path.write_text("1 2\n3 4\n5 abc\n7 8\n")
    with pytest.raises(ValueError, match=r"pcd0100cpos\.txt, line 3: '5 abc' is not two numbers"):
        read_rectangles(path)
    path.write_text("1 2\n3 4 5\n5 6\n7 8\n")
    with pytest.raises(ValueError, match="line 2"):
        read_rectangles(path)


# -- rectangle <-> (centre, angle, length, width) ----------------------------------------------
def test_params_of_hand_made_rectangles():
    horizontal = grasp_from_rectangle(_axis_aligned(20, 10, 25, 30))
    assert horizontal.center == (22.5, 20.0) and horizontal.angle == 0
    assert horizontal.length == 20 and horizontal.width == 5
    # Gripper axis pointing up the image (row decreasing): +pi/2, which is -pi/2 modulo pi.
    vertical = grasp_from_rectangle(np.array([[30, 5], [10, 5], [10, 9], [30, 9]], float))
    assert vertical.angle == pytest.approx(-math.pi / 2) and vertical.length == 20 and vertical.width == 4
    # Up and right at 45 degrees: anticlockwise from the horizontal is positive.
    diagonal = grasp_from_rectangle(np.array([[10, 10], [0, 20], [3, 23], [13, 13]], float))
    assert diagonal.angle == pytest.approx(math.pi / 4)
    assert diagonal.length == pytest.approx(10 * math.sqrt(2)) and diagonal.width == pytest.approx(3 * math.sqrt(2))
    assert diagonal.center == pytest.approx((6.5, 16.5))


@pytest.mark.parametrize("angle", [0.0, 0.3, -1.2, math.pi / 2 - 0.01])
def test_params_round_trip(angle):
    grasp = Grasp((50.0, 60.0), angle, 40.0, 10.0)
    rectangle = grasp.rectangle()
    back = grasp_from_rectangle(rectangle)
    np.testing.assert_allclose([*back.center, back.angle, back.length, back.width], [50, 60, angle, 40, 10],
                               atol=1e-9)
    np.testing.assert_allclose(back.rectangle(), rectangle, atol=1e-9)
    assert np.linalg.norm(rectangle[1] - rectangle[0]) == pytest.approx(40)   # p0 -> p1: the opening


def test_rasterisation_equals_skimage_polygon():
    """Both count a pixel when its centre, at integer (row, col), is inside or on the boundary."""
    rng = np.random.default_rng(0)
    rectangles = [_axis_aligned(10, 10, 15, 20), _axis_aligned(10.5, 3.2, 40.7, 30.5)]
    rectangles += [Grasp((rng.uniform(30, 70), rng.uniform(30, 70)), rng.uniform(-1.6, 1.6),
                         rng.uniform(5, 60), rng.uniform(3, 30)).rectangle() for _ in range(20)]
    rectangles.append(Grasp((5.0, 95.0), 0.4, 50, 20).rectangle())               # sticks out of the image
    for rectangle in rectangles:
        reference = np.zeros((100, 100), bool)
        reference[polygon(rectangle[:, 0], rectangle[:, 1], (100, 100))] = True
        np.testing.assert_array_equal(rectangle_mask(rectangle, (100, 100)), reference)
    assert rectangle_mask(_axis_aligned(10, 10, 15, 20), (100, 100)).sum() == 6 * 11


# -- maps --------------------------------------------------------------------------------------
def test_quality_region_is_the_centre_third_along_the_gripper_axis():
    # Opening 30 px along the columns, jaw 10 px: the centre third is 10 x 10 px, cols 45.5..55.5.
    rectangle = _axis_aligned(45.5, 35.5, 55.5, 65.5)
    quality, angle, width = grasp_maps(rectangle[None], (100, 100))
    assert quality.dtype == np.float32 and quality.sum() == 100
    np.testing.assert_array_equal(np.argwhere(quality)[[0, -1]], [[46, 46], [55, 55]])
    assert (angle == 0).all() and set(np.unique(width)) == {0.0, 30.0}
    targets = encode(quality, angle, width)
    assert targets.shape == (4, 100, 100) and targets.dtype == np.float32
    assert np.allclose(targets[1], 1) and np.allclose(targets[2], 0)
    np.testing.assert_allclose(targets[3][quality == 1], 0.2)                  # 30 px / 150
    # A vertical gripper: angle -pi/2, cos 2a = -1 on the grasp.
    vertical = np.array([[65.5, 45.5], [35.5, 45.5], [35.5, 55.5], [65.5, 55.5]])
    quality, angle, width = grasp_maps(vertical[None], (100, 100))
    assert quality.sum() == 100 and np.allclose(encode(quality, angle, width)[1][quality == 1], -1)


def test_width_is_clipped_to_150_px():
    quality, angle, width = grasp_maps(_axis_aligned(40, 0, 60, 200)[None], (100, 200))
    assert width.max() == 200 and encode(quality, angle, width)[3].max() == 1


def test_decode_filters_as_skimage_gaussian():
    rng = np.random.default_rng(1)
    maps = rng.uniform(-1, 1, (4, 40, 50)).astype(np.float32)
    quality, angle, width = decode(torch.from_numpy(maps))
    np.testing.assert_allclose(quality, gaussian(maps[0], 2.0, mode="mirror", truncate=4.0), atol=1e-5)
    raw_angle = np.arctan2(maps[2], maps[1]) / 2
    np.testing.assert_allclose(angle, gaussian(raw_angle, 2.0, mode="mirror", truncate=4.0), atol=1e-5)
    np.testing.assert_allclose(width, gaussian(maps[3] * 150, 1.0, mode="mirror", truncate=4.0), atol=1e-3)
    batch = decode(torch.from_numpy(np.stack([maps, maps])))
    assert batch[0].shape == (2, 40, 50) and torch.allclose(batch[0][1], quality)


def _bumps(rng, shape, count):
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]]
    image = np.zeros(shape)
    for _ in range(count):
        r, c, s = rng.uniform(0, shape[0]), rng.uniform(0, shape[1]), rng.uniform(4, 15)
        image += rng.uniform(0.1, 1) * np.exp(-((rows - r) ** 2 + (cols - c) ** 2) / (2 * s * s))
    return (image + rng.normal(0, 0.01, shape)).astype(np.float32)


def test_peaks_equal_skimage_peak_local_max():
    rng = np.random.default_rng(2)
    maps = [_bumps(rng, (200, 240), count) for count in (3, 12, 40)]
    targets = encode(*grasp_maps(np.stack([_axis_aligned(60, 50, 80, 110), _axis_aligned(120, 150, 150, 190)]),
                                 (200, 240)))
    maps.append(decode(torch.from_numpy(targets))[0].numpy())                 # plateaus of 1
    maps.append(np.zeros((100, 100), np.float32))                             # no peak at all
    for image in maps:
        reference = peak_local_max(image, min_distance=20, threshold_abs=0.2)
        np.testing.assert_array_equal(peak_coordinates(image, 20, 0.2), reference.reshape(-1, 2))
        reference = peak_local_max(image, min_distance=20, threshold_abs=0.2, num_peaks=2)
        np.testing.assert_array_equal(peak_coordinates(image, 20, 0.2, 2), reference.reshape(-1, 2))
    assert len(peak_coordinates(maps[2], 20, 0.2)) >= 3


# -- evaluation --------------------------------------------------------------------------------
def test_iou_of_shifted_rectangles():
    a = _axis_aligned(20.5, 20.5, 30.5, 40.5)             # rows 21..30, cols 21..40: 200 px
    b = a + [0, 10]                                       # cols 31..50: 100 px shared, 300 in all
    assert rectangle_iou(a, b) == pytest.approx(1 / 3)
    assert rectangle_iou(a, a) == 1
    assert rectangle_iou(a, a + [50, 0]) == 0
    c = a + [5, 0]                                        # rows 26..35: 5 x 20 = 100 shared, 300 in all
    assert rectangle_iou(a, c) == pytest.approx(1 / 3)


def test_iou_is_zero_beyond_30_degrees_modulo_pi():
    base = Grasp((50.0, 50.0), 0.0, 60.0, 30.0)
    assert rectangle_iou(base.rectangle(), base._replace(angle=math.radians(29)).rectangle()) > 0.5
    assert rectangle_iou(base.rectangle(), base._replace(angle=math.radians(31)).rectangle()) == 0
    assert rectangle_iou(base.rectangle(), base._replace(angle=-math.radians(31)).rectangle()) == 0
    near_vertical = base._replace(angle=1.5)
    # 1.5 and -1.5 rad differ by 0.14 rad modulo pi: both nearly vertical.
    assert rectangle_iou(near_vertical.rectangle(), base._replace(angle=-1.5).rectangle()) > 0.5
    assert rectangle_iou(near_vertical.rectangle(), Grasp((50.0, 50.0), math.pi / 2, 60, 30).rectangle()) > 0.5


def test_maps_encode_decode_detect_succeed_on_the_ground_truth():
    truth = np.stack([Grasp((100.0, 80.0), 0.5, 60.0, 20.0).rectangle(),
                      Grasp((200.0, 210.0), -1.0, 40.0, 15.0).rectangle()])
    quality, angle, width = decode(torch.from_numpy(encode(*grasp_maps(truth, (300, 300)))))
    grasps = detect_grasps(quality, angle, width, max_grasps=2)
    assert len(grasps) == 2
    for grasp in grasps:
        nearest = min((grasp_from_rectangle(t) for t in truth),
                      key=lambda g: math.dist(g.center, grasp.center))
        assert math.dist(nearest.center, grasp.center) < 5
        assert grasp.angle == pytest.approx(nearest.angle, abs=0.05)
        assert grasp.length == pytest.approx(nearest.length, rel=0.05) and grasp.width == grasp.length / 2
    assert grasp_success(grasps[:1], truth)
    assert grasp_success([g.rectangle() for g in grasps], truth)
    assert not grasp_success(grasps, truth + [0, 60])                       # shifted away: no overlap
    turned = [g._replace(angle=g.angle + math.pi / 2) for g in grasps]
    assert not grasp_success(turned, truth)                                  # right place, wrong angle
    assert detect_grasps(np.zeros((100, 100)), np.zeros((100, 100)), np.zeros((100, 100))) == []


# -- depth -------------------------------------------------------------------------------------
def test_hole_filling_keeps_a_constant_plane_and_leaves_no_hole():
    depth = np.full((60, 80), 0.65, np.float32)
    depth[10:20, 10:25] = np.nan
    depth[0, :5] = 0                                        # 0 is a hole too
    depth[40:44, 70:80] = np.nan                            # at the border
    filled = fill_depth_holes(depth)
    assert filled.dtype == np.float32 and np.isfinite(filled).all()
    np.testing.assert_allclose(filled, 0.65, rtol=1e-6)
    assert np.isnan(depth).sum() == 150 + 40                # the input is not changed
    rows, cols = np.mgrid[0:60, 0:80]
    plane = (0.6 + 0.001 * rows + 0.0005 * cols).astype(np.float32)
    holed = plane.copy()
    holed[20:26, 30:36] = np.nan
    filled = fill_depth_holes(holed)
    assert np.abs(filled - plane).max() < 0.003              # a few px of slope at most
    with pytest.raises(ValueError, match="no valid pixel"):
        fill_depth_holes(np.full((4, 4), np.nan))


def test_normalise_depth_and_crop_origin():
    np.testing.assert_allclose(normalise_depth(np.array([[1.0, 2.0], [3.0, 4.0]])), [[-1, -0.5], [0.5, 1]])
    centred = _axis_aligned(230, 300, 250, 340)             # corners' mean (240, 320)
    assert crop_origin(centred[None], (480, 640)) == (90, 170)
    assert crop_origin((centred + [-230, 270])[None], (480, 640)) == (0, 340)   # clamped to the image
    with pytest.raises(ValueError, match="smaller than the 300 px crop"):
        crop_origin(centred[None], (200, 640))


# -- the sample and the dataset ----------------------------------------------------------------
def test_sample_is_in_the_cornell_format_and_deterministic(cornell_sample, tmp_path):
    files = sorted(p.relative_to(cornell_sample) for p in cornell_sample.rglob("*") if p.is_file())
    assert Path("01/pcd0100r.png") in files and Path("02/pcd0203cneg.txt") in files
    assert len(files) == 1 + 2 * 4 * 4                        # marker + 8 scenes x 4 files
    with Image.open(cornell_sample / "01/pcd0100d.tiff") as depth, \
            Image.open(cornell_sample / "01/pcd0100r.png") as rgb:
        assert depth.mode == "F" and depth.size == (640, 480) and rgb.mode == "RGB" and rgb.size == (640, 480)
        depth = np.asarray(depth)
    assert np.isfinite(depth).all() and 0.45 < depth.min() and depth.max() < 0.75     # metres
    for path in cornell_sample.glob("*/*.txt"):
        lines = path.read_text().splitlines()
        assert len(lines) % 4 == 0 and all(len(line.split()) == 2 for line in lines)
    again = make_sample_cornell(tmp_path / "again", size=SMALL)
    for name in files:
        assert (again / name).read_bytes() == (cornell_sample / name).read_bytes(), name
    assert make_sample_cornell(again, size=SMALL) == again                   # built once: kept
    (tmp_path / "real" / "01").mkdir(parents=True)
    (tmp_path / "real" / "01" / "pcd0100cpos.txt").write_text("")
    with pytest.raises(FileExistsError, match="did not write"):
        make_sample_cornell(tmp_path / "real", size=SMALL)


def test_sample_rectangles_follow_the_object_geometry():
    rng = np.random.default_rng(5)
    for _ in range(20):
        obj = sample_cornell._object(rng)
        positives, negatives = sample_cornell.grasp_rectangles(obj, rng)
        long_axis = obj["angle"]
        for rectangle in positives:                           # across the narrow side, a little wider
            grasp = grasp_from_rectangle(rectangle)
            across = abs((grasp.angle - long_axis) % math.pi - math.pi / 2)
            assert across < 0.2
            assert grasp.length > 1.1 * obj["short"] * (0.4 if obj["shape"] == "ellipse" else 1)
            assert grasp.length < 1.4 * obj["short"] + 5
        assert len(negatives) >= 2


def test_dataset_items(cornell_sample):
    ds = CornellGrasping(cornell_sample, include_rgb=True)
    assert len(ds) == 8 and ds.stems[0].name == "pcd0100"
    assert len(CornellGrasping(cornell_sample, folders=[2])) == 4
    depth_only = CornellGrasping(cornell_sample, folders=["01"])
    for index in range(len(ds)):
        x, y = ds[index]
        assert x.shape == (4, 300, 300) and y.shape == (4, 300, 300)
        assert x.dtype == torch.float32 and y.dtype == torch.float32
        assert x[0].abs().max() <= 1 and abs(float(x[1:].mean())) < 1e-4     # depth, RGB minus its mean
        quality = y[0]
        assert set(quality.unique().tolist()) == {0.0, 1.0}
        torch.testing.assert_close(y[1] ** 2 + y[2] ** 2, torch.ones(300, 300))
        assert 0 < y[3][quality == 1].min() and y[3].max() <= 1
        rectangles = ds.rectangles(index)
        expected = encode(*grasp_maps(rectangles, (300, 300)))
        np.testing.assert_array_equal(y.numpy(), expected)
        # The crop is GG-CNN's: centred on the rectangles' mean, inside the 480x640 image.
        top, left = ds.crop_origin(index)
        assert 0 <= top <= 180 and 0 <= left <= 340
        assert np.abs(rectangles.reshape(-1, 2).mean(0) - 150).max() < 1.5
        # Detecting on the ground-truth maps succeeds.
        assert grasp_success(detect_grasps(*decode(y)), rectangles)
        if index < 4:
            torch.testing.assert_close(depth_only[index][0], x[:1])
    assert len(ds.negative_rectangles(0)) >= 2


def test_dataset_cache_returns_the_same_item(cornell_sample):
    ds = CornellGrasping(cornell_sample, folders=["01"], cache=True)
    first = ds[1]
    assert ds[1] is first and torch.equal(CornellGrasping(cornell_sample, folders=["01"])[1][1], first[1])


def test_dataset_errors_name_the_file_and_the_fix(cornell_copy):
    scene = cornell_copy / "01" / "pcd0101"
    with pytest.raises(FileNotFoundError, match="does not exist.*README"):
        CornellGrasping(cornell_copy / "nowhere")
    with pytest.raises(FileNotFoundError, match="Cornell folders are 01 .. 10"):
        CornellGrasping(cornell_copy, folders=[7])
    with pytest.raises(ValueError, match="include_depth and include_rgb"):
        CornellGrasping(cornell_copy, include_depth=False)

    depth = np.asarray(Image.open(f"{scene}d.tiff")).copy()
    depth[5, 5:8] = np.nan
    Image.fromarray(depth).save(f"{scene}d.tiff")
    ds = CornellGrasping(cornell_copy)
    with pytest.raises(ValueError, match=r"pcd0101d\.tiff has 3 NaN pixels.*fill_holes=True.*generate_cornell_depth"):
        ds[1]
    x, _ = CornellGrasping(cornell_copy, fill_holes=True)[1]
    assert torch.isfinite(x).all()

    Image.fromarray(np.zeros((480, 600, 3), np.uint8)).save(f"{scene}r.png")
    with pytest.raises(ValueError, match=r"pcd0101r\.png is 600x480 px but .*pcd0101d\.tiff is 640x480"):
        CornellGrasping(cornell_copy, include_rgb=True, fill_holes=True)[1]

    Path(f"{scene}cpos.txt").write_text("NaN 1\n2 3\n4 5\n6 7\n")
    with pytest.raises(ValueError, match=r"pcd0101cpos\.txt holds no positive rectangle"):
        CornellGrasping(cornell_copy)
    Path(f"{scene}cpos.txt").write_text("1 2\n" * 7)
    with pytest.raises(ValueError, match=r"pcd0101cpos\.txt: 7 non-empty lines"):
        CornellGrasping(cornell_copy)

    Path(f"{scene}cneg.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"pcd0101cneg\.txt are missing.*make_sample_cornell"):
        CornellGrasping(cornell_copy)
    Path(f"{scene}r.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"pcd0101r\.png is missing"):
        CornellGrasping(cornell_copy)
    Path(f"{scene}d.tiff").unlink()
    with pytest.raises(FileNotFoundError, match=r"pcd0101d\.tiff is missing.*generate_cornell_depth.*make_sample_cornell"):
        CornellGrasping(cornell_copy)


def test_prepare_cornell(tmp_path, monkeypatch):
    built = []
    monkeypatch.setattr(sample_cornell, "make_sample_cornell", lambda root: built.append(root) or root)
    assert prepare_cornell(Profile("sample", tmp_path)) == tmp_path / "sample" / "cornell"
    assert built == [tmp_path / "sample" / "cornell"]
    with pytest.raises(FileNotFoundError, match="no official mirror.*see the README.*SEG_PROFILE=sample"):
        prepare_cornell(Profile("full", tmp_path))
    (tmp_path / "cornell" / "01").mkdir(parents=True)
    (tmp_path / "cornell" / "01" / "pcd0100cpos.txt").write_text("1 2\n3 4\n5 6\n7 8\n")
    with pytest.raises(FileNotFoundError, match="pcdNNNNd.tiff.*generate_cornell_depth"):
        prepare_cornell(Profile("full", tmp_path))
    (tmp_path / "cornell" / "01" / "pcd0100d.tiff").write_bytes(b"")
    assert prepare_cornell(Profile("full", tmp_path)) == tmp_path / "cornell"


def test_marker_is_written(cornell_sample):
    assert (cornell_sample / SAMPLE_MARKER).is_file()
