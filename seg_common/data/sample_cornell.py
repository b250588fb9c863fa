"""Offline Cornell-format grasping sample: one object on a table per scene, rendered to depth and RGB.

``make_sample_cornell(root)`` writes what GG-CNN reads from the real dataset after its
``generate_cornell_depth`` step (see :mod:`seg_common.data.cornell`)::

    01/pcd0100r.png  pcd0100d.tiff  pcd0100cpos.txt  pcd0100cneg.txt   ... pcd01NNcneg.txt
    02/pcd0200r.png  ...

(no point clouds ``pcdNNNN.txt``: nothing here reads them). Each scene is a designed world:

* **Depth** (metres, float32 TIFF): a table plane 0.6-0.7 m from the camera, slightly tilted,
  with 1 mm sensor noise; one object 0.02-0.10 m high on it: a box (flat top), a lying cylinder
  (curved top) or an elliptical puck (flat top). A few holes (no reading) where the object's edge
  meets the table, as a structured-light sensor leaves them, filled with
  :func:`~seg_common.data.cornell.fill_depth_holes` before saving, as ``generate_cornell_depth``
  inpaints them.
* **RGB** (640x480 PNG): a wood or grey table texture, the object in its own colour, shaded by
  the depth's surface normals.
* **Rectangles** from the object's geometry. Positives are antipodal grasps across the narrow
  side: the gripper axis across the object, an opening 15-35 % wider than the object there,
  centres along the long axis about 0.6 jaw widths apart, so that neighbouring rectangles overlap
  (as the many overlapping rectangles people drew on the real objects do). Negatives close along
  the long side (the object does not fit in the gripper) or on the empty table beside the object.

The quality map that GG-CNN draws from the positives is therefore a continuous strip along the
object's midline, and any point of it is the centre of a ground-truth grasp: a from-scratch network
learns to find it from the depth alone in a minute of CPU (notebook 10, at 100 px). A first
version drew three to six rectangles spread apart, so that the strip broke into islands; on it
GG-CNN at 300 px had found no successful grasp after 480 steps.

Run ``python -m seg_common.data.sample_cornell [--root data/sample/cornell]`` to build it.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from matplotlib.colors import hsv_to_rgb
from PIL import Image

from ..profile import Profile
from .cornell import Grasp, fill_depth_holes, write_rectangles
from .sample import _smooth_field
from .sample_marker import is_current, partial_folder, publish

SAMPLE_VERSION = 2
HEIGHT, WIDTH = 480, 640
FOLDERS = 2
SCENES_PER_FOLDER = 40
SHAPES = ("box", "cylinder", "ellipse")


def _object(rng: np.random.Generator) -> dict:
    """An object's shape, footprint (centre, long-axis angle, long and short size in px) and height."""
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    short = rng.uniform(28, 80)
    long = short * rng.uniform(1.6, 3.0) if shape != "ellipse" else short * rng.uniform(1.4, 2.2)
    long = min(long, 210.0)
    height = rng.uniform(0.02, 0.10) if shape != "cylinder" else None
    return {
        "shape": shape, "short": short, "long": long, "height": height,
        "center": (rng.uniform(170, 310), rng.uniform(220, 420)),
        "angle": rng.uniform(-math.pi / 2, math.pi / 2),          # of the long axis, GG-CNN's convention
    }


def _local_frame(obj: dict) -> tuple[np.ndarray, np.ndarray]:
    """Every pixel's coordinates along the object's long axis (u) and across it (v), in px."""
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    drow, dcol = rows - obj["center"][0], cols - obj["center"][1]
    a = obj["angle"]
    u = -drow * math.sin(a) + dcol * math.cos(a)
    v = drow * math.cos(a) + dcol * math.sin(a)
    return u, v


def _render(obj: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Depth (m) with holes (NaN), RGB uint8, and the object's footprint mask."""
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    table = (rng.uniform(0.6, 0.7) + rng.uniform(-1e-4, 1e-4) * (rows - HEIGHT / 2)
             + rng.uniform(-1e-4, 1e-4) * (cols - WIDTH / 2))
    u, v = _local_frame(obj)
    half_long, half_short = obj["long"] / 2, obj["short"] / 2
    if obj["shape"] == "ellipse":
        inside = (u / half_long) ** 2 + (v / half_short) ** 2 <= 1
        rise = np.where(inside, obj["height"], 0.0)
    else:
        inside = (np.abs(u) <= half_long) & (np.abs(v) <= half_short)
        if obj["shape"] == "box":
            rise = np.where(inside, obj["height"], 0.0)
        else:                          # a lying cylinder: its diameter is the short side (~9 px per cm)
            radius_m = half_short / 900.0
            across = np.clip(v / half_short, -1, 1)
            rise = np.where(inside, radius_m * (1 + np.sqrt(1 - across ** 2)), 0.0)
    depth = (table - rise + rng.normal(0, 0.001, table.shape)).astype(np.float32)

    # Holes where the object's edge meets the table.
    edge = inside & ~np.roll(inside, 3, axis=int(rng.integers(2)))
    edge_points = np.argwhere(edge)
    for row, col in edge_points[rng.choice(len(edge_points), size=min(4, len(edge_points)), replace=False)]:
        radius = rng.uniform(1.5, 4)
        depth[(rows - row) ** 2 + (cols - col) ** 2 <= radius ** 2] = np.nan

    # RGB: the table's texture, the object's colour, Lambertian shading from the depth's normals.
    wood = rng.uniform() < 0.5
    table_hue = rng.uniform(0.06, 0.11) if wood else rng.uniform(0, 1)
    grain = np.sin(2 * math.pi * (cols + 20 * _smooth_field(HEIGHT, WIDTH, 3, rng)) / rng.uniform(15, 30))
    hue = np.where(inside, rng.uniform(0, 1), table_hue)
    sat = np.where(inside, rng.uniform(0.5, 0.9), rng.uniform(0.35, 0.55) if wood else rng.uniform(0.0, 0.1))
    value = np.where(inside, rng.uniform(0.5, 0.9),
                     rng.uniform(0.45, 0.7) * (1 + (0.08 * grain if wood else 0.0))
                     + 0.1 * _smooth_field(HEIGHT, WIDTH, 4, rng))
    smooth_depth = np.nan_to_num(table - rise)
    drow, dcol = np.gradient(smooth_depth * 900.0)                     # metres -> px: unit slopes
    normal = np.stack([-dcol, -drow, np.ones_like(drow)])
    normal /= np.linalg.norm(normal, axis=0)
    light = np.array([0.4, -0.5, 1.0]) / np.linalg.norm([0.4, -0.5, 1.0])
    shade = 0.55 + 0.45 * np.clip(np.tensordot(light, normal, axes=1), 0, 1)
    hsv = np.stack([hue % 1.0, np.clip(sat, 0, 1), np.clip(value * shade, 0, 1)], -1)
    rgb = np.clip(hsv_to_rgb(hsv) * 255 + rng.normal(0, 2, hsv.shape), 0, 255).astype(np.uint8)
    return depth, rgb, inside


def grasp_rectangles(obj: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative ``[N, 4, 2]`` (row, col) rectangles of an object (see the docstring)."""
    a, (crow, ccol) = obj["angle"], obj["center"]
    along = np.array([-math.sin(a), math.cos(a)])                  # (row, col) of the long axis
    across_angle = (a + math.pi) % math.pi - math.pi / 2           # the axis across: a +- 90 degrees
    half_long = obj["long"] / 2
    positives = []
    jaw = rng.uniform(0.35, 0.55) * obj["short"]
    reach = half_long - jaw / 2 - 4 if obj["shape"] != "ellipse" else 0.45 * half_long
    # Centres about 0.6 jaw apart, so that the jaws overlap and the quality strip is continuous.
    count = min(int(2 * reach / (0.6 * jaw)) + 1, 14)
    for t in np.linspace(-reach, reach, count) + rng.normal(0, 1, count):
        local = obj["short"]
        if obj["shape"] == "ellipse":                              # narrower away from the centre
            local *= math.sqrt(max(1 - (t / half_long) ** 2, 0.05))
        opening = local * rng.uniform(1.15, 1.35) + 4
        centre = (crow + t * along[0], ccol + t * along[1])
        angle = across_angle + rng.normal(0, 0.05)
        positives.append(Grasp(centre, angle, opening, jaw).rectangle())
    negatives = []
    for _ in range(int(rng.integers(2, 5))):
        if rng.uniform() < 0.5:                                   # closing along the long side
            t = rng.uniform(-0.2, 0.2) * half_long
            centre = (crow + t * along[0], ccol + t * along[1])
            negatives.append(Grasp(centre, a + rng.normal(0, 0.05), obj["long"] * rng.uniform(0.5, 0.8),
                                   jaw).rectangle())
        else:                                                     # on the empty table beside it
            side = rng.choice([-1, 1]) * (obj["short"] / 2 + rng.uniform(35, 60))
            normal = np.array([math.cos(a), math.sin(a)])
            centre = (crow + side * normal[0], ccol + side * normal[1])
            negatives.append(Grasp(centre, rng.uniform(-math.pi / 2, math.pi / 2), rng.uniform(30, 60),
                                   jaw).rectangle())
    return np.stack(positives), np.stack(negatives)


def render_scene(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One scene: ``(depth [480, 640] float32 m, holes filled; rgb [480, 640, 3] uint8;
    positive and negative rectangles [N, 4, 2] (row, col))``."""
    obj = _object(rng)
    depth, rgb, _ = _render(obj, rng)
    positives, negatives = grasp_rectangles(obj, rng)
    return fill_depth_holes(depth), rgb, positives, negatives


def make_sample_cornell(root: str | Path, *, size: float = 1.0, seed: int = 0) -> Path:
    """Write the offline Cornell-format sample into ``root`` (folders ``01``, ``02``; ``size``
    scales the 40 scenes per folder) and return ``root``, the folder to pass to
    :class:`~seg_common.data.cornell.CornellGrasping`.

    Deterministic (same arguments, same bytes) and idempotent: a sample made with the same
    arguments is kept as it is. It builds in a temporary folder renamed into place, and refuses a
    folder that holds files it did not write (real Cornell data).
    """
    root = Path(root)
    scenes = max(1, round(SCENES_PER_FOLDER * size))
    if scenes > 100:
        raise ValueError(f"size={size} asks for {scenes} scenes per folder; a Cornell folder holds at most 100")
    settings = {"version": SAMPLE_VERSION, "scenes_per_folder": scenes, "folders": FOLDERS, "seed": seed}
    if is_current(root, settings, "Cornell data", "make_sample_cornell", "data/sample/cornell"):
        return root
    tmp = partial_folder(root)
    for folder in range(1, FOLDERS + 1):
        folder_dir = tmp / f"{folder:02d}"
        folder_dir.mkdir(parents=True)
        for number in range(scenes):
            # One generator per scene: a scene depends only on the seed, its folder and number.
            rng = np.random.default_rng([seed, folder, number])
            depth, rgb, positives, negatives = render_scene(rng)
            stem = folder_dir / f"pcd{folder:02d}{number:02d}"
            Image.fromarray(depth).save(f"{stem}d.tiff")
            Image.fromarray(rgb).save(f"{stem}r.png", compress_level=1)   # 4x faster than the default level
            write_rectangles(f"{stem}cpos.txt", positives)
            write_rectangles(f"{stem}cneg.txt", negatives)
    publish(tmp, root, settings)
    return root


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build the offline Cornell-format grasping sample.")
    parser.add_argument("--root", type=Path, default=None,
                        help="folder to write 01/, 02/ into (default: the sample profile's data "
                             "root + cornell, data/sample/cornell)")
    parser.add_argument("--size", type=float, default=1.0, help="scale of the 40 scenes per folder")
    args = parser.parse_args(argv)
    root = args.root if args.root is not None else (
        Profile("sample", Profile.from_env().base_root).data_root / "cornell")
    print(f"Cornell-format sample ready in {make_sample_cornell(root, size=args.size)}")


if __name__ == "__main__":
    main()
