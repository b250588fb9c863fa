"""Offline sample datasets written in exactly the real on-disk formats.

``make_sample_voc(root)`` writes ``root/VOCdevkit/VOC2012`` as PASCAL VOC 2012 lays it out:
JPEG images, 8-bit palette PNG class masks with the VOC palette and a void (255) band along every
object border, palette PNG object masks, SBD-style grayscale ``SegmentationClassAug`` masks, and the
``ImageSets/Segmentation`` split lists with VOC-style ids. The same loader code then runs on the
sample and on the real dataset.

The scenes are a designed world, small enough for a network trained from scratch on a laptop CPU
to learn in minutes, and built so that every lesson of the course has something to act on:

* **Sizes**: VOC's image sizes scaled by ``SAMPLE_SCALE`` = 0.4 (500x375 -> 200x150; some portrait,
  some too small for d2l's crop filter, which scales with them: 320x480 -> 128x192). A CPU trains
  on 6x fewer pixels per image.
* **Scenes**: every image is one of four scenes - indoor (wall and wooden floor), street (sky and
  road), water (sky and waves) or field (sky and grass) - and holds the classes that belong there.
* **Looks**: each class has a colour, a surface (flat, stripes or spots) and a shape (a person has a
  head, a body and thin limbs; a bicycle two rings and a frame). Colour alone narrows a pixel down to
  one to three classes; surface and shape decide among them, which needs a receptive field of
  several pixels.
* **Context**: two pairs of classes look exactly alike - ``car`` and ``boat``, ``sheep`` and
  ``sofa`` - and only the scene tells them apart (a car stands on a road, a boat on water; a sheep
  on grass, a sofa indoors). Pyramid pooling and ASPP's image pooling are about such cues.
* **Small objects and thin parts**: birds and bottles are 10-50 pixels across; bicycles, chairs,
  potted plants and people have parts 3-9 pixels wide, which a prediction at output stride 32
  cannot draw (FCN-32s vs FCN-8s, U-Net, output stride 16 vs 8).
* **Imbalance**: as in VOC, the background covers about three quarters of the labelled pixels (so
  pixel accuracy flatters a weak model) and person is the most frequent object class (it occurs in
  every scene and is three times as likely as any other class among the extra objects of an
  image); small classes hold few pixels (per-class IoU, Lovasz-Softmax).

Run ``python -m seg_common.data.sample [--root data/sample]`` to build it from a shell.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import NamedTuple

import numpy as np
from matplotlib.colors import hsv_to_rgb
from PIL import Image, ImageDraw

from ..profile import Profile
from .sample_marker import is_current, partial_folder, publish
from .voc import IGNORE_INDEX, NUM_CLASSES, VOC_CLASSES, VOC_PALETTE

SAMPLE_VERSION = 3
SAMPLE_SCALE = 0.4                               # sample sizes = VOC's sizes x 0.4

# (width, height, weight): VOC's common sizes (500x375, 500x333, 480x360, 375x500, 500x300,
# 400x300) scaled by SAMPLE_SCALE. Portrait and short ones fail d2l's filter at the same scale.
VOC_LIKE_SIZES = (
    (200, 150, 0.50), (200, 133, 0.15), (192, 144, 0.10),
    (150, 200, 0.15), (200, 120, 0.05), (160, 120, 0.05),
)
# d2l's crop filter (320x480: images smaller than the crop are dropped) at the sample's scale.
D2L_CROP = (320, 480)
SAMPLE_D2L_CROP = tuple(round(side * SAMPLE_SCALE) for side in D2L_CROP)        # (128, 192)
VOID_RADIUS = 0                                  # void band 2 px wide: VOC's ~5 px x 0.4
SCENES = ("indoor", "street", "water", "field")
PERSON = VOC_CLASSES.index("person")

# Colour name -> (hue, saturation, value) of the surface; objects are saturated, scenes muted.
COLOURS = {
    "red": (0.0, 0.80, 0.80), "orange": (0.07, 0.85, 0.95), "brown": (0.07, 0.65, 0.45),
    "yellow": (0.15, 0.85, 0.90), "green": (0.33, 0.75, 0.65), "teal": (0.48, 0.75, 0.65),
    "blue": (0.62, 0.80, 0.80), "purple": (0.77, 0.65, 0.65), "pink": (0.92, 0.45, 0.95),
    "white": (0.0, 0.03, 0.95),
}


class Look(NamedTuple):
    """How a class is drawn: colour, surface, shape, the scenes it occurs in, and its size range
    as a fraction of the image's shorter side."""

    colour: str
    surface: str
    shape: str
    scenes: tuple[str, ...]
    size: tuple[float, float]


OUTDOOR = ("street", "water", "field")
LOOKS: dict[int, Look] = {
    1: Look("white", "flat", "aeroplane", OUTDOOR, (0.6, 1.0)),
    2: Look("red", "flat", "bicycle", ("street",), (0.45, 0.7)),
    3: Look("yellow", "flat", "bird", OUTDOOR, (0.09, 0.18)),
    4: Look("blue", "stripes", "vehicle", ("water",), (0.5, 0.9)),       # boat: looks like a car
    5: Look("green", "flat", "bottle", ("indoor",), (0.18, 0.33)),
    6: Look("yellow", "stripes", "long box", ("street",), (0.8, 1.3)),
    7: Look("blue", "stripes", "vehicle", ("street",), (0.5, 0.9)),      # car: looks like a boat
    8: Look("orange", "spots", "animal", ("indoor",), (0.35, 0.6)),
    9: Look("brown", "flat", "chair", ("indoor",), (0.45, 0.7)),
    10: Look("white", "spots", "animal", ("field",), (0.6, 1.0)),
    11: Look("brown", "stripes", "table", ("indoor",), (0.7, 1.1)),
    12: Look("orange", "flat", "animal", ("indoor", "street", "field"), (0.45, 0.8)),
    13: Look("brown", "spots", "animal", ("field",), (0.6, 1.0)),
    14: Look("red", "stripes", "motorbike", ("street",), (0.5, 0.8)),
    15: Look("pink", "flat", "person", SCENES, (0.5, 0.9)),
    16: Look("green", "stripes", "plant", ("indoor",), (0.4, 0.65)),
    17: Look("teal", "spots", "blob", ("field",), (0.5, 0.9)),           # sheep: looks like a sofa
    18: Look("teal", "spots", "blob", ("indoor",), (0.55, 0.95)),         # sofa: looks like a sheep
    19: Look("purple", "stripes", "long box", ("street", "field"), (0.9, 1.3)),
    20: Look("teal", "flat", "tv", ("indoor",), (0.35, 0.6)),
}
# Pairs of classes that look alike and are told apart only by the scene around them.
CONTEXT_PAIRS = ((VOC_CLASSES.index("car"), VOC_CLASSES.index("boat")),
                 (VOC_CLASSES.index("sheep"), VOC_CLASSES.index("sofa")))
# Classes with parts a few pixels wide, and classes that are small as a whole.
THIN_CLASSES = tuple(VOC_CLASSES.index(c) for c in ("bicycle", "chair", "potted plant", "person"))
SMALL_CLASSES = tuple(VOC_CLASSES.index(c) for c in ("bird", "bottle"))


def class_appearance(cls: int) -> Look:
    """How object class ``cls`` (1..20) looks in the sample (see :class:`Look`)."""
    if not 1 <= cls < NUM_CLASSES:
        raise ValueError(f"object classes are 1..{NUM_CLASSES - 1}, got {cls}")
    return LOOKS[cls]


def _smooth_field(h: int, w: int, cells: int, rng: np.random.Generator) -> np.ndarray:
    """Low-frequency noise in [0, 1]: a small random grid upsampled bilinearly."""
    grid = Image.fromarray((rng.uniform(0, 255, (cells, cells + 1))).astype(np.uint8))
    return np.asarray(grid.resize((w, h), Image.BILINEAR), dtype=np.float32) / 255.0


def _background(scene: str, h: int, w: int, rng: np.random.Generator):
    """HSV planes of a scene's background, and the row of its horizon."""
    if scene not in SCENES:
        raise ValueError(f"unknown scene {scene!r}; scenes are {SCENES}")
    hue, sat, val = (np.zeros((h, w), np.float32) for _ in range(3))
    rows = np.arange(h, dtype=np.float32)[:, None]
    horizon = int(h * rng.uniform(0.35, 0.6))
    top, bottom = slice(0, horizon), slice(horizon, h)
    if scene == "indoor":                          # a wall and a wooden floor
        hue[top], sat[top], val[top] = rng.uniform(0.05, 0.16), rng.uniform(0.08, 0.25), rng.uniform(0.7, 0.85)
        hue[bottom], sat[bottom], val[bottom] = rng.uniform(0.06, 0.1), rng.uniform(0.35, 0.5), rng.uniform(0.35, 0.5)
        plank = rng.uniform(6, 10)
        val[bottom] *= 1 - 0.15 * ((np.arange(w)[None, :] + 3 * rows[bottom]) % plank < 1.5)
    else:                                          # sky above, the ground below
        hue[top], val[top] = rng.uniform(0.55, 0.6), rng.uniform(0.85, 0.95)
        sat[top] = rng.uniform(0.2, 0.35) * (1.2 - rows[top] / h)
        if scene == "street":                      # grey road with a dashed lane marking
            hue[bottom], sat[bottom], val[bottom] = rng.uniform(0, 1), 0.04, rng.uniform(0.4, 0.55)
            lane = int(horizon + (h - horizon) * rng.uniform(0.4, 0.7))
            val[lane:lane + 2, (np.arange(w) // 8) % 2 == 0] = 0.85
        elif scene == "water":                     # blue water with horizontal ripples
            hue[bottom], sat[bottom] = rng.uniform(0.52, 0.58), rng.uniform(0.35, 0.5)
            ripple = np.sin(2 * np.pi * rows[bottom] / rng.uniform(3, 5) + rng.uniform(0, 6))
            val[bottom] = rng.uniform(0.45, 0.6) + 0.06 * ripple
        else:                                      # grass
            hue[bottom], sat[bottom] = rng.uniform(0.24, 0.3), rng.uniform(0.35, 0.5)
            val[bottom] = rng.uniform(0.4, 0.55) + 0.08 * (rng.uniform(0, 1, (h - horizon, w)) - 0.5)
    val *= 0.85 + 0.3 * _smooth_field(h, w, 3, rng)  # uneven lighting
    return hue, sat, val, horizon


def _surface(kind: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A surface pattern in [-1, 1] of shape (h, w)."""
    if kind == "flat":
        return rng.normal(0, 0.08, (h, w))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    period = rng.uniform(5, 7)
    if kind == "stripes":
        theta = rng.uniform(0, np.pi)
        return np.sign(np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / period))
    if kind == "spots":                            # dark dots on a staggered grid
        dy = (yy % period) - period / 2
        dx = ((xx + (yy // period) * period / 2) % period) - period / 2
        return np.where(dx * dx + dy * dy < (0.28 * period) ** 2, -1.0, 0.4)
    raise ValueError(f"unknown surface {kind!r}")


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, s: float,
                mirror: bool, rng: np.random.Generator) -> None:
    """Draw an object of ``shape`` and size ``s`` px around ``(cx, cy)`` with fill 1."""
    m = -1 if mirror else 1
    lw = max(2, int(round(s * 0.07)))              # thin parts: 3-9 px

    def poly(points):
        draw.polygon([(cx + m * x, cy + y) for x, y in points], fill=1)

    def ellipse(x0, y0, x1, y1):
        xa, xb = sorted((cx + m * x0, cx + m * x1))
        draw.ellipse([xa, cy + y0, xb, cy + y1], fill=1)

    def line(x0, y0, x1, y1, width=lw):
        draw.line([(cx + m * x0, cy + y0), (cx + m * x1, cy + y1)], fill=1, width=width)

    def ring(x, y, r, width=lw):
        draw.ellipse([cx + m * x - r, cy + y - r, cx + m * x + r, cy + y + r], outline=1, width=width)

    if shape == "aeroplane":
        ellipse(-s / 2, -s * 0.07, s / 2, s * 0.07)
        poly([(-s * 0.05, 0), (s * 0.12, 0), (-s * 0.2, -s * 0.4), (-s * 0.28, -s * 0.4)])
        poly([(-s * 0.05, 0), (s * 0.12, 0), (-s * 0.2, s * 0.4), (-s * 0.28, s * 0.4)])
        poly([(-s * 0.5, 0), (-s * 0.38, 0), (-s * 0.48, -s * 0.2)])
    elif shape in ("bicycle", "motorbike"):
        ring(-s * 0.3, 0, s * 0.22)
        ring(s * 0.3, 0, s * 0.22)
        if shape == "bicycle":
            line(-s * 0.3, 0, 0, -s * 0.25)
            line(0, -s * 0.25, s * 0.3, 0)
            line(-s * 0.05, -s * 0.25, s * 0.2, -s * 0.3)
        else:
            poly([(-s * 0.3, -s * 0.05), (-s * 0.1, -s * 0.3), (s * 0.25, -s * 0.3), (s * 0.3, -s * 0.05)])
    elif shape == "bird":
        ellipse(-s / 2, -s * 0.25, s / 2, s * 0.25)
        ellipse(s * 0.2, -s * 0.45, s * 0.6, -s * 0.05)
        poly([(-s * 0.4, 0), (-s * 0.8, -s * 0.25), (-s * 0.75, s * 0.1)])
    elif shape == "vehicle":
        poly([(-s / 2, 0), (s / 2, 0), (s * 0.45, s * 0.22), (-s * 0.45, s * 0.22)])
        poly([(-s * 0.25, 0), (s * 0.2, 0), (s * 0.1, -s * 0.2), (-s * 0.18, -s * 0.2)])
    elif shape == "bottle":
        poly([(-s * 0.14, -s * 0.15), (s * 0.14, -s * 0.15), (s * 0.14, s / 2), (-s * 0.14, s / 2)])
        poly([(-s * 0.06, -s / 2), (s * 0.06, -s / 2), (s * 0.06, -s * 0.1), (-s * 0.06, -s * 0.1)])
    elif shape == "long box":
        poly([(-s / 2, -s * 0.18), (s / 2, -s * 0.18), (s / 2, s * 0.16), (-s / 2, s * 0.16)])
        ring(-s * 0.3, s * 0.16, s * 0.06, width=max(2, lw // 2))
        ring(s * 0.3, s * 0.16, s * 0.06, width=max(2, lw // 2))
    elif shape == "animal":
        ellipse(-s * 0.4, -s * 0.18, s * 0.3, s * 0.15)
        ellipse(s * 0.2, -s * 0.38, s * 0.5, -s * 0.08)
        for x in (-s * 0.3, -s * 0.15, s * 0.05, s * 0.2):
            line(x, 0, x, s * 0.4)
        line(-s * 0.38, -s * 0.05, -s * 0.55, -s * 0.2)
    elif shape == "chair":
        poly([(-s * 0.25, -s * 0.02), (s * 0.2, -s * 0.02), (s * 0.2, s * 0.06), (-s * 0.25, s * 0.06)])
        poly([(-s * 0.25, -s * 0.5), (-s * 0.15, -s * 0.5), (-s * 0.15, 0), (-s * 0.25, 0)])
        line(-s * 0.22, 0, -s * 0.22, s * 0.45)
        line(s * 0.17, 0, s * 0.17, s * 0.45)
    elif shape == "table":
        poly([(-s / 2, -s * 0.2), (s / 2, -s * 0.2), (s / 2, -s * 0.1), (-s / 2, -s * 0.1)])
        line(-s * 0.42, -s * 0.12, -s * 0.42, s * 0.3)
        line(s * 0.42, -s * 0.12, s * 0.42, s * 0.3)
    elif shape == "person":
        ellipse(-s * 0.08, -s * 0.5, s * 0.08, -s * 0.32)
        poly([(-s * 0.12, -s * 0.3), (s * 0.12, -s * 0.3), (s * 0.1, s * 0.05), (-s * 0.1, s * 0.05)])
        line(-s * 0.06, s * 0.03, -s * 0.1, s * 0.5)
        line(s * 0.06, s * 0.03, s * 0.1, s * 0.5)
        line(-s * 0.11, -s * 0.27, -s * 0.25, s * rng.uniform(-0.3, 0.0))
        line(s * 0.11, -s * 0.27, s * 0.25, s * rng.uniform(-0.3, 0.0))
    elif shape == "plant":
        poly([(-s * 0.18, s * 0.15), (s * 0.18, s * 0.15), (s * 0.12, s / 2), (-s * 0.12, s / 2)])
        for _ in range(int(rng.integers(3, 6))):
            a = rng.uniform(-0.9, 0.9)
            x1, y1 = s * 0.45 * np.sin(a), s * 0.15 - s * 0.6 * np.cos(a)
            line(0, s * 0.15, x1, y1, width=max(2, lw // 2 + 1))
            ellipse(x1 - s * 0.07, y1 - s * 0.05, x1 + s * 0.07, y1 + s * 0.05)
    elif shape == "blob":
        phi = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(7, 11))))
        r = s * rng.uniform(0.3, 0.45, len(phi))
        poly(list(zip(r * np.cos(phi), 0.7 * r * np.sin(phi))))
    elif shape == "tv":
        poly([(-s * 0.35, -s * 0.3), (s * 0.35, -s * 0.3), (s * 0.35, s * 0.2), (-s * 0.35, s * 0.2)])
        poly([(-s * 0.05, s * 0.2), (s * 0.05, s * 0.2), (s * 0.15, s * 0.3), (-s * 0.15, s * 0.3)])
    else:
        raise ValueError(f"unknown shape {shape!r}")


def _void_band(instances: np.ndarray, radius: int = VOID_RADIUS) -> np.ndarray:
    """The pixels on both sides of every boundary between two regions (objects or background), a
    band 2 px wide, widened by ``radius`` more pixels on each side."""
    edge = np.zeros(instances.shape, dtype=bool)
    across = instances[:, 1:] != instances[:, :-1]
    edge[:, 1:] |= across
    edge[:, :-1] |= across
    down = instances[1:, :] != instances[:-1, :]
    edge[1:, :] |= down
    edge[:-1, :] |= down
    band = edge.copy()
    padded = np.pad(edge, radius)
    h, w = edge.shape
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dy * dy + dx * dx <= radius * radius + 1:
                band |= padded[radius + dy: radius + dy + h, radius + dx: radius + dx + w]
    return band


def _placement(shape: str, s: float, h: int, w: int, horizon: int, rng: np.random.Generator):
    """Where an object's centre goes: planes (and half the birds) fly in the sky, a TV hangs on
    the wall, everything else stands on the ground."""
    cx = rng.uniform(0.05 * w, 0.95 * w)
    if shape == "aeroplane" or (shape == "bird" and rng.uniform() < 0.5):
        return cx, rng.uniform(0.05 * h, max(0.9 * horizon, 0.1 * h))
    if shape == "tv":
        return cx, rng.uniform(0.2 * h, horizon + 0.1 * h)
    cy = rng.uniform(horizon + 0.05 * (h - horizon), h - 0.1 * s)
    if shape in ("person", "bottle", "chair", "plant"):   # drawn around their middle
        cy -= 0.3 * s
    return cx, cy


def render_scene(
    width: int, height: int, scene: str, classes: list[int], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw one scene with objects of ``classes``, in that order (later ones in front).

    Returns ``(rgb [H, W, 3] uint8, class mask [H, W] uint8, object mask [H, W] uint8)``; the masks
    carry 255 on the void band, objects are numbered 1.. in the object mask.
    """
    h, w = height, width
    hue, sat, val, horizon = _background(scene, h, w, rng)
    for _ in range(int(rng.integers(0, 3))):     # grey clutter with a pattern: not an object
        y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
        dh, dw = int(rng.integers(6, h // 4)), int(rng.integers(6, w // 4))
        patch = _surface(str(rng.choice(["stripes", "spots"])), min(dh, h - y0), min(dw, w - x0), rng)
        sat[y0:y0 + dh, x0:x0 + dw] *= 0.3
        val[y0:y0 + dh, x0:x0 + dw] *= 1 + 0.2 * patch
    instances = np.zeros((h, w), dtype=np.int32)
    class_map = np.zeros((h, w), dtype=np.uint8)
    for number, cls in enumerate(classes, start=1):
        look = class_appearance(cls)
        s = min(h, w) * rng.uniform(*look.size)
        cx, cy = _placement(look.shape, s, h, w, horizon, rng)
        canvas = Image.new("L", (w, h), 0)
        _draw_shape(ImageDraw.Draw(canvas), look.shape, cx, cy, s, bool(rng.integers(2)), rng)
        inside = np.asarray(canvas, dtype=bool)
        if inside.sum() < 12:                    # fell (almost) outside the frame
            continue
        h0, s0, v0 = COLOURS[look.colour]
        rows, cols = np.flatnonzero(inside.any(1)), np.flatnonzero(inside.any(0))
        box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        bh, bw = rows[-1] + 1 - rows[0], cols[-1] + 1 - cols[0]
        pattern = _surface(look.surface, bh, bw, rng)
        shade = 0.85 + 0.25 * _smooth_field(bh, bw, 2, rng)
        hue[inside] = (h0 + rng.uniform(-0.02, 0.02)) % 1.0
        sat[inside] = np.clip(s0 * rng.uniform(0.85, 1.1), 0, 1)
        val[box][inside[box]] = (v0 * rng.uniform(0.85, 1.05) * shade * (1 + 0.35 * pattern))[inside[box]]
        instances[inside] = number
        class_map[inside] = cls

    hsv = np.stack([hue % 1.0, np.clip(sat, 0, 1), np.clip(val, 0, 1)], axis=-1)
    rgb = hsv_to_rgb(hsv) * 255 + rng.normal(0, 4, (h, w, 3))
    rgb = np.clip(rgb, 0, 255).astype(np.uint8)

    void = _void_band(instances)
    # Objects that ended up fully hidden are not numbered; number the visible ones 1, 2, ...
    visible = [n for n in np.unique(instances) if n > 0]
    objects = np.zeros((h, w), dtype=np.uint8)
    for new, old in enumerate(visible, start=1):
        objects[instances == old] = new
    class_map[void] = IGNORE_INDEX
    objects[void] = IGNORE_INDEX
    return rgb, class_map, objects


def scene_and_classes(first: int, rng: np.random.Generator) -> tuple[str, list[int]]:
    """The scene of one image and its classes in drawing order.

    The scene is one where ``first`` occurs (so that every class appears in every split); 1-4 more
    objects come from the classes of that scene, ``person`` three times as likely as any other, as
    VOC's most frequent object class. Large objects are drawn first, so small ones stay visible.
    """
    scene = str(rng.choice(class_appearance(first).scenes))
    allowed = [c for c, look in LOOKS.items() if scene in look.scenes]
    weights = np.array([3.0 if c == PERSON else 1.0 for c in allowed])
    extra = rng.choice(allowed, size=int(rng.integers(1, 5)), p=weights / weights.sum())
    classes = [int(c) for c in extra] + [first]
    return scene, sorted(classes, key=lambda c: -LOOKS[c].size[1])


def _voc_ids(count: int, rng: np.random.Generator) -> list[str]:
    """``count`` distinct VOC-style ids (``2007_000032``), spread over 2007-2012."""
    ids: set[str] = set()
    while len(ids) < count:
        ids.add(f"{int(rng.integers(2007, 2013))}_{int(rng.integers(1, 5000)):06d}")
    return sorted(ids)


def _save_palette_png(array: np.ndarray, path: Path) -> None:
    img = Image.fromarray(array)                      # mode "L"; a palette turns it into "P"
    img.putpalette(VOC_PALETTE.flatten().tolist())
    img.save(path, optimize=True)


def make_sample_voc(
    root: str | Path,
    *,
    n_train: int = 300,
    n_val: int = 150,
    n_aug_only: int = 100,
    seed: int = 0,
    scale: float = SAMPLE_SCALE,
) -> Path:
    """Write the offline VOC 2012 sample under ``root/VOCdevkit/VOC2012`` and return that folder.

    Deterministic (same arguments, same bytes) and idempotent: when a sample made with the same
    arguments is already there it returns at once. It builds in a temporary folder and renames it
    into place, so an interrupted run leaves nothing half-written. It refuses to touch a folder
    that holds real VOC data.

    Splits: ``train`` (n_train ids), ``val`` (n_val), ``trainval``, and ``train_aug`` = train plus
    ``n_aug_only`` ids that have only ``SegmentationClassAug`` masks, as SBD adds images to VOC.

    ``scale``: image sizes relative to VOC's (default ``SAMPLE_SCALE``); ``make dry-run`` uses 1.0,
    VOC's own sizes, so that the full profile's crops fit the images as they fit the real ones.
    """
    voc_dir = Path(root) / "VOCdevkit" / "VOC2012"
    settings = {"version": SAMPLE_VERSION, "n_train": n_train, "n_val": n_val,
                "n_aug_only": n_aug_only, "seed": seed}
    if scale != SAMPLE_SCALE:
        settings["scale"] = scale
    if is_current(voc_dir, settings, "VOC data", "make_sample_voc", "the sample profile's data/sample"):
        return voc_dir
    if min(n_train, n_val) < 1 or n_aug_only < 0:
        raise ValueError("n_train and n_val must be at least 1, n_aug_only at least 0")

    rng = np.random.default_rng(seed)
    ids = _voc_ids(n_train + n_val + n_aug_only, rng)
    order = rng.permutation(len(ids))
    train = sorted(ids[i] for i in order[:n_train])
    val = sorted(ids[i] for i in order[n_train:n_train + n_val])
    aug_only = sorted(ids[i] for i in order[n_train + n_val:])
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    sizes = np.ceil(np.array([s[:2] for s in VOC_LIKE_SIZES]) * (scale / SAMPLE_SCALE) - 1e-6).astype(int)
    size_p = np.array([s[2] for s in VOC_LIKE_SIZES])

    tmp = partial_folder(voc_dir)
    folders = {name: tmp / name for name in (
        "JPEGImages", "SegmentationClass", "SegmentationObject", "SegmentationClassAug",
        "ImageSets/Segmentation")}
    for folder in folders.values():
        folder.mkdir(parents=True)

    for split_ids, has_voc_masks in ((train, True), (val, True), (aug_only, False)):
        for position, image_id in enumerate(split_ids):
            # One generator per image: an image's pixels depend only on the seed and its id.
            img_rng = np.random.default_rng([seed, int(image_id.replace("_", ""))])
            width, height = sizes[img_rng.choice(len(sizes), p=size_p)]
            scene, classes = scene_and_classes(position % (NUM_CLASSES - 1) + 1, img_rng)
            rgb, class_map, objects = render_scene(int(width), int(height), scene, classes, img_rng)
            Image.fromarray(rgb).save(folders["JPEGImages"] / f"{image_id}.jpg", quality=90)
            Image.fromarray(class_map).save(
                folders["SegmentationClassAug"] / f"{image_id}.png", optimize=True)
            if has_voc_masks:
                _save_palette_png(class_map, folders["SegmentationClass"] / f"{image_id}.png")
                _save_palette_png(objects, folders["SegmentationObject"] / f"{image_id}.png")

    lists = {"train": train, "val": val, "trainval": sorted(train + val),
             "train_aug": sorted(train + aug_only)}
    for name, names in lists.items():
        (folders["ImageSets/Segmentation"] / f"{name}.txt").write_text("\n".join(names) + "\n")
    return publish(tmp, voc_dir, settings)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build the offline VOC-format sample dataset.")
    parser.add_argument("--root", type=Path, default=None,
                        help="folder to write VOCdevkit/VOC2012 into (default: the sample "
                             "profile's data root, data/sample)")
    args = parser.parse_args(argv)
    root = args.root if args.root is not None else Profile("sample", Profile.from_env().base_root).data_root
    voc_dir = make_sample_voc(root)
    print(f"VOC-format sample ready in {voc_dir}")


if __name__ == "__main__":
    main()
