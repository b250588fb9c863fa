"""Offline ADE20K sample: synthetic rooms written in exactly the SceneParsing and instance formats.

``make_sample_ade20k(root)`` writes ``root/ADEChallengeData2016`` as the real zip lays it out, plus
the instance annotations of the Places Challenge::

    images/{training,validation}/ADE_{train,val}_NNNNNNNN.jpg
    annotations/{training,validation}/*.png            L: 0 = other, 1..12 = objectInfo150.txt
    annotations_instance/{training,validation}/*.png   RGB: R = thing category 1..9 in the order
                                                       of instanceInfo100_train.txt, G = instance
    objectInfo150.txt, instanceInfo100_train.txt       the sample's own lists, in the official formats

The sample is not ADE20K's 150 classes: it keeps 12 of them (names taken from ADE's list), numbered
1..12 in its own ``objectInfo150.txt``, and its 9 "thing" classes in its own
``instanceInfo100_train.txt``, in another order than the scene list, as in the real files. The
loader reads both lists, so the same code runs on the sample and on the real data. The
statistics columns of both files (pixel ratio, images per split, instances, pixels per instance)
are counted from the generated annotations.

The scenes are rooms, a designed world that a small network trained from scratch learns in a few
hundred CPU steps:

* **Stuff**: the wall (a pale colour, side walls shaded darker), the floor (wooden planks or grey
  tiles) and the ceiling (near white; out of view in a third of the images) cover most pixels, as
  in ADE20K, where wall, floor and ceiling are three of the six most frequent classes.
* **Things**: each class has its own colour, surface and shape, and its own place in the room:
  windows, paintings and doors on the back wall; cabinets and beds against it; tables, chairs,
  lamps and people on the floor in front. Chairs and tables have legs 2-4 px wide.
* **Long tail**: a thing class occurs in 55% of the images (windowpane) down to 8% (lamp), and a
  lamp covers far fewer pixels than a bed, so the per-class pixel frequencies span three orders
  of magnitude (see ``objectInfo150.txt``'s Ratio column).
* **Other**: grey patterned boxes are clutter without a class: 0 in both annotations, ignored.

Run ``python -m seg_common.data.sample_ade20k [--root data/sample/ade20k]`` to build it from a shell.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import NamedTuple

import numpy as np
from matplotlib.colors import hsv_to_rgb
from PIL import Image, ImageDraw

from ..profile import Profile
from .ade20k import ADE_DIR, INSTANCE_INFO, OBJECT_INFO
from .sample import _draw_shape, _smooth_field, _surface
from .sample_marker import is_current, partial_folder, publish

SAMPLE_VERSION = 1
SAMPLE_IMAGES = {"training": 200, "validation": 50}
# (width, height, weight): ADE's images are mostly 4:3 landscape, some portrait or square.
SIZES = ((240, 180, 0.6), (240, 160, 0.2), (180, 240, 0.1), (208, 208, 0.1))
FILE_PREFIX = {"training": "ADE_train", "validation": "ADE_val"}
SPLIT_SEED = {"training": 0, "validation": 1}


class Look(NamedTuple):
    """A thing class in the sample: its names (synonyms, as objectInfo150 lists them), colour as
    HSV, surface, and the chance that an image holds it."""

    names: str
    hsv: tuple[float, float, float]
    surface: str
    chance: float


STUFF = {"wall": "wall", "floor": "floor, flooring", "ceiling": "ceiling"}
THINGS = {
    "bed": Look("bed", (0.92, 0.30, 0.92), "stripes", 0.30),
    "windowpane": Look("windowpane, window", (0.57, 0.40, 0.98), "flat", 0.55),
    "cabinet": Look("cabinet", (0.09, 0.75, 0.70), "stripes", 0.40),
    "door": Look("door, double door", (0.02, 0.65, 0.38), "flat", 0.45),
    "table": Look("table", (0.0, 0.70, 0.60), "flat", 0.35),
    "painting": Look("painting, picture", (0.13, 0.80, 0.75), "spots", 0.45),
    "chair": Look("chair", (0.33, 0.70, 0.55), "flat", 0.35),
    "person": Look("person, individual, someone", (0.80, 0.55, 0.70), "flat", 0.22),
    "lamp": Look("lamp", (0.15, 0.90, 1.00), "flat", 0.08),
}
# Scene classes 1..12 (objectInfo150 order: roughly by pixel share, as the real list).
SCENE_CLASSES = ("wall", "floor", "ceiling", "bed", "windowpane", "cabinet", "door", "table",
                 "painting", "chair", "person", "lamp")
# Thing categories 1..9 of the instance annotations: an order of their own, as in the real lists.
INSTANCE_CLASSES = ("chair", "painting", "windowpane", "door", "cabinet", "table", "person", "bed", "lamp")
# Drawing order: on the wall, then against it, then in front.
DRAW_ORDER = ("windowpane", "painting", "door", "cabinet", "bed", "table", "chair", "lamp", "person")


class _Room:
    """The label planes and HSV planes of one image, drawn into in turn."""

    def __init__(self, width: int, height: int, rng: np.random.Generator) -> None:
        self.w, self.h, self.rng = width, height, rng
        self.scene = np.zeros((height, width), np.uint8)
        self.instance = np.zeros((height, width), np.int32)       # running instance number
        self.category = np.zeros((height, width), np.uint8)       # instance category 1..9
        self.hue, self.sat, self.val = (np.zeros((height, width), np.float32) for _ in range(3))
        self.things = 0

    def paint(self, inside: np.ndarray, hsv: tuple[float, float, float], surface: str,
              name: str | None) -> None:
        """Colour the pixels ``inside`` and label them ``name`` (None: 'other', label 0)."""
        if not inside.any():
            return
        rows, cols = np.flatnonzero(inside.any(1)), np.flatnonzero(inside.any(0))
        box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        bh, bw = rows[-1] + 1 - rows[0], cols[-1] + 1 - cols[0]
        pattern = _surface(surface, bh, bw, self.rng)
        shade = 0.88 + 0.2 * _smooth_field(bh, bw, 2, self.rng)
        h0, s0, v0 = hsv
        self.hue[inside] = (h0 + self.rng.uniform(-0.015, 0.015)) % 1.0
        self.sat[inside] = np.clip(s0 * self.rng.uniform(0.9, 1.1), 0, 1)
        part = inside[box]
        self.val[box][part] = (v0 * self.rng.uniform(0.9, 1.03) * shade * (1 + 0.25 * pattern))[part]
        self.scene[inside] = SCENE_CLASSES.index(name) + 1 if name is not None else 0
        if name in THINGS:
            self.things += 1
            self.instance[inside] = self.things
            self.category[inside] = INSTANCE_CLASSES.index(name) + 1
        else:
            self.instance[inside] = 0
            self.category[inside] = 0

    def canvas(self) -> tuple[Image.Image, ImageDraw.ImageDraw]:
        image = Image.new("L", (self.w, self.h), 0)
        return image, ImageDraw.Draw(image)


def _shell(room: _Room) -> tuple[float, float, float, float]:
    """Wall, floor and ceiling; returns the back wall's box (left, top, right, bottom)."""
    w, h, rng = room.w, room.h, room.rng
    left, right = w * rng.uniform(0.1, 0.3), w * rng.uniform(0.7, 0.9)
    ceiling_seen = rng.uniform() < 0.67
    top = h * rng.uniform(0.15, 0.3) if ceiling_seen else 0.0
    bottom = h * rng.uniform(0.55, 0.72)
    wall_hsv = (rng.uniform(0.0, 1.0), rng.uniform(0.06, 0.2), rng.uniform(0.72, 0.86))
    everything = np.ones((h, w), bool)
    room.paint(everything, wall_hsv, "flat", "wall")
    for side in ((0, 0), (w, w)):                                  # side walls: a little darker
        image, draw = room.canvas()
        x_edge, x_back = side[0], left if side[0] == 0 else right
        draw.polygon([(x_edge, 0), (x_back, top), (x_back, bottom), (x_edge, h)], fill=1)
        inside = np.asarray(image, bool)
        room.val[inside] *= 0.85
    image, draw = room.canvas()
    draw.polygon([(0, h), (left, bottom), (right, bottom), (w, h)], fill=1)
    floor = np.asarray(image, bool)
    if rng.uniform() < 0.6:                                        # wooden planks
        room.paint(floor, (rng.uniform(0.06, 0.1), rng.uniform(0.45, 0.6), rng.uniform(0.4, 0.55)), "flat", "floor")
        yy, xx = np.mgrid[0:h, 0:w]
        seams = ((xx - w / 2) * (h - bottom) / np.maximum(yy - bottom + 8, 1) % 14) < 1.6
        room.val[floor & seams] *= 0.7
    else:                                                          # grey tiles
        room.paint(floor, (0.6, 0.05, rng.uniform(0.55, 0.7)), "flat", "floor")
        yy, xx = np.mgrid[0:h, 0:w]
        room.val[floor & ((xx % 16 < 1.5) | (yy % 10 < 1.2))] *= 0.75
    if ceiling_seen:
        image, draw = room.canvas()
        draw.polygon([(0, 0), (w, 0), (right, top), (left, top)], fill=1)
        room.paint(np.asarray(image, bool), (0.12, 0.03, 0.95), "flat", "ceiling")
    return left, top, right, bottom


def _thing(room: _Room, name: str, back: tuple[float, float, float, float]) -> None:
    """Draw one object of class ``name`` at a place where it belongs in the room."""
    w, h, rng = room.w, room.h, room.rng
    left, top, right, bottom = back
    look = THINGS[name]
    image, draw = room.canvas()
    wall_h = bottom - top
    extra: list[tuple[np.ndarray, tuple[float, float, float]]] = []   # details in other colours
    if name in ("windowpane", "painting"):
        bw = (right - left) * rng.uniform(0.18, 0.3)
        bh = wall_h * rng.uniform(0.3, 0.5)
        x0 = rng.uniform(left, right - bw)
        y0 = top + wall_h * rng.uniform(0.1, 0.3)
        draw.rectangle([x0, y0, x0 + bw, y0 + bh], fill=1)
        detail, detail_draw = room.canvas()
        if name == "windowpane":                                  # a white cross-shaped frame
            detail_draw.line([(x0 + bw / 2, y0), (x0 + bw / 2, y0 + bh)], fill=1, width=2)
            detail_draw.line([(x0, y0 + bh / 2), (x0 + bw, y0 + bh / 2)], fill=1, width=2)
            extra.append((np.asarray(detail, bool), (0.0, 0.0, 1.0)))
        else:                                                     # a dark frame round the picture
            detail_draw.rectangle([x0, y0, x0 + bw, y0 + bh], outline=1, width=2)
            extra.append((np.asarray(detail, bool), (0.07, 0.8, 0.3)))
    elif name == "door":
        dw = (right - left) * rng.uniform(0.14, 0.2)
        x0 = rng.uniform(left, right - dw)
        y0 = top + wall_h * rng.uniform(0.05, 0.2)
        draw.rectangle([x0, y0, x0 + dw, bottom + 1], fill=1)
        detail, detail_draw = room.canvas()
        knob_x = x0 + dw * 0.8
        knob_y = (y0 + bottom) / 2
        detail_draw.ellipse([knob_x - 2, knob_y - 2, knob_x + 2, knob_y + 2], fill=1)
        extra.append((np.asarray(detail, bool), (0.14, 0.9, 0.95)))
    elif name == "cabinet":
        cw = (right - left) * rng.uniform(0.2, 0.35)
        ch = wall_h * rng.uniform(0.35, 0.6)
        x0 = rng.uniform(left - 0.05 * w, right - cw)
        y1 = bottom + (h - bottom) * rng.uniform(0.0, 0.15)
        draw.rectangle([x0, y1 - ch, x0 + cw, y1], fill=1)
    elif name == "bed":
        bw = w * rng.uniform(0.45, 0.7)
        x0 = rng.uniform(-0.1 * w, w - 0.9 * bw)
        y_head = bottom - wall_h * rng.uniform(0.25, 0.4)
        y_foot = bottom + (h - bottom) * rng.uniform(0.5, 0.9)
        draw.rectangle([x0, y_head, x0 + bw, bottom + 4], fill=1)                    # headboard
        draw.polygon([(x0, bottom), (x0 + bw, bottom), (x0 + bw * 1.1, y_foot), (x0 - bw * 0.1, y_foot)], fill=1)
        detail, detail_draw = room.canvas()
        detail_draw.rectangle([x0, y_head, x0 + bw, bottom - 2], fill=1)
        extra.append((np.asarray(detail, bool), (0.07, 0.6, 0.35)))
    elif name in ("table", "chair", "person"):
        s = min(w, h) * {"table": (0.45, 0.65), "chair": (0.3, 0.45), "person": (0.55, 0.8)}[name][0] \
            * rng.uniform(1.0, 1.4)
        cx = rng.uniform(0.1 * w, 0.9 * w)
        foot = bottom + (h - bottom) * rng.uniform(0.3, 0.95)
        cy = foot - {"table": 0.3, "chair": 0.45, "person": 0.5}[name] * s
        _draw_shape(draw, name, cx, cy, s, bool(rng.integers(2)), rng)
    elif name == "lamp":
        s = min(w, h) * rng.uniform(0.35, 0.5)
        cx = rng.uniform(0.1 * w, 0.9 * w)
        foot = bottom + (h - bottom) * rng.uniform(0.1, 0.5)
        draw.line([(cx, foot - 0.7 * s), (cx, foot)], fill=1, width=2)                # the pole
        draw.polygon([(cx - 0.15 * s, foot - 0.7 * s), (cx + 0.15 * s, foot - 0.7 * s),
                      (cx + 0.08 * s, foot - s), (cx - 0.08 * s, foot - s)], fill=1)  # the shade
        draw.rectangle([cx - 0.1 * s, foot - 2, cx + 0.1 * s, foot], fill=1)          # the base
    else:
        raise ValueError(f"unknown thing {name!r}")
    inside = np.asarray(image, bool)
    if inside.sum() < 12:                           # (almost) out of the frame: not drawn
        return
    room.paint(inside, look.hsv, look.surface, name)
    for detail_inside, hsv in extra:                # same label, another colour
        part = detail_inside & inside
        room.hue[part], room.sat[part], room.val[part] = hsv


def _clutter(room: _Room) -> None:
    """A grey box with a pattern that belongs to no class: label 0 ('other')."""
    w, h, rng = room.w, room.h, room.rng
    bw, bh = rng.uniform(0.06, 0.15) * w, rng.uniform(0.06, 0.15) * h
    x0, y0 = rng.uniform(0, w - bw), rng.uniform(0.4 * h, h - bh)
    inside = np.zeros((h, w), bool)
    inside[int(y0):int(y0 + bh), int(x0):int(x0 + bw)] = True
    room.paint(inside, (rng.uniform(0, 1), 0.04, rng.uniform(0.35, 0.6)),
               str(rng.choice(["stripes", "spots"])), None)


def render_room(width: int, height: int, rng: np.random.Generator, forced: str | None = None):
    """One room of ``width`` x ``height`` pixels.

    Each thing class occurs with its ``Look.chance``; ``forced`` is drawn in any case.
    Returns ``(rgb [H, W, 3] uint8, scene labels [H, W] uint8 (0 other, 1..12),
    instance annotation [H, W, 3] uint8 (R category 1..9, G instance 1.., B 0))``.
    """
    room = _Room(width, height, rng)
    back = _shell(room)
    present = [name for name in DRAW_ORDER if rng.uniform() < THINGS[name].chance or name == forced]
    for _ in range(int(rng.integers(0, 3))):
        _clutter(room)
    for name in present:
        count = int(rng.integers(1, 3)) if name in ("windowpane", "painting", "chair") else 1
        for _ in range(count):
            _thing(room, name, back)
    hsv = np.stack([room.hue % 1.0, np.clip(room.sat, 0, 1), np.clip(room.val, 0, 1)], -1)
    rgb = np.clip(hsv_to_rgb(hsv) * 255 + rng.normal(0, 3, hsv.shape), 0, 255).astype(np.uint8)
    # Instances numbered 1, 2, ... among the visible ones, as in the real files.
    instance_ids = np.zeros_like(room.category)
    for new, old in enumerate([n for n in np.unique(room.instance) if n > 0], start=1):
        instance_ids[room.instance == old] = new
    annotation = np.stack([room.category, instance_ids, np.zeros_like(instance_ids)], -1)
    return rgb, room.scene, annotation


def _object_info(scene_stats: dict[str, np.ndarray], pixels: np.ndarray) -> str:
    """objectInfo150.txt: Idx, Ratio (share of all pixels), Train / Val (images holding the class), Name."""
    names = {**STUFF, **{name: look.names for name, look in THINGS.items()}}
    lines = ["Idx\tRatio\tTrain\tVal\tName"]
    total = pixels.sum()
    for k, name in enumerate(SCENE_CLASSES, start=1):
        lines.append(f"{k}\t{pixels[k] / total:.4f}\t{scene_stats['training'][k]}\t"
                     f"{scene_stats['validation'][k]}\t{names[name]}")
    return "\n".join(lines) + "\n"


def _instance_info(instances: np.ndarray, instance_pixels: np.ndarray) -> str:
    """instanceInfo100_train.txt: Idx, name (padded), #Inst. and pixels per instance (x 1e3) in training."""
    lines = ["Idx\tObject Names\t\t#Inst.\t#Pix. per Inst.(*1e3)"]
    for k, name in enumerate(INSTANCE_CLASSES, start=1):
        per = instance_pixels[k] / max(instances[k], 1) / 1e3
        lines.append(f"{k}\t{name:<19s}\t{instances[k]}\t{per:.2f}")
    return "\n".join(lines) + "\n"


def make_sample_ade20k(
    root: str | Path,
    *,
    n_train: int = SAMPLE_IMAGES["training"],
    n_val: int = SAMPLE_IMAGES["validation"],
    seed: int = 0,
) -> Path:
    """Write the offline ADE20K sample under ``root/ADEChallengeData2016`` and return ``root``
    (the folder to pass to :class:`~seg_common.data.ade20k.ADE20KSegmentation`).

    Deterministic (same arguments, same bytes) and idempotent: when a sample made with the same
    arguments is already there it returns at once. It builds in a temporary folder and renames it
    into place, so an interrupted run leaves nothing half-written. It refuses to touch a folder
    that holds real ADE20K data.
    """
    root = Path(root)
    ade_dir = root / ADE_DIR
    settings = {"version": SAMPLE_VERSION, "n_train": n_train, "n_val": n_val, "seed": seed}
    if is_current(ade_dir, settings, "ADE20K data", "make_sample_ade20k", "data/sample/ade20k"):
        return root
    if min(n_train, n_val) < len(THINGS):
        raise ValueError(f"n_train and n_val must be at least {len(THINGS)} (one image per thing class)")
    sizes = np.array([s[:2] for s in SIZES])
    size_p = np.array([s[2] for s in SIZES])

    tmp = partial_folder(ade_dir)
    scene_images = {}                                         # split -> images holding each class
    pixels = np.zeros(len(SCENE_CLASSES) + 1, np.int64)
    instances = np.zeros(len(INSTANCE_CLASSES) + 1, np.int64)
    instance_pixels = np.zeros(len(INSTANCE_CLASSES) + 1, np.int64)
    for split, count in (("training", n_train), ("validation", n_val)):
        folders = [tmp / part / split for part in ("images", "annotations", "annotations_instance")]
        for folder in folders:
            folder.mkdir(parents=True)
        scene_images[split] = np.zeros(len(SCENE_CLASSES) + 1, np.int64)
        for number in range(1, count + 1):
            # One generator per image: an image's pixels depend only on the seed, split and number.
            rng = np.random.default_rng([seed, SPLIT_SEED[split], number])
            width, height = sizes[rng.choice(len(sizes), p=size_p)]
            forced = DRAW_ORDER[number - 1] if number <= len(DRAW_ORDER) else None
            rgb, scene, annotation = render_room(int(width), int(height), rng, forced)
            stem = f"{FILE_PREFIX[split]}_{number:08d}"
            Image.fromarray(rgb).save(folders[0] / f"{stem}.jpg", quality=90)
            Image.fromarray(scene).save(folders[1] / f"{stem}.png")
            Image.fromarray(annotation).save(folders[2] / f"{stem}.png")
            counts = np.bincount(scene.ravel(), minlength=len(SCENE_CLASSES) + 1)
            pixels += counts
            scene_images[split] += counts > 0
            if split == "training":
                category, instance_id = annotation[..., 0], annotation[..., 1]
                instance_pixels += np.bincount(category.ravel(), minlength=len(INSTANCE_CLASSES) + 1)
                pairs = np.unique(category.astype(np.int64) * 256 + instance_id)
                np.add.at(instances, pairs[pairs >= 256] // 256, 1)
    (tmp / OBJECT_INFO).write_text(_object_info(scene_images, pixels))
    (tmp / INSTANCE_INFO).write_text(_instance_info(instances, instance_pixels))
    publish(tmp, ade_dir, settings)
    return root



def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build the offline ADE20K-format sample.")
    parser.add_argument("--root", type=Path, default=None,
                        help="folder to write ADEChallengeData2016/ into (default: the sample "
                             "profile's data root + ade20k, data/sample/ade20k)")
    args = parser.parse_args(argv)
    root = args.root if args.root is not None else (
        Profile("sample", Profile.from_env().base_root).data_root / "ade20k")
    print(f"ADE20K-format sample ready in {make_sample_ade20k(root) / ADE_DIR}")


if __name__ == "__main__":
    main()
