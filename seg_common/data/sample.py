"""Offline sample datasets written in exactly the real on-disk formats.

``make_sample_voc(root)`` writes ``root/VOCdevkit/VOC2012`` as PASCAL VOC 2012 lays it out:
JPEG images, 8-bit palette PNG class masks with the VOC palette and a void (255) band along every
object border, palette PNG object masks, SBD-style grayscale ``SegmentationClassAug`` masks, and the
``ImageSets/Segmentation`` split lists with VOC-style ids. The same loader code then runs on the
sample and on the real dataset.

The scenes are synthetic but built to teach: each of the 20 object classes has a hue (5 hue groups)
and a surface texture (flat, stripes, checks, speckles), so colour alone narrows a pixel down to
four classes and the texture - which needs a receptive field of several pixels - decides among them.
Objects are ellipses, boxes, blobs and two-part shapes of many sizes that overlap and leave the
frame; the background is a low-saturation field with textured grey distractors. Sizes follow VOC's
(mostly 500x375 landscape, some portrait, some smaller than a 320x480 crop) and the background covers
most pixels, as in VOC, so that pixel accuracy flatters a weak model.

Run ``python -m seg_common.data.sample [--root data/sample]`` to build it from a shell.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from matplotlib.colors import hsv_to_rgb
from PIL import Image, ImageDraw

from ..profile import Profile
from .sample_marker import is_current, partial_folder, publish
from .voc import IGNORE_INDEX, NUM_CLASSES, VOC_PALETTE

SAMPLE_VERSION = 1

# (width, height, weight): VOC's common sizes. Portrait and short images fail d2l's 320x480 filter.
VOC_LIKE_SIZES = (
    (500, 375, 0.50), (500, 333, 0.15), (480, 360, 0.10),
    (375, 500, 0.15), (500, 300, 0.05), (400, 300, 0.05),
)
HUES = (0.0, 0.14, 0.33, 0.56, 0.79)          # red, yellow, green, blue, magenta
TEXTURES = ("flat", "stripes", "checks", "speckles")
VOID_RADIUS = 2                                # void band ~5 px wide, like VOC's


def class_appearance(cls: int) -> tuple[float, str]:
    """The (hue, texture) that identifies object class ``cls`` (1..20) in the sample."""
    if not 1 <= cls < NUM_CLASSES:
        raise ValueError(f"object classes are 1..{NUM_CLASSES - 1}, got {cls}")
    return HUES[(cls - 1) % len(HUES)], TEXTURES[(cls - 1) // len(HUES)]


def _texture(kind: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A texture in [-1, 1] of shape (h, w)."""
    if kind == "flat":
        return rng.normal(0, 0.15, (h, w))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    theta = rng.uniform(0, np.pi)
    u = xx * np.cos(theta) + yy * np.sin(theta)
    v = -xx * np.sin(theta) + yy * np.cos(theta)
    period = rng.uniform(7, 11)
    if kind == "stripes":
        return np.sin(2 * np.pi * u / period)
    if kind == "checks":
        return np.sign(np.sin(2 * np.pi * u / period) * np.sin(2 * np.pi * v / period))
    if kind == "speckles":
        coarse = rng.uniform(-1, 1, (h // 3 + 1, w // 3 + 1))
        return np.kron(coarse, np.ones((3, 3)))[:h, :w]
    raise ValueError(f"unknown texture {kind!r}")


def _smooth_field(h: int, w: int, cells: int, rng: np.random.Generator) -> np.ndarray:
    """Low-frequency noise in [0, 1]: a small random grid upsampled bilinearly."""
    grid = Image.fromarray((rng.uniform(0, 255, (cells, cells + 1))).astype(np.uint8))
    return np.asarray(grid.resize((w, h), Image.BILINEAR), dtype=np.float32) / 255.0


def _shape_polygons(h: int, w: int, rng: np.random.Generator) -> list[list[tuple[float, float]]]:
    """One object's outline as polygons (a two-part object has two), in pixel coordinates."""
    size = min(h, w) * rng.uniform(0.14, 0.5)
    cx, cy = rng.uniform(0.05 * w, 0.95 * w), rng.uniform(0.05 * h, 0.95 * h)
    angle = rng.uniform(0, 2 * np.pi)
    kind = rng.choice(["ellipse", "box", "blob", "pair"])
    t = np.linspace(0, 2 * np.pi, 40, endpoint=False)

    def place(xs: np.ndarray, ys: np.ndarray, ox: float, oy: float) -> list[tuple[float, float]]:
        c, s = np.cos(angle), np.sin(angle)
        return [(ox + x * c - y * s, oy + x * s + y * c) for x, y in zip(xs, ys)]

    if kind == "ellipse":
        return [place(size * np.cos(t), size * rng.uniform(0.4, 1.0) * np.sin(t), cx, cy)]
    if kind == "box":
        a, b = size, size * rng.uniform(0.35, 1.0)
        return [place(np.array([-a, a, a, -a]), np.array([-b, -b, b, b]), cx, cy)]
    if kind == "blob":
        k = int(rng.integers(6, 11))
        phi = np.sort(rng.uniform(0, 2 * np.pi, k))
        r = size * rng.uniform(0.55, 1.0, k)
        return [place(r * np.cos(phi), r * np.sin(phi), cx, cy)]
    # "pair": a body and a smaller head, like an animal or a person seen from afar
    body = place(size * np.cos(t), 0.55 * size * np.sin(t), cx, cy)
    head_r = size * rng.uniform(0.3, 0.5)
    c, s = np.cos(angle), np.sin(angle)
    hx, hy = cx + 1.1 * size * c, cy + 1.1 * size * s
    head = [(hx + head_r * np.cos(a), hy + head_r * np.sin(a)) for a in t]
    return [body, head]


def _void_band(instances: np.ndarray, radius: int = VOID_RADIUS) -> np.ndarray:
    """Pixels within ``radius`` of a boundary between two regions (objects or background)."""
    edge = np.zeros(instances.shape, dtype=bool)
    edge[:, 1:] |= instances[:, 1:] != instances[:, :-1]
    edge[1:, :] |= instances[1:, :] != instances[:-1, :]
    band = edge.copy()
    padded = np.pad(edge, radius)
    h, w = edge.shape
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dy * dy + dx * dx <= radius * radius + 1:
                band |= padded[radius + dy: radius + dy + h, radius + dx: radius + dx + w]
    return band


def render_scene(
    width: int, height: int, classes: list[int], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw one scene.

    Returns ``(rgb [H, W, 3] uint8, class mask [H, W] uint8, object mask [H, W] uint8)``; the masks
    carry 255 on the void band, objects are numbered 1.. in the object mask.
    """
    h, w = height, width
    # Background: a muted colour field with a lighting gradient and grey textured distractors.
    hue = np.full((h, w), rng.uniform(0, 1), dtype=np.float32)
    hue = (hue + 0.15 * _smooth_field(h, w, 3, rng)) % 1.0
    sat = 0.05 + 0.18 * _smooth_field(h, w, 4, rng)
    val = 0.35 + 0.45 * _smooth_field(h, w, 3, rng)
    for _ in range(int(rng.integers(1, 4))):
        y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
        dh, dw = int(rng.integers(20, h // 3)), int(rng.integers(20, w // 3))
        patch = _texture(str(rng.choice(TEXTURES[1:])), min(dh, h - y0), min(dw, w - x0), rng)
        val[y0:y0 + dh, x0:x0 + dw] *= 1 + 0.3 * patch
    instances = np.zeros((h, w), dtype=np.int32)
    class_map = np.zeros((h, w), dtype=np.uint8)

    for number, cls in enumerate(classes, start=1):
        canvas = Image.new("L", (w, h), 0)
        draw = ImageDraw.Draw(canvas)
        for polygon in _shape_polygons(h, w, rng):
            draw.polygon(polygon, fill=1)
        inside = np.asarray(canvas, dtype=bool)
        if inside.sum() < 150:          # fell (almost) outside the frame
            continue
        base_hue, texture = class_appearance(cls)
        rows, cols = np.flatnonzero(inside.any(1)), np.flatnonzero(inside.any(0))
        box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        bh, bw = rows[-1] + 1 - rows[0], cols[-1] + 1 - cols[0]
        pattern = _texture(texture, bh, bw, rng)
        shade = 0.85 + 0.3 * _smooth_field(bh, bw, 2, rng)
        hue[inside] = (base_hue + rng.uniform(-0.035, 0.035)) % 1.0
        sat[inside] = rng.uniform(0.5, 0.9)
        val[box][inside[box]] = (rng.uniform(0.5, 0.85) * shade * (1 + 0.32 * pattern))[inside[box]]
        instances[inside] = number
        class_map[inside] = cls

    hsv = np.stack([hue, np.clip(sat, 0, 1), np.clip(val, 0, 1)], axis=-1)
    rgb = hsv_to_rgb(hsv) * 255 + rng.normal(0, 5, (h, w, 3))
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


def _scene_classes(first: int, rng: np.random.Generator) -> list[int]:
    """Classes of one image, in drawing order: 0-3 random ones, then ``first`` (so that every
    class appears in every split).

    ``person`` (15) is drawn about three times as often as any other class, as in VOC.
    """
    weights = np.ones(NUM_CLASSES - 1)
    weights[15 - 1] = 3.0
    extra = rng.choice(np.arange(1, NUM_CLASSES), size=int(rng.integers(0, 4)), p=weights / weights.sum())
    return [int(c) for c in extra] + [first]      # drawn last, so it is never hidden


def make_sample_voc(
    root: str | Path,
    *,
    n_train: int = 120,
    n_val: int = 60,
    n_aug_only: int = 40,
    seed: int = 0,
) -> Path:
    """Write the offline VOC 2012 sample under ``root/VOCdevkit/VOC2012`` and return that folder.

    Deterministic (same arguments, same bytes) and idempotent: when a sample made with the same
    arguments is already there it returns at once. It builds in a temporary folder and renames it
    into place, so an interrupted run leaves nothing half-written. It refuses to touch a folder
    that holds real VOC data.

    Splits: ``train`` (n_train ids), ``val`` (n_val), ``trainval``, and ``train_aug`` = train plus
    ``n_aug_only`` ids that have only ``SegmentationClassAug`` masks, as SBD adds images to VOC.
    """
    voc_dir = Path(root) / "VOCdevkit" / "VOC2012"
    settings = {"version": SAMPLE_VERSION, "n_train": n_train, "n_val": n_val,
                "n_aug_only": n_aug_only, "seed": seed}
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
    sizes = np.array([s[:2] for s in VOC_LIKE_SIZES])
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
            first_class = position % (NUM_CLASSES - 1) + 1
            rgb, class_map, objects = render_scene(
                int(width), int(height), _scene_classes(first_class, img_rng), img_rng)
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
