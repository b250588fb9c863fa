"""Offline Cityscapes sample: synthetic street scenes written in exactly the real gtFine format.

``make_sample_cityscapes(root)`` writes, for a few real city names per split::

    root/leftImg8bit/{train,val}/<city>/<city>_<seq>_<frame>_leftImg8bit.png        RGB 2048x1024
    root/gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_polygons.json    the annotation
    root/gtFine/.../<city>_<seq>_<frame>_gtFine_labelIds.png                    L, labelIds
    root/gtFine/.../<city>_<seq>_<frame>_gtFine_instanceIds.png                 16-bit
    root/gtFine/.../<city>_<seq>_<frame>_gtFine_color.png                       RGBA

As in the real dataset the polygons are the annotation and the PNGs are drawn from them, in order,
later objects over earlier ones: ``cityscapesscripts.preparation.json2labelImg`` and
``json2instanceImg`` reproduce the labelIds and instanceIds PNGs exactly from the json. The json
holds what the real ones hold: a 'license plate' (id -1, never drawn) on near cars, a 'cargroup'
(drawn as car, without an instance number), and void labels that train as 255 - the ego vehicle's
bonnet, 'rectification border' strips at the frame edges, 'out of roi' at the bottom, 'static'
bins, 'dynamic' carts and 'ground' patches.

The scenes come from a pinhole camera 1.2 m above a straight street (the real cameras' focal length,
2262 px): road with lane markings in perspective, sidewalks, grass verges and strips, fences or
walls, facades with windows, trees, poles with signs and traffic lights, people, cars, trucks and
buses, sky. Sizes follow from the camera: a car 10 m ahead is 400 px wide, a pole 40 m away 5-10 px.
It is a designed world, built so that a network trained from scratch learns it in a notebook's
budget (DeepLabV3+ with a ResNet-18 at 512x256 on two CPU cores, a few hundred iterations) and so
that the course's Cityscapes lessons have something to act on:

* **Looks**: every class has its own colour range and texture (asphalt grain, paving grid, windows,
  stone blocks, fence bars, leaves, grass streaks, a truck's ribbed box, ...), varied per object;
  every frame gets its own light (gain, tint, cast shadows, sensor noise).
* **Imbalance**: road, building and vegetation cover most pixels; walls, fences, poles, signs,
  people, trucks and buses a few percent each or less (per-class IoU, mIoU versus pixel accuracy).
  Fences, grass, trucks and buses cover more of the frame than in the real dataset (trucks and
  buses several times more), so that a short training run can learn them at all; rider, train,
  motorcycle and bicycle are not drawn.
* **Small and thin**: poles, traffic lights and signs are a few pixels wide at the training scale.
* **Cities differ**: each city has its own part of the range of each look (``CityStyle``: facade
  colours and the share of concrete, trees, grass, paving, asphalt, sky, exposure), as real cities
  differ in architecture and light; the val cities are cities the training set has not seen, so
  training on one city versus all of them is a real question.

Run ``python -m seg_common.data.sample_cityscapes [--root data/sample/cityscapes]`` from a shell.
"""
from __future__ import annotations

import argparse
import colorsys
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
from cityscapesscripts.helpers.labels import labels, name2label
from PIL import Image, ImageDraw

from ..profile import Profile
from .sample_marker import is_current, partial_folder, publish

SAMPLE_VERSION = 2
SAMPLE_CITIES = {"train": ("aachen", "bochum", "bremen"), "val": ("frankfurt", "lindau")}
# 24 train + 8 val frames: ~16 s to build on 2 cores and ~80 MB (a frame's PNG is 2.3 MB, like the
# real ones); at scale 0.25 (512x256) an epoch of 24 frames takes seconds on a CPU. More frames do
# not help a short run: after a few hundred iterations it scores about as well on its own training
# frames as on the val cities (it has not learned them yet, rather than overfitted them).
SAMPLE_FRAMES = {"train": 8, "val": 4}
WIDTH, HEIGHT = 2048, 1024
FOCAL = 2262.0          # px, the focal length of the Cityscapes cameras
CAMERA_HEIGHT = 1.2     # m above the road
Z_NEAR, Z_FAR = 1.0, 1000.0   # m, the depth range polygons are built in (then clipped to the frame)
ANNOTATED_FRAME = 19    # real annotated frames are the 20th of their 30-frame snippet: *_000019
CITY_SPREAD = 0.4       # each city's looks cover this fraction of the sample's range of each look
SENSOR_NOISE = 1.5      # standard deviation of the final noise, in 0..255 grey levels
PNG_LEVEL = 1           # zlib level: fast; the RGB frames hardly compress further at level 9

# A (256, 4) uint8 table: labelId -> RGBA colour of the _gtFine_color.png files.
COLOR_LUT = np.zeros((256, 4), dtype=np.uint8)
COLOR_LUT[:, 3] = 255
for _label in labels:
    if _label.id >= 0:
        COLOR_LUT[_label.id, :3] = _label.color

Paint = Callable[[np.ndarray, np.ndarray, np.random.Generator], np.ndarray]


@dataclass
class _Object:
    """One annotated polygon: ``label`` as written to the json (a table name, or ``<name>group``),
    ``polygon`` in integer pixel coordinates, and ``paint(x [1, w], y [h, 1], rng)``, which returns
    the RGB colours in [0, 1] of the polygon's bounding box, shape ``[h, w, 3]``."""

    label: str
    polygon: list[tuple[int, int]]
    paint: Paint


def _rgb(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32)


def _smooth(h: int, w: int, cell: float, rng: np.random.Generator) -> np.ndarray:
    """Low-frequency noise in [0, 1] of shape (h, w), with features about ``cell`` px wide."""
    grid = rng.uniform(0, 1, (max(2, int(h / cell) + 2), max(2, int(w / cell) + 2)))
    return np.asarray(Image.fromarray(grid.astype(np.float32)).resize((w, h), Image.BILINEAR))


def _grain(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Standard normal noise of shape (h, w) in 2x2 blocks: finer grain would vanish at the
    training scale anyway, and would double the PNG size."""
    noise = rng.standard_normal(((h + 1) // 2, (w + 1) // 2), dtype=np.float32)
    return np.repeat(np.repeat(noise, 2, axis=0), 2, axis=1)[:h, :w]


def _shaded(colour: np.ndarray, shade: np.ndarray) -> np.ndarray:
    """``colour`` (3,) times ``shade`` [h, w] -> [h, w, 3]."""
    return shade[..., None] * colour


def _clip(points: list[tuple[float, float]], w: int, h: int) -> list[tuple[float, float]]:
    """The part of a polygon inside the frame [0, w-1] x [0, h-1] (Sutherland-Hodgman)."""
    for axis, bound, keep_below in ((0, 0.0, False), (0, w - 1.0, True),
                                    (1, 0.0, False), (1, h - 1.0, True)):
        def inside(p: tuple[float, float]) -> bool:
            return p[axis] <= bound if keep_below else p[axis] >= bound

        def cross(p: tuple[float, float], q: tuple[float, float]) -> tuple[float, float]:
            t = (bound - p[axis]) / (q[axis] - p[axis])
            return p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])

        clipped = []
        for i, current in enumerate(points):
            previous = points[i - 1]
            if inside(current):
                if not inside(previous):
                    clipped.append(cross(previous, current))
                clipped.append(current)
            elif inside(previous):
                clipped.append(cross(previous, current))
        points = clipped
        if not points:
            break
    return points


class CityStyle:
    """What the frames of one city share: each look (facade colours, trees, paving, light, ...)
    varies within the city's own part of the sample's range, a fraction ``CITY_SPREAD`` of it.

    ``uniform(key, low, high, rng)`` draws a frame's value for ``key`` around the city's centre for
    that key; ``chance(key, low, high)`` is the city's probability of a yes/no look (a concrete
    facade, an overcast sky). The centres depend only on (seed, city, key).
    """

    def __init__(self, city: str, seed: int = 0) -> None:
        self.city, self.seed = city, seed
        self._drawn: dict[tuple[str, float, float], float] = {}

    def _draw(self, key: str, low: float, high: float) -> float:
        if (key, low, high) not in self._drawn:
            rng = np.random.default_rng([self.seed, zlib.crc32(self.city.encode()), zlib.crc32(key.encode())])
            self._drawn[key, low, high] = float(rng.uniform(low, high))
        return self._drawn[key, low, high]

    def uniform(self, key: str, low: float, high: float, rng: np.random.Generator) -> float:
        half = (high - low) * CITY_SPREAD / 2
        centre = self._draw(key, low + half, high - half)
        return float(rng.uniform(centre - half, centre + half))

    def chance(self, key: str, low: float, high: float) -> float:
        return self._draw(key, low, high)


class _Street:
    """One frame's camera and street layout (metres; X right, Y up, Z ahead), and its objects."""

    def __init__(self, rng: np.random.Generator, style: CityStyle) -> None:
        self.style = style
        self.horizon = HEIGHT * rng.uniform(0.40, 0.46)      # px
        self.centre = WIDTH * rng.uniform(0.46, 0.54)        # px, x of the vanishing point
        self.objects: list[_Object] = []
        # Right-hand traffic: the camera drives in the right lane, the opposite lane is left of it.
        self.lane_right = rng.uniform(1.5, 2.0)              # right edge of the ego lane
        self.parking = {side: rng.random() < 0.5 for side in ("left", "right")}
        self.road_right = self.lane_right + 2.2 * self.parking["right"]
        self.lane_left = self.lane_right - 7.0               # left edge of the opposite lane
        self.road_left = self.lane_left - 2.2 * self.parking["left"]
        # A grass verge between the road and the sidewalk on some streets, with trees in it.
        verge = rng.uniform(1.2, 3.0, 2) * (rng.random(2) < 0.5)
        self.verge_left = (self.road_left - verge[0], self.road_left)
        self.verge_right = (self.road_right, self.road_right + verge[1])
        sidewalk = rng.uniform(2.5, 4.5, 2)
        self.walk_left = (self.verge_left[0] - sidewalk[0], self.verge_left[0])
        self.walk_right = (self.verge_right[1], self.verge_right[1] + sidewalk[1])
        grass = rng.uniform(1.5, 4.5, 2) * (rng.random(2) < 0.65)
        self.grass_left = (self.walk_left[0] - grass[0], self.walk_left[0])
        self.grass_right = (self.walk_right[1], self.walk_right[1] + grass[1])
        self.facade_left, self.facade_right = self.grass_left[0], self.grass_right[1]
        self.z_end = rng.uniform(90, 200)                    # the buildings across the far end

    # -- geometry -------------------------------------------------------------------------
    def project(self, X: float, Y: float, Z: float) -> tuple[float, float]:
        return self.centre + FOCAL * X / Z, self.horizon + FOCAL * (CAMERA_HEIGHT - Y) / Z

    def scale(self, Z: float) -> float:
        """Pixels per metre at depth Z."""
        return FOCAL / Z

    def ground(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(X, Z) of the road-plane point seen at pixel (x, y), y below the horizon."""
        Z = FOCAL * CAMERA_HEIGHT / np.maximum(y - self.horizon, 0.5)
        return (x - self.centre) * Z / FOCAL, np.broadcast_to(Z, np.broadcast_shapes(x.shape, y.shape))

    def side_plane(self, X: float) -> Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """Pixel -> (Z, Y) on the vertical plane at lateral position X (a facade, a fence)."""
        def coords(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            dx = x - self.centre
            dx = np.where(np.abs(dx) < 1.0, np.copysign(1.0, X), dx)
            Z = np.clip(FOCAL * X / dx, Z_NEAR, Z_FAR)
            Y = CAMERA_HEIGHT - (y - self.horizon) * Z / FOCAL
            return np.broadcast_to(Z, Y.shape), Y
        return coords

    def front_plane(self, Z: float) -> Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """Pixel -> (X, Y) on the plane facing the camera at depth Z."""
        def coords(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            X = (x - self.centre) * Z / FOCAL
            Y = CAMERA_HEIGHT - (y - self.horizon) * Z / FOCAL
            return np.broadcast_arrays(X, Y)
        return coords

    def ground_quad(self, x0: float, x1: float, z0: float, z1: float) -> list[tuple[float, float]]:
        return [self.project(x0, 0, z0), self.project(x1, 0, z0),
                self.project(x1, 0, z1), self.project(x0, 0, z1)]

    def side_quad(self, X: float, z0: float, z1: float, height: float) -> list[tuple[float, float]]:
        return [self.project(X, 0, z0), self.project(X, height, z0),
                self.project(X, height, z1), self.project(X, 0, z1)]

    def add(self, label: str, points: list[tuple[float, float]], paint: Paint) -> None:
        """Clip ``points`` to the frame, round them to pixels and append the object (if visible)."""
        polygon: list[tuple[int, int]] = []
        for x, y in _clip(points, WIDTH, HEIGHT):
            p = (int(round(x)), int(round(y)))
            if not polygon or p != polygon[-1]:
                polygon.append(p)
        if len(polygon) > 1 and polygon[-1] == polygon[0]:
            polygon.pop()
        if len(polygon) >= 3:
            self.objects.append(_Object(label, polygon, paint))

    def add_standing(self, label: str, X: float, Z: float, outline: list[tuple[float, float]],
                     paint: Paint, lift: float = 0.0) -> None:
        """Add an upright object facing the camera; ``outline`` in metres around its foot point
        (X, ``lift``, Z), x to the right and y up."""
        self.add(label, [self.project(X + u, lift + v, Z) for u, v in outline], paint)


# -- painters: each returns paint(x [1, w], y [h, 1], rng) -> RGB [h, w, 3] in [0, 1] -------------
def _flat(colour: np.ndarray, grain: float = 0.04) -> Paint:
    def paint(x, y, rng):
        h, w = y.shape[0], x.shape[1]
        return _shaded(colour, 1 + grain * _grain(h, w, rng))
    return paint


def _sky(street: _Street, rng: np.random.Generator) -> Paint:
    overcast = rng.random() < street.style.chance("overcast", 0.1, 0.6)
    zenith = _rgb(rng.uniform(0.55, 0.61), rng.uniform(0.1, 0.2) if overcast else rng.uniform(0.4, 0.65),
                  rng.uniform(0.7, 0.9))
    haze = _rgb(rng.uniform(0.52, 0.6), rng.uniform(0.04, 0.12), rng.uniform(0.85, 0.97))
    clouds = rng.uniform(0.2, 1.0)

    def paint(x, y, rng):
        h, w = y.shape[0], x.shape[1]
        t = np.clip(y / street.horizon, 0, 1)[..., None] ** 1.5
        colour = zenith * (1 - t) + haze * t
        cloud = clouds * np.clip((_smooth(h, w, 180, rng) - 0.5) * 3, 0, 1)[..., None]
        return colour * (1 - cloud) + cloud * (0.8 + 0.15 * _smooth(h, w, 40, rng)[..., None])
    return paint


def _facade(coords: Callable, style: CityStyle, rng: np.random.Generator) -> Paint:
    """A building front: plaster of one colour with a grid of windows, floors 3-3.5 m high; each
    city has its own share of grey concrete and its own range of plaster colours."""
    if rng.random() < style.chance("concrete", 0.1, 0.6):
        base = _rgb(0, 0, style.uniform("concrete value", 0.45, 0.8, rng))          # grey concrete
    else:
        base = _rgb(style.uniform("plaster hue", -0.02, 0.16, rng),
                    style.uniform("plaster saturation", 0.1, 0.45, rng),
                    style.uniform("plaster value", 0.5, 0.85, rng))
    glass = _rgb(rng.uniform(0.55, 0.62), rng.uniform(0.1, 0.35), rng.uniform(0.12, 0.3))
    frame = base * rng.uniform(0.6, 0.8)
    floor, bay = rng.uniform(3.0, 3.5), rng.uniform(2.2, 3.4)
    offset = rng.uniform(0, bay)
    win_w, win_h = rng.uniform(0.35, 0.6), rng.uniform(0.4, 0.6)
    shop = rng.random() < 0.5                                         # a dark shop front below

    def paint(x, y, rng):
        h, w = y.shape[0], x.shape[1]
        u, v = coords(x, y)
        fu = ((u - offset) / bay) % 1.0
        fv = (v / floor) % 1.0
        upper = v > floor
        inner = (np.abs(fu - 0.5) < win_w / 2) & (np.abs(fv - 0.55) < win_h / 2) & upper
        outer = (np.abs(fu - 0.5) < win_w / 2 + 0.05) & (np.abs(fv - 0.55) < win_h / 2 + 0.05) & upper
        if shop:
            inner |= (v > 0.3) & (v < floor * 0.8) & (np.abs(fu - 0.5) < 0.4)
        shade = 0.92 + 0.16 * _smooth(h, w, 60, rng) + 0.05 * _grain(h, w, rng)
        out = _shaded(base, shade)
        out = np.where(outer[..., None], frame, out)
        reflection = 1 + 0.6 * np.clip(fv - 0.5, 0, 1)[..., None]
        return np.where(inner[..., None], glass * reflection * (0.9 + 0.2 * shade[..., None]), out)
    return paint


def _leaves(colour: np.ndarray, top: float, size: float) -> Paint:
    """Foliage: clumps of light and dark green, darker at the bottom (self-shadow)."""
    def paint(x, y, rng):
        h, w = y.shape[0], x.shape[1]
        clumps = _smooth(h, w, max(3.0, size / 6), rng)
        fine = _smooth(h, w, max(1.5, size / 25), rng)
        depth = np.clip((y - top) / max(size, 1.0), 0, 1)
        shade = 0.55 + 0.6 * clumps + 0.35 * (fine - 0.5) - 0.3 * depth
        return _shaded(colour, np.clip(shade, 0.2, 1.4))
    return paint


def _road(street: _Street, rng: np.random.Generator) -> Paint:
    asphalt = _rgb(rng.uniform(0, 1), rng.uniform(0.0, 0.06), street.style.uniform("asphalt value", 0.26, 0.4, rng))
    paint_white = rng.uniform(0.75, 0.9)
    zebra = rng.uniform(12, 30) if rng.random() < 0.3 else None

    def paint(x, y, rng):
        h, w = y.shape[0], x.shape[1]
        X, Z = street.ground(x, y)
        shade = 0.9 + 0.2 * _smooth(h, w, 50, rng) + 0.07 * _grain(h, w, rng)
        out = _shaded(asphalt, shade)
        centre = street.lane_right - 3.5
        marks = (np.abs(X - centre) < 0.07) & ((Z / 9.0) % 1.0 < 0.35)
        for edge in (street.lane_right - 0.15, street.lane_left + 0.15):
            marks |= np.abs(X - edge) < 0.07
        if zebra is not None:
            marks |= (Z > zebra) & (Z < zebra + 4) & ((X / 1.0) % 1.0 < 0.5)
        return np.where(marks[..., None], paint_white * (0.93 + 0.07 * shade[..., None]), out)
    return paint


def _sidewalk(street: _Street, curb_x: float, rng: np.random.Generator) -> Paint:
    style = street.style
    stone = _rgb(style.uniform("paving hue", -0.06, 0.1, rng), style.uniform("paving saturation", 0.06, 0.2, rng),
                 style.uniform("paving value", 0.5, 0.68, rng))
    tile = rng.uniform(0.3, 0.6)

    def paint(x, y, rng):
        h, w = y.shape[0], x.shape[1]
        X, Z = street.ground(x, y)
        joints = ((X / tile) % 1.0 < 0.07) | ((Z / tile) % 1.0 < 0.07)
        shade = 0.92 + 0.12 * _smooth(h, w, 40, rng) + 0.05 * _grain(h, w, rng) - 0.2 * joints
        shade = np.where(np.abs(X - curb_x) < 0.15, 1.15, shade)     # the kerb stones
        return _shaded(stone, shade)
    return paint


def _grass(street: _Street, rng: np.random.Generator) -> Paint:
    colour = _rgb(street.style.uniform("grass hue", 0.13, 0.21, rng), rng.uniform(0.4, 0.6), rng.uniform(0.45, 0.6))

    def paint(x, y, rng):
        h, w = y.shape[0], x.shape[1]
        streaks = np.repeat(_grain(h, w // 2 + 1, rng), 2, axis=1)[:, :w]
        shade = 0.85 + 0.25 * _smooth(h, w, 30, rng) + 0.12 * streaks
        return _shaded(colour, shade)
    return paint


def _dirt(rng: np.random.Generator) -> Paint:
    colour = _rgb(rng.uniform(0.06, 0.1), rng.uniform(0.35, 0.55), rng.uniform(0.3, 0.45))

    def paint(x, y, rng):
        h, w = y.shape[0], x.shape[1]
        return _shaded(colour, 0.8 + 0.35 * _smooth(h, w, 8, rng) + 0.1 * _grain(h, w, rng))
    return paint


def _fence(coords: Callable, rng: np.random.Generator) -> Paint:
    colour = _rgb(rng.uniform(0.05, 0.35), rng.uniform(0.1, 0.4), rng.uniform(0.35, 0.6))
    gap = rng.uniform(0.1, 0.2)

    def paint(x, y, rng):
        u, v = coords(x, y)
        bars = ((u / gap) % 1.0 < 0.35) | (np.abs(v - 0.15) < 0.05) | (np.abs(v - 1.0) < 0.05)
        return _shaded(colour, np.where(bars, 1.0, 0.45))
    return paint


def _wall(coords: Callable, rng: np.random.Generator) -> Paint:
    """Blocks of cool grey stone with dark joints (facades are warm plaster or smooth concrete)."""
    colour = _rgb(rng.uniform(0.55, 0.65), rng.uniform(0.06, 0.2), rng.uniform(0.4, 0.6))

    def paint(x, y, rng):
        h, w = y.shape[0], x.shape[1]
        u, v = coords(x, y)
        joints = ((v / 0.4) % 1.0 < 0.06) | ((u / 1.2) % 1.0 < 0.03)
        return _shaded(colour, 0.85 + 0.25 * _smooth(h, w, 25, rng) - 0.25 * joints)
    return paint


def _cylinder(colour: np.ndarray, x_left: float, x_right: float) -> Paint:
    """A pole or trunk: lit from the left, dark on the right edge."""
    def paint(x, y, rng):
        h, w = y.shape[0], x.shape[1]
        s = np.clip((x - x_left) / max(x_right - x_left, 1.0), 0, 1)
        shade = 0.6 + 0.6 * np.sin(np.pi * (0.2 + 0.8 * s)) + 0.05 * _grain(h, w, rng)
        return _shaded(colour, shade)
    return paint


def _plate(shape: str, centre: tuple[float, float], size: float,
           rim: np.ndarray, face: np.ndarray) -> Paint:
    """A sign plate: ``face`` colour inside a ``rim`` border; ``size`` = its radius in px."""
    cx, cy = centre

    def paint(x, y, rng):
        u, v = (x - cx) / size, (cy - y) / size
        if shape == "circle":
            d = np.hypot(u, v)
        elif shape == "diamond":
            d = np.abs(u) + np.abs(v)
        elif shape == "triangle":
            d = 2 * np.maximum(-v, 0.866 * np.abs(u) + 0.5 * v)      # equilateral, pointing up
        else:
            d = np.maximum(np.abs(u), np.abs(v) * 2.5)
        return np.where((d > 0.72)[..., None], rim, face) * np.ones_like(u)[..., None]
    return paint


def _traffic_light(box: tuple[float, float, float, float], lit: int, rng: np.random.Generator) -> Paint:
    x0, y0, x1, y1 = box
    housing = _rgb(0.15, 0.3, rng.uniform(0.08, 0.2))
    lamps = [_rgb(0.0, 0.9, 1.0), _rgb(0.11, 0.9, 1.0), _rgb(0.38, 0.8, 0.95)]

    def paint(x, y, rng):
        u = (x - x0) / max(x1 - x0, 1.0)
        v = (y - y0) / max(y1 - y0, 1.0)
        out = housing * np.ones_like(u * v)[..., None]
        for k, lamp in enumerate(lamps):
            disc = np.hypot((u - 0.5) * (x1 - x0), (v - (k + 0.5) / 3) * (y1 - y0)) < 0.3 * (x1 - x0)
            out = np.where(disc[..., None], lamp if k == lit else lamp * 0.25, out)
        return out
    return paint


def _vehicle(centre_x: float, bottom_y: float, scale: float, width: float, height: float,
             body: np.ndarray, lights: np.ndarray, kind: str, copies: int = 1) -> Paint:
    """The rear (or front) of a car, truck or bus seen by a following car; ``copies`` > 1 draws
    that many side by side in ``width`` (a queue of cars)."""
    glass = _rgb(0.6, 0.3, 0.12)

    def paint(x, y, rng):
        h, w = y.shape[0], x.shape[1]
        u = (x - centre_x) / scale / width * copies
        u = (u + 0.5 * copies) % 1.0 - 0.5         # -0.5 .. 0.5 across each vehicle
        v = (bottom_y - y) / scale                  # metres above the road
        shade = 0.8 + 0.3 * np.clip(v / height, 0, 1) + 0.03 * _grain(h, w, rng)
        out = _shaded(body, shade)
        if kind == "car":
            window = (v > 0.95) & (v < height - 0.07) & (np.abs(u) < 0.36 - 0.12 * (v - 0.95))
        elif kind == "bus":
            window = (v > 1.3) & (v < height - 0.25) & (np.abs(u) < 0.42)
        else:                                       # truck: a ribbed box with doors
            window = (np.abs(u) < 0.01) & (v > 0.6)
            out = np.where(((np.abs((u * 9) % 1.0 - 0.5) < 0.1) & (v > 0.6))[..., None], out * 0.75, out)
        lamp = (v > 0.6) & (v < 0.78) & (np.abs(u) > 0.36) & (np.abs(u) < 0.47)
        wheel = (v < 0.32) & (np.abs(u) > 0.28)
        bumper = (v > 0.2) & (v < 0.38)
        out = np.where(bumper[..., None], out * 0.55, out)
        out = np.where(window[..., None], glass * (0.8 + 0.4 * shade[..., None]), out)
        out = np.where(lamp[..., None], lights, out)
        return np.where((wheel | (v < 0.08))[..., None], 0.06, out)
    return paint


def _person(centre_x: float, bottom_y: float, size: float, rng: np.random.Generator) -> Paint:
    """Trousers, a shirt, skin and hair from bottom to top; ``size`` = height in px."""
    trousers = _rgb(rng.uniform(0.55, 0.7), rng.uniform(0.1, 0.6), rng.uniform(0.1, 0.45))
    shirt = _rgb(rng.uniform(0, 1), rng.uniform(0.3, 0.9), rng.uniform(0.3, 0.95))
    skin = _rgb(rng.uniform(0.04, 0.09), rng.uniform(0.3, 0.6), rng.uniform(0.45, 0.9))
    hair = _rgb(0.08, 0.5, rng.uniform(0.05, 0.5))

    def paint(x, y, rng):
        h, w = y.shape[0], x.shape[1]
        v = (bottom_y - y) / size
        out = np.where((v < 0.46)[..., None], trousers,
                       np.where((v < 0.845)[..., None], shirt,
                                np.where((v < 0.95)[..., None], skin, hair)))
        side = np.clip((x - centre_x) / size, -1, 1)            # lit from the right
        return out * (0.85 + 0.08 * _grain(h, w, rng) + 0.15 * side)[..., None]
    return paint


def _ego(rng: np.random.Generator, top: float) -> Paint:
    paintwork = _rgb(rng.uniform(0, 1), rng.uniform(0, 0.2), rng.uniform(0.05, 0.16))

    def paint(x, y, rng):
        h, w = y.shape[0], x.shape[1]
        reflection = 0.6 * np.exp(-np.maximum(y - top, 0) / 25.0) * _smooth(h, w, 60, rng)
        return _shaded(paintwork, 1 + 0.05 * _grain(h, w, rng)) + reflection[..., None] * 0.5
    return paint


# Upright outlines in metres around the foot point, x right, y up (counter-clockwise not needed).
PERSON = [(-0.12, 0.0), (-0.05, 0.0), (-0.02, 0.40), (0.02, 0.40), (0.05, 0.0), (0.12, 0.0),
          (0.11, 0.47), (0.15, 0.50), (0.16, 0.80), (0.11, 0.83), (0.05, 0.845), (0.055, 0.88),
          (0.05, 0.94), (0.03, 0.985), (0.0, 1.0), (-0.03, 0.985), (-0.05, 0.94), (-0.055, 0.88),
          (-0.05, 0.845), (-0.11, 0.83), (-0.16, 0.80), (-0.15, 0.50), (-0.11, 0.47)]


def _car_outline(width: float, height: float, kind: str) -> list[tuple[float, float]]:
    w = width / 2
    if kind == "car":
        return [(-0.95 * w, 0.0), (0.95 * w, 0.0), (w, 0.25), (w, 0.85), (0.82 * w, 0.95),
                (0.66 * w, height), (-0.66 * w, height), (-0.82 * w, 0.95), (-w, 0.85), (-w, 0.25)]
    return [(-0.95 * w, 0.0), (0.95 * w, 0.0), (w, 0.3), (w, height - 0.1), (0.95 * w, height),
            (-0.95 * w, height), (-w, height - 0.1), (-w, 0.3)]


def _circle(radius: float, n: int = 16) -> list[tuple[float, float]]:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return [(radius * float(np.cos(a)), radius * float(np.sin(a))) for a in t]


def build_street(rng: np.random.Generator, style: CityStyle) -> _Street:
    """Lay out one frame of ``style``'s city: every annotated object, in drawing order (far and
    large first)."""
    s = _Street(rng, style)
    s.add("sky", [(0, 0), (WIDTH - 1, 0), (WIDTH - 1, s.horizon + 30), (0, s.horizon + 30)],
          _sky(s, rng))

    # Buildings across the far end, then along both sides, with hedges showing in the gaps.
    X = s.facade_left - 3
    while X < s.facade_right + 3:
        span, height = rng.uniform(8, 20), rng.uniform(8, 30)
        corners = [(X, 0), (X + span, 0), (X + span, height), (X, height)]
        s.add("building", [s.project(a, b, s.z_end) for a, b in corners],
              _facade(s.front_plane(s.z_end), style, rng))
        X += span
    for facade in (s.facade_left, s.facade_right):
        s.add("vegetation", s.side_quad(facade, Z_NEAR, s.z_end, rng.uniform(2, 5)),
              _leaves(_rgb(style.uniform("leaf hue", 0.19, 0.33, rng), 0.55, 0.4), s.horizon - 200, 120))
        Z = Z_NEAR
        while Z < s.z_end:
            length = rng.uniform(10, 30)
            if rng.random() < 0.85:
                s.add("building", s.side_quad(facade, Z, min(Z + length, s.z_end), rng.uniform(9, 25)),
                      _facade(s.side_plane(facade), style, rng))
            Z += length

    # The ground: grass strips, sidewalks, road; then fences or walls, dirt patches.
    for x0, x1 in (s.grass_left, s.verge_left, s.verge_right, s.grass_right):
        if x1 - x0 > 0:
            s.add("terrain", s.ground_quad(x0, x1, Z_NEAR, s.z_end), _grass(s, rng))
    s.add("sidewalk", s.ground_quad(*s.walk_left, Z_NEAR, s.z_end), _sidewalk(s, s.walk_left[1], rng))
    s.add("sidewalk", s.ground_quad(*s.walk_right, Z_NEAR, s.z_end), _sidewalk(s, s.walk_right[0], rng))
    s.add("road", s.ground_quad(s.road_left, s.road_right, Z_NEAR, s.z_end), _road(s, rng))
    for X in (s.walk_left[0], s.walk_right[1]):
        if rng.random() < 0.8:
            z0 = rng.uniform(3, 30)
            z1 = z0 + rng.uniform(12, 50)
            if rng.random() < 0.5:
                s.add("fence", s.side_quad(X, z0, z1, rng.uniform(1.0, 1.8)), _fence(s.side_plane(X), rng))
            else:
                s.add("wall", s.side_quad(X, z0, z1, rng.uniform(1.0, 2.0)), _wall(s.side_plane(X), rng))
    for _ in range(int(rng.integers(0, 3))):
        x0, x1 = s.walk_left if rng.random() < 0.5 else s.walk_right
        z0 = rng.uniform(6, 40)
        a = rng.uniform(x0, x1 - 0.8)
        s.add("ground", s.ground_quad(a, a + rng.uniform(0.8, x1 - a), z0, z0 + rng.uniform(1.5, 5)),
              _dirt(rng))

    # Things that stand, drawn from far to near so that near ones hide far ones.
    things: list[tuple[float, Callable[[], None]]] = []

    def walk_x(margin: float = 0.4) -> float:
        x0, x1 = s.walk_left if rng.random() < 0.5 else s.walk_right
        return rng.uniform(x0 + margin, x1 - margin)

    def tree_x() -> float:
        """Trees stand in a verge where the street has one, else on the sidewalk."""
        left = rng.random() < 0.5
        x0, x1 = s.verge_left if left else s.verge_right
        if x1 - x0 > 1.0:
            return (x0 + x1) / 2
        x0, x1 = s.walk_left if left else s.walk_right
        return rng.uniform(x0 + 0.6, x1 - 0.6)

    def tree(X: float, Z: float) -> None:
        trunk_h, radius = rng.uniform(2, 3.5), rng.uniform(1.5, 3)
        k = s.scale(Z)
        x0, x1 = s.centre + k * (X - 0.15), s.centre + k * (X + 0.15)
        s.add_standing("vegetation", X, Z, [(-0.15, 0), (0.15, 0), (0.15, trunk_h + 0.5),
                                            (-0.15, trunk_h + 0.5)],
                       _cylinder(_rgb(0.08, 0.4, rng.uniform(0.2, 0.35)), x0, x1))
        n = int(rng.integers(9, 15))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        r = radius * rng.uniform(0.7, 1.0, n)
        crown = [(float(ri * np.cos(a)), float(trunk_h + radius + ri * np.sin(a)))
                 for ri, a in zip(r, angles)]
        top = s.project(X, trunk_h + 2 * radius, Z)[1]
        s.add_standing("vegetation", X, Z, crown,
                       _leaves(_rgb(style.uniform("leaf hue", 0.19, 0.33, rng), rng.uniform(0.45, 0.7),
                                    rng.uniform(0.3, 0.5)),
                               top, 2 * radius * k))

    def pole(X: float, Z: float) -> None:
        k = s.scale(Z)
        kind = rng.choice(["plain", "sign", "light"], p=[0.2, 0.45, 0.35])
        height = rng.uniform(2.6, 3.4) if kind != "plain" else rng.uniform(4, 8)
        half = rng.uniform(0.05, 0.09)
        grey = _rgb(0.6, rng.uniform(0, 0.1), rng.uniform(0.45, 0.7))
        s.add_standing("pole", X, Z, [(-half, 0), (half, 0), (half, height), (-half, height)],
                       _cylinder(grey, s.centre + k * (X - half), s.centre + k * (X + half)))
        if kind == "sign":
            shape = str(rng.choice(["circle", "triangle", "diamond", "rect"]))
            radius = rng.uniform(0.35, 0.55)
            colours = {"circle": (_rgb(0, 0.85, 0.8), _rgb(0, 0, 0.92)) if rng.random() < 0.5
                       else (_rgb(0.6, 0.9, 0.6), _rgb(0.6, 0.9, 0.6)),
                       "triangle": (_rgb(0, 0.85, 0.8), _rgb(0, 0, 0.92)),
                       "diamond": (_rgb(0, 0, 0.92), _rgb(0.14, 0.9, 0.95)),
                       "rect": (_rgb(0, 0, 0.95), _rgb(0.6, 0.8, 0.55))}[shape]
            outline = {"circle": _circle(radius),
                       "triangle": [(0, -radius), (0.866 * radius, 0.5 * radius),
                                    (-0.866 * radius, 0.5 * radius)],
                       "diamond": [(0, radius), (radius, 0), (0, -radius), (-radius, 0)],
                       "rect": [(-radius, -0.4 * radius), (radius, -0.4 * radius),
                                (radius, 0.4 * radius), (-radius, 0.4 * radius)]}[shape]
            if shape == "triangle":                     # warning signs point up
                outline = [(u, -v) for u, v in outline]
            lift = height + radius * 0.9
            s.add_standing("traffic sign", X, Z, outline,
                           _plate(shape, s.project(X, lift, Z), radius * k, *colours), lift=lift)
        elif kind == "light":
            w, h = 0.35, 0.95
            x0, y1 = s.project(X - w / 2, height, Z)
            x1, y0 = s.project(X + w / 2, height + h, Z)
            s.add_standing("traffic light", X, Z, [(-w / 2, 0), (w / 2, 0), (w / 2, h), (-w / 2, h)],
                           _traffic_light((x0, y0, x1, y1), int(rng.integers(0, 3)), rng), lift=height)

    def person(X: float, Z: float) -> None:
        height = rng.uniform(1.55, 1.95)
        spread = rng.uniform(0.7, 1.5)
        outline = [(u * height * (spread if v < 0.4 else 1.0), v * height) for u, v in PERSON]
        foot = s.project(X, 0, Z)
        s.add_standing("person", X, Z, outline, _person(foot[0], foot[1], height * s.scale(Z), rng))
        if rng.random() < 0.15:                         # pushing a pram or a trolley: 'dynamic'
            s.add_standing("dynamic", X + 0.6, Z - 0.3, [(-0.3, 0.1), (0.3, 0.1), (0.35, 0.9), (-0.35, 0.9)],
                           _flat(_rgb(rng.uniform(0, 1), 0.4, 0.35), 0.08))

    def vehicle(X: float, Z: float, kind: str, rear: bool) -> None:
        width, height = {"car": (rng.uniform(1.7, 1.95), rng.uniform(1.4, 1.65)),
                         "truck": (2.45, rng.uniform(2.8, 3.6)), "bus": (2.55, rng.uniform(2.9, 3.2))}[kind]
        palette = [_rgb(0.62, 0.7, 0.45), _rgb(0.0, 0.8, 0.6), _rgb(0, 0, 0.75), _rgb(0, 0, 0.12),
                   _rgb(0, 0, 0.92), _rgb(0.55, 0.5, 0.35)]
        body = palette[int(rng.integers(len(palette)))] * rng.uniform(0.85, 1.1)
        if kind == "bus":
            body = _rgb(rng.choice([0.0, 0.13, 0.6]), 0.8, 0.85)
        elif kind == "truck":                            # white, silver or dark green boxes
            body = [_rgb(0, 0, 0.9), _rgb(0.58, 0.05, 0.7), _rgb(0.38, 0.5, 0.35)][int(rng.integers(3))]
        lights = _rgb(0.0, 0.9, 0.9) if rear else _rgb(0.15, 0.1, 1.0)
        foot = s.project(X, 0, Z)
        k = s.scale(Z)
        s.add_standing(kind, X, Z, _car_outline(width, height, kind),
                       _vehicle(foot[0], foot[1], k, width, height, body, lights, kind))
        if kind == "car" and Z < 35:                     # annotated, never drawn (id -1)
            s.add_standing("license plate", X, Z, [(-0.26, 0.42), (0.26, 0.42), (0.26, 0.53), (-0.26, 0.53)],
                           _flat(_rgb(0.15, 0.1, 0.9), 0.02))

    for _ in range(int(rng.integers(3, 9))):
        Z = rng.uniform(6, 70)
        things.append((Z, lambda X=tree_x(), Z=Z: tree(X, Z)))
    for _ in range(int(rng.integers(5, 12))):
        Z = rng.uniform(4, 50)
        X = s.walk_left[1] - 0.4 if rng.random() < 0.5 else s.walk_right[0] + 0.4
        things.append((Z, lambda X=X, Z=Z: pole(X, Z)))
    for _ in range(int(rng.integers(4, 15))):
        Z = rng.uniform(4, 35)
        X = walk_x() if rng.random() < 0.8 else rng.uniform(s.road_left, s.road_right)
        things.append((Z, lambda X=X, Z=Z: person(X, Z)))
    for _ in range(int(rng.integers(0, 4))):
        Z = rng.uniform(6, 50)
        things.append((Z, lambda X=walk_x(), Z=Z: s.add_standing(
            "static", X, Z, [(-0.3, 0), (0.3, 0), (0.3, 1.0), (-0.3, 1.0)],
            _flat(_rgb(rng.choice([0.1, 0.35, 0.6]), 0.5, rng.uniform(0.2, 0.5)), 0.06))))
    lanes = [(s.lane_right - 1.75, True), (s.lane_right - 5.25, False)]
    lanes += [(s.road_right - 1.1, True)] if s.parking["right"] else []
    lanes += [(s.lane_left - 1.1, True)] if s.parking["left"] else []
    for X, rear in lanes:
        Z = rng.uniform(8, 35)
        while Z < 90:
            kind = str(rng.choice(["car", "truck", "bus"], p=[0.84, 0.08, 0.08]))
            things.append((Z, lambda X=X + rng.uniform(-0.3, 0.3), Z=Z, kind=kind, rear=rear:
                           vehicle(X, Z, kind, rear)))
            Z += rng.uniform(9, 35)
    if rng.random() < 0.5:                               # a queue too far to tell the cars apart
        Z = rng.uniform(95, 140)
        things.append((Z, lambda Z=Z: s.add_standing(
            "cargroup", s.lane_right - 3.5, Z, [(-4, 0), (4, 0), (4, 1.5), (-4, 1.5)],
            _vehicle(*s.project(s.lane_right - 3.5, 0, Z), s.scale(Z), 8.0, 1.5,
                     _rgb(0, 0, 0.4), _rgb(0, 0.9, 0.9), "car", copies=4))))
    for _, draw in sorted(things, key=lambda item: -item[0]):
        draw()

    # The car's own bonnet at the bottom, and the void strips along the frame edges.
    top = HEIGHT * rng.uniform(0.84, 0.88)
    bulge = HEIGHT * rng.uniform(0.02, 0.035)
    xs = np.linspace(0, WIDTH - 1, 17)
    hood = [(float(x), float(top - bulge * (1 - ((x - WIDTH / 2) / (WIDTH / 2)) ** 2))) for x in xs]
    s.add("ego vehicle", hood + [(WIDTH - 1, HEIGHT - 1), (0, HEIGHT - 1)], _ego(rng, top - bulge))
    black = _flat(np.zeros(3, dtype=np.float32), 0.0)
    for x0, x1 in ((0, rng.uniform(3, 14)), (WIDTH - 1 - rng.uniform(3, 14), WIDTH - 1)):
        s.add("rectification border", [(x0, 0), (x1, 0), (x1, HEIGHT - 1), (x0, HEIGHT - 1)], black)
    bottom = HEIGHT - 1 - rng.uniform(3, 10)
    s.add("out of roi", [(0, bottom), (WIDTH - 1, bottom), (WIDTH - 1, HEIGHT - 1), (0, HEIGHT - 1)], black)
    return s


def _label_value(label: str) -> tuple[int, bool]:
    """(labelId, is a group) of a json label, as the cityscapesscripts tools read it."""
    if label not in name2label and label.endswith("group"):
        return name2label[label[:-len("group")]].id, True
    return name2label[label].id, False


def render(street: _Street, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw a laid-out street.

    Returns ``(rgb [H, W, 3] uint8, labelIds [H, W] uint8, instanceIds [H, W] int32)``, the label
    images drawn from the polygons exactly as ``json2labelImg`` / ``json2instanceImg`` draw them.
    """
    size = (WIDTH, HEIGHT)
    label_img, instance_img = Image.new("L", size, 0), Image.new("I", size, 0)
    index_img = Image.new("I", size, 0)
    draw_label, draw_instance, draw_index = (ImageDraw.Draw(i) for i in (label_img, instance_img, index_img))
    counts = {label.name: 0 for label in labels if label.hasInstances}
    for number, obj in enumerate(street.objects, start=1):
        draw_index.polygon(obj.polygon, fill=number)         # every object owns the pixels it paints
        label_id, group = _label_value(obj.label)
        if label_id < 0:                                      # license plate: annotated, not drawn
            continue
        draw_label.polygon(obj.polygon, fill=label_id)
        name = obj.label[:-len("group")] if group else obj.label
        instance_id = label_id
        if name in counts and not group:
            instance_id = label_id * 1000 + counts[name]
            counts[name] += 1
        draw_instance.polygon(obj.polygon, fill=instance_id)

    index = np.asarray(index_img)
    rgb = np.zeros((HEIGHT, WIDTH, 3), dtype=np.float32)
    for number, obj in enumerate(street.objects, start=1):
        xs, ys = zip(*obj.polygon)
        x0, x1, y0, y1 = min(xs), max(xs) + 1, min(ys), max(ys) + 1
        own = index[y0:y1, x0:x1] == number
        if not own.any():
            continue
        x = np.arange(x0, x1, dtype=np.float32)[None, :]
        y = np.arange(y0, y1, dtype=np.float32)[:, None]
        np.copyto(rgb[y0:y1, x0:x1], obj.paint(x, y, rng), where=own[..., None])

    # The frame's light: cast shadows on the street, exposure and white balance, sensor noise.
    shadow = Image.new("L", size, 0)
    if rng.random() < 0.6:
        X = street.walk_left[0] if rng.random() < 0.5 else street.walk_right[1]
        reach = rng.uniform(3, 9) * (1 if X < 0 else -1)
        points = _clip(street.ground_quad(X, X + reach, Z_NEAR, street.z_end), WIDTH, HEIGHT)
        if len(points) >= 3:
            ImageDraw.Draw(shadow).polygon(points, fill=1)
    dark = np.asarray(shadow, dtype=bool) & (np.asarray(label_img) != name2label["ego vehicle"].id)
    rgb[dark] *= rng.uniform(0.45, 0.7)
    gain = street.style.uniform("exposure", 0.7, 1.2, rng) * rng.uniform(0.94, 1.06, 3).astype(np.float32)
    rgb *= gain
    rgb = rgb * 255 + SENSOR_NOISE * np.stack([_grain(HEIGHT, WIDTH, rng) for _ in range(3)], axis=-1)
    image = np.clip(rgb, 0, 255).astype(np.uint8)
    return image, np.asarray(label_img), np.asarray(instance_img)


def _frames(counts: Mapping[str, int]) -> list[tuple[str, str, str]]:
    """``(split, city, stem)`` of every frame of the sample, stems like ``aachen_000003_000019``."""
    return [(split, city, f"{city}_{seq:06d}_{ANNOTATED_FRAME:06d}")
            for split, cities in SAMPLE_CITIES.items() for city in cities for seq in range(counts[split])]


def write_frame(root: Path, split: str, city: str, stem: str, seed: int) -> None:
    """Render one frame and write its five files; its pixels depend only on (seed, city, stem)."""
    seq = int(stem.split("_")[1])
    rng = np.random.default_rng([seed, zlib.crc32(city.encode()), seq])
    street = build_street(rng, CityStyle(city, seed))
    image, label_ids, instance_ids = render(street, rng)
    image_dir = root / "leftImg8bit" / split / city
    label_dir = root / "gtFine" / split / city
    image_dir.mkdir(parents=True, exist_ok=True)
    label_dir.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(image_dir / f"{stem}_leftImg8bit.png", compress_level=PNG_LEVEL)
    Image.fromarray(label_ids).save(label_dir / f"{stem}_gtFine_labelIds.png", compress_level=PNG_LEVEL)
    Image.fromarray(instance_ids.astype(np.uint16)).save(
        label_dir / f"{stem}_gtFine_instanceIds.png", compress_level=PNG_LEVEL)
    Image.fromarray(COLOR_LUT[label_ids]).save(label_dir / f"{stem}_gtFine_color.png",
                                               compress_level=PNG_LEVEL)
    annotation = {"imgHeight": HEIGHT, "imgWidth": WIDTH,
                  "objects": [{"label": o.label, "polygon": [list(p) for p in o.polygon]}
                              for o in street.objects]}
    (label_dir / f"{stem}_gtFine_polygons.json").write_text(json.dumps(annotation, indent=4))


def make_sample_cityscapes(
    root: str | Path,
    frames_per_city: int | Mapping[str, int] = SAMPLE_FRAMES,
    seed: int = 0,
) -> Path:
    """Write the offline Cityscapes sample into ``root`` (``root/leftImg8bit``, ``root/gtFine``)
    and return ``root``.

    ``frames_per_city``: an int for every split, or ``{"train": n, "val": m}``; the default, 8 and
    4, makes 24 train frames (aachen, bochum, bremen) and 8 val frames (frankfurt, lindau).
    Deterministic (same arguments, same bytes) and idempotent: when a sample made with the same
    arguments is already there it returns at once. It builds in a temporary folder and renames it
    into place, so an interrupted run leaves nothing half-written. It refuses to touch a folder
    that holds real Cityscapes data.
    """
    root = Path(root)
    counts = {split: frames_per_city if isinstance(frames_per_city, int) else int(frames_per_city[split])
              for split in SAMPLE_CITIES}
    if min(counts.values()) < 1:
        raise ValueError(f"frames_per_city must be at least 1 for every split, got {counts}")
    settings = {"version": SAMPLE_VERSION, "frames_per_city": counts, "seed": seed}
    if is_current(root, settings, "Cityscapes", "make_sample_cityscapes", "data/sample/cityscapes"):
        return root

    tmp = partial_folder(root)
    for split, city, stem in _frames(counts):
        write_frame(tmp, split, city, stem, seed)
    return publish(tmp, root, settings)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build the offline Cityscapes-format sample.")
    parser.add_argument("--root", type=Path, default=None,
                        help="folder to write leftImg8bit/ and gtFine/ into (default: the sample "
                             "profile's data root + cityscapes, data/sample/cityscapes)")
    parser.add_argument("--frames-per-city", type=int, default=None,
                        help="frames per city in every split (default: 8 train, 4 val)")
    args = parser.parse_args(argv)
    root = args.root if args.root is not None else (
        Profile("sample", Profile.from_env().base_root).data_root / "cityscapes")
    frames = SAMPLE_FRAMES if args.frames_per_city is None else args.frames_per_city
    print(f"Cityscapes-format sample ready in {make_sample_cityscapes(root, frames)}")


if __name__ == "__main__":
    main()
