"""The Cornell grasping dataset and GG-CNN's grasp-map representation (Morrison, Corke and Leitner,
RSS 2018; github.com/dougsm/ggcnn).

On disk (``root`` is the folder that holds the numbered folders)::

    01/ .. 10/                       the dataset's ten folders (folder 01 holds pcd0100.., 02 pcd0200..)
        pcdNNNNr.png                 640x480 RGB photo of one object on a table
        pcdNNNNd.tiff                480x640 float32 depth (metres), one channel; not in the download:
                                     GG-CNN's ``generate_cornell_depth`` writes it from ``pcdNNNN.txt``
                                     (the point cloud), with the holes already inpainted (OpenCV)
        pcdNNNNcpos.txt              positive (good) grasp rectangles
        pcdNNNNcneg.txt              negative (bad) grasp rectangles
        pcdNNNN.txt                  the point cloud (not read here)

A rectangle file holds 4 lines per rectangle, one corner per line as ``x y`` (column, then row; in
pixels, decimals allowed). Corners 0 -> 1 run along the gripper's closing axis (their distance is
the gripper opening, the rectangle's *length*), corners 1 -> 2 along a jaw (the *width*). Some real
files hold ``NaN`` coordinates: those rectangles are skipped, as GG-CNN does.

Everything here works in (row, col) order, pixel centres at integer coordinates (scikit-image's
convention). GG-CNN's representation of a grasp rectangle:

* **angle**: of the gripper axis p1 - p0, ``(arctan2(-drow, dcol) + pi/2) % pi - pi/2`` in
  [-pi/2, pi/2) - anticlockwise from the image's horizontal, defined modulo pi (a parallel gripper
  is symmetric);
* **maps** (:func:`grasp_maps`): in the centre third (along the gripper axis) of each positive
  rectangle, quality 1, the angle, and the opening in pixels ("width" map); 0 elsewhere;
* **training targets** (:func:`encode`): quality, cos 2a, sin 2a (continuous across a = +-pi/2,
  where the angle itself jumps), width clipped to [0, 150] px / 150; :func:`decode` goes back and
  smooths as GG-CNN's ``post_process_output``; :func:`detect_grasps` takes the local maxima of the
  quality map;
* **success** (:func:`grasp_success`): a detected grasp whose rectangle has IoU > 0.25 with a
  ground-truth rectangle whose angle is within 30 degrees.

:class:`CornellGrasping` yields GG-CNN's 300x300 crops around the grasps' centre. GG-CNN also
rotates and zooms for augmentation; that is left to the caller.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms.v2.functional import gaussian_blur

WIDTH_SCALE = 150.0          # px: GG-CNN's width targets are clip(width, 0, 150) / 150
IOU_THRESHOLD = 0.25
ANGLE_THRESHOLD = math.pi / 6
GENERATE_HINT = (
    "Write the depth images with GG-CNN's `python -m utils.dataset_processing.generate_cornell_depth "
    "<cornell folder>` (github.com/dougsm/ggcnn), or build the offline sample with "
    "make_sample_cornell (`python -m seg_common.data.sample_cornell`)"
)


# -- rectangles ----------------------------------------------------------------------------------
def read_rectangles(path: str | Path) -> np.ndarray:
    """The grasp rectangles of a ``pcdNNNNcpos.txt`` / ``cneg.txt`` as a float64 ``[N, 4, 2]``
    array of (row, col) corners (the file's lines are ``x y``: column first).

    Rectangles with a NaN coordinate are skipped (some real files have them; GG-CNN skips them too).
    Raises ValueError, naming the file and line, for a line that is not two numbers or a line count
    that is not a multiple of 4.
    """
    path = Path(path)
    lines = [(number, line) for number, line in enumerate(path.read_text().splitlines(), start=1)
             if line.strip()]
    if len(lines) % 4:
        raise ValueError(f"{path}: {len(lines)} non-empty lines, not a multiple of 4. A rectangle is "
                         "4 lines, one corner 'x y' each; is a line missing or the file cut short?")
    points = np.empty((len(lines), 2))
    for k, (number, line) in enumerate(lines):
        tokens = line.split()
        try:
            if len(tokens) != 2:
                raise ValueError
            x, y = float(tokens[0]), float(tokens[1])
        except ValueError:
            raise ValueError(f"{path}, line {number}: {line!r} is not two numbers 'x y' (a corner: "
                             "column, then row).") from None
        points[k] = (y, x)
    rectangles = points.reshape(-1, 4, 2)
    return rectangles[~np.isnan(rectangles).any(axis=(1, 2))]


def write_rectangles(path: str | Path, rectangles: np.ndarray) -> None:
    """Write ``[N, 4, 2]`` (row, col) rectangles as a Cornell file: 4 lines ``x y`` per rectangle."""
    lines = [f"{col:.1f} {row:.1f}" for row, col in np.asarray(rectangles, float).reshape(-1, 2)]
    Path(path).write_text("".join(line + "\n" for line in lines))


class Grasp(NamedTuple):
    """A grasp: centre (row, col) in px, angle in radians (GG-CNN's convention, see the module
    docstring), length = gripper opening in px, width = jaw size in px."""

    center: tuple[float, float]
    angle: float
    length: float
    width: float

    def rectangle(self) -> np.ndarray:
        """The ``[4, 2]`` (row, col) corners, in the order of the Cornell files: p0 -> p1 along the
        gripper axis, p1 -> p2 along a jaw."""
        row, col = self.center
        axis = np.array([-math.sin(self.angle), math.cos(self.angle)])    # (row, col): row grows down
        across = np.array([math.cos(self.angle), math.sin(self.angle)])
        centre = np.array([row, col], float)
        start, end = centre - self.length / 2 * axis, centre + self.length / 2 * axis
        half = self.width / 2 * across
        return np.stack([start - half, end - half, end + half, start + half])


def rectangle_angle(rectangle: np.ndarray) -> float:
    """GG-CNN's angle of a ``[4, 2]`` rectangle, in [-pi/2, pi/2)."""
    drow, dcol = rectangle[1] - rectangle[0]
    return (math.atan2(-drow, dcol) + math.pi / 2) % math.pi - math.pi / 2


def grasp_from_rectangle(rectangle: np.ndarray) -> Grasp:
    """(centre, angle, length, width) of a ``[4, 2]`` (row, col) rectangle: centre = mean of the
    corners, length = |p1 - p0| (the gripper opening), width = |p2 - p1|."""
    rectangle = np.asarray(rectangle, float)
    row, col = rectangle.mean(axis=0)
    return Grasp((float(row), float(col)), rectangle_angle(rectangle),
                 float(np.linalg.norm(rectangle[1] - rectangle[0])),
                 float(np.linalg.norm(rectangle[2] - rectangle[1])))


def rectangle_mask(rectangle: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``[H, W]`` bool: the pixels whose centre (integer (row, col)) lies inside the convex polygon
    ``rectangle`` (``[K, 2]`` (row, col), either winding), its edges included."""
    points = np.asarray(rectangle, float)
    mask = np.zeros(shape, bool)
    top, left = np.maximum(np.ceil(points.min(axis=0) - 1e-9), 0).astype(int)
    bottom, right = np.minimum(np.floor(points.max(axis=0) + 1e-9), np.array(shape) - 1).astype(int)
    if bottom < top or right < left:
        return mask
    rows, cols = np.mgrid[top:bottom + 1, left:right + 1].astype(float)
    edges = np.roll(points, -1, axis=0) - points
    # Cross product of each edge with the vector to the pixel: one sign for every edge = inside.
    cross = (edges[:, 0, None, None] * (cols - points[:, 1, None, None])
             - edges[:, 1, None, None] * (rows - points[:, 0, None, None]))
    scale = np.linalg.norm(edges, axis=1)[:, None, None] + 1e-12
    cross = cross / scale                                  # signed distance to each edge, px
    inside = (cross >= -1e-6).all(axis=0) | (cross <= 1e-6).all(axis=0)
    mask[top:bottom + 1, left:right + 1] = inside
    return mask


def rectangle_iou(a: np.ndarray, b: np.ndarray, angle_threshold: float = ANGLE_THRESHOLD) -> float:
    """IoU of two ``[4, 2]`` rectangles counted in pixels (:func:`rectangle_mask`); 0 when their
    angles differ by more than ``angle_threshold`` (modulo pi), as in GG-CNN."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    difference = (rectangle_angle(a) - rectangle_angle(b) + math.pi / 2) % math.pi - math.pi / 2
    if abs(difference) > angle_threshold:
        return 0.0
    points = np.concatenate([a, b])
    origin = np.floor(points.min(axis=0)) - 1
    shape = tuple((np.ceil(points.max(axis=0)) - origin + 2).astype(int))
    mask_a, mask_b = rectangle_mask(a - origin, shape), rectangle_mask(b - origin, shape)
    union = np.count_nonzero(mask_a | mask_b)
    return np.count_nonzero(mask_a & mask_b) / union if union else 0.0


def grasp_success(detected: Sequence[Grasp | np.ndarray], ground_truth: np.ndarray,
                  iou_threshold: float = IOU_THRESHOLD) -> bool:
    """GG-CNN's "IoU metric": True when a detected grasp (a :class:`Grasp` or a ``[4, 2]``
    rectangle) has IoU > 0.25 with any ground-truth rectangle (``[N, 4, 2]``) within 30 degrees."""
    for grasp in detected:
        rectangle = grasp.rectangle() if isinstance(grasp, Grasp) else np.asarray(grasp, float)
        if any(rectangle_iou(rectangle, truth) > iou_threshold for truth in ground_truth):
            return True
    return False


# -- maps ----------------------------------------------------------------------------------------
def grasp_maps(rectangles: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GG-CNN's per-pixel maps of positive rectangles (``[N, 4, 2]``, (row, col)), each ``[H, W]``
    float32: quality (1 in the centre third, along the gripper axis, of each rectangle), angle
    (radians) and width (the gripper opening in px) there, 0 elsewhere. Later rectangles overwrite
    earlier ones where they overlap, as in GG-CNN."""
    quality, angle, width = (np.zeros(shape, np.float32) for _ in range(3))
    for rectangle in np.asarray(rectangles, float):
        grasp = grasp_from_rectangle(rectangle)
        inside = rectangle_mask(grasp._replace(length=grasp.length / 3).rectangle(), shape)
        quality[inside], angle[inside], width[inside] = 1.0, grasp.angle, grasp.length
    return quality, angle, width


def encode(quality: np.ndarray, angle: np.ndarray, width: np.ndarray) -> np.ndarray:
    """The 4 training maps ``[4, H, W]`` float32: quality, cos 2a, sin 2a, clip(width, 0, 150) / 150.
    (Outside the grasps the angle is 0, so cos 2a = 1 and sin 2a = 0 there, as in GG-CNN.)"""
    return np.stack([quality, np.cos(2 * angle), np.sin(2 * angle),
                     np.clip(width, 0, WIDTH_SCALE) / WIDTH_SCALE]).astype(np.float32)


def _blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    size = 2 * int(4 * sigma) + 1               # scipy / scikit-image's default extent: 4 sigma
    flat = image.reshape(-1, 1, *image.shape[-2:])
    return gaussian_blur(flat, [size, size], [sigma, sigma]).reshape(image.shape)


def decode(maps: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Network output ``[..., 4, H, W]`` (quality, cos 2a, sin 2a, width / 150) -> the maps
    ``(quality, angle, width in px)``, each ``[..., H, W]`` float32, smoothed as GG-CNN's
    ``post_process_output``: Gaussian filters of sigma 2 on quality and angle, 1 on width, kernels
    4 sigma wide on each side. The edges are reflected (torchvision's padding); GG-CNN's
    scikit-image filter repeats the edge pixel instead, which changes only the outer 8 px."""
    maps = torch.as_tensor(maps, dtype=torch.float32)
    if maps.ndim < 3 or maps.shape[-3] != 4:
        raise ValueError(f"expected maps of shape [..., 4, H, W], got {tuple(maps.shape)}")
    quality, cos, sin, width = maps.unbind(-3)
    angle = torch.atan2(sin, cos) / 2
    return _blur(quality, 2.0), _blur(angle, 2.0), _blur(width * WIDTH_SCALE, 1.0)


def peak_coordinates(image: torch.Tensor | np.ndarray, min_distance: int = 20, threshold: float = 0.2,
                     num_peaks: int | None = None) -> np.ndarray:
    """``[K, 2]`` (row, col) of the local maxima of a 2-D map, highest first, as scikit-image's
    ``peak_local_max(image, min_distance, threshold_abs=threshold)``: a pixel equal to the maximum
    of its (2 min_distance + 1)^2 window, above ``threshold``, not within ``min_distance`` of the
    border, and not closer than ``min_distance`` (Chebyshev) to a higher peak kept before it."""
    image = torch.as_tensor(image, dtype=torch.float32)
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D map, got shape {tuple(image.shape)}")
    pooled = F.max_pool2d(image[None, None], 2 * min_distance + 1, stride=1, padding=min_distance)[0, 0]
    candidate = image == pooled
    if candidate.all():                                   # a constant map has no peak
        return np.zeros((0, 2), int)
    candidate &= image > threshold
    border = torch.zeros_like(candidate)
    border[min_distance:image.shape[0] - min_distance, min_distance:image.shape[1] - min_distance] = True
    coords = torch.nonzero(candidate & border).numpy()
    values = image.numpy()[coords[:, 0], coords[:, 1]]
    coords = coords[np.argsort(-values, kind="stable")]
    kept: list[np.ndarray] = []
    for point in coords:
        if all(np.abs(point - other).max() >= min_distance for other in kept):
            kept.append(point)
            if num_peaks is not None and len(kept) == num_peaks:
                break
    return np.array(kept, int).reshape(-1, 2)


def detect_grasps(quality: torch.Tensor | np.ndarray, angle: torch.Tensor | np.ndarray,
                  width: torch.Tensor | np.ndarray, max_grasps: int = 1, min_distance: int = 20,
                  threshold: float = 0.2) -> list[Grasp]:
    """GG-CNN's grasps from ``[H, W]`` maps (e.g. :func:`decode`'s): at the local maxima of the
    quality map (:func:`peak_coordinates`), the angle there, length = the width map there (the
    opening, px) and width = length / 2 (GG-CNN's jaw size). At most ``max_grasps``, best first."""
    angle, width = (torch.as_tensor(m, dtype=torch.float32).numpy() for m in (angle, width))
    grasps = []
    for row, col in peak_coordinates(quality, min_distance, threshold, max_grasps):
        length = float(width[row, col])
        grasps.append(Grasp((float(row), float(col)), float(angle[row, col]), length, length / 2))
    return grasps


# -- depth ---------------------------------------------------------------------------------------
def fill_depth_holes(depth: np.ndarray, max_iterations: int = 10_000) -> np.ndarray:
    """A float32 copy of ``depth`` with its holes (NaN or 0) filled from their neighbours: each
    round, every hole pixel next to a known one gets the mean of its known 3x3 neighbours, until no
    hole is left (holes fill from their rim inwards). Dependency-free stand-in for the OpenCV
    inpainting (``cv2.inpaint``, Navier-Stokes) that GG-CNN's ``generate_cornell_depth`` uses."""
    depth = np.array(depth, dtype=np.float32)
    known = np.isfinite(depth) & (depth != 0)
    if not known.any():
        raise ValueError("the depth image has no valid pixel (all NaN or 0): nothing to fill from")
    depth[~known] = 0
    for _ in range(max_iterations):
        if known.all():
            return depth
        value_sum = _box3(np.where(known, depth, 0))
        count = _box3(known.astype(np.float32))
        fill = ~known & (count > 0)
        depth[fill] = value_sum[fill] / count[fill]
        known |= fill
    raise RuntimeError(f"depth holes not filled after {max_iterations} rounds")


def _box3(image: np.ndarray) -> np.ndarray:
    padded = np.pad(image, 1)
    rows, cols = image.shape
    return sum(padded[dr:dr + rows, dc:dc + cols] for dr in range(3) for dc in range(3))


def normalise_depth(depth: np.ndarray) -> np.ndarray:
    """GG-CNN's depth input: ``clip(depth - mean, -1, 1)`` (metres), float32."""
    depth = np.asarray(depth, np.float32)
    return np.clip(depth - depth.mean(), -1, 1).astype(np.float32)


def crop_origin(rectangles: np.ndarray, image_shape: tuple[int, int], output_size: int = 300) -> tuple[int, int]:
    """``(top, left)`` of GG-CNN's ``output_size`` square crop: centred on the mean of all the
    rectangles' corners (rounded down), moved inside the image where it would stick out."""
    height, width = image_shape
    if height < output_size or width < output_size:
        raise ValueError(f"an image of {height}x{width} px is smaller than the {output_size} px crop")
    row, col = np.floor(np.asarray(rectangles, float).reshape(-1, 2).mean(axis=0)).astype(int)
    top = max(0, min(row - output_size // 2, height - output_size))
    left = max(0, min(col - output_size // 2, width - output_size))
    return int(top), int(left)


# -- the dataset ---------------------------------------------------------------------------------
class CornellGrasping(torch.utils.data.Dataset):
    """The Cornell grasping scenes as GG-CNN trains on them.

    Args:
        root: the folder holding ``01`` .. ``10`` (see the module docstring for the files).
        folders: the folders to read (names such as ``"01"`` or numbers such as ``1``); all by default.
        output_size: side of the square crop around the grasps' centre (GG-CNN: 300).
        include_depth, include_rgb: the input channels: depth first, then RGB.
        fill_holes: fill NaN / 0 depth pixels with :func:`fill_depth_holes`; without it a depth
            image with NaN is refused (``generate_cornell_depth`` inpaints them).
        cache: keep every item in memory after its first read (about 1.8 MB per depth + RGB item).
        downsample: an integer factor: the input is average-pooled and the target maps subsampled
            (the centre pixel of each block) by it, so a network trains on a smaller image (the
            sample profile: 300 -> 100 px). :meth:`rectangles` stay in the crop's full-size
            coordinates and the width target in its pixels: upsample the predicted maps back
            (:func:`predict_maps`) and detect grasps there.

    Items are ``(x, y)``: ``x`` float32 ``[C, S, S]`` (depth :func:`normalise_depth`, then RGB in
    [0, 1] minus its mean, as GG-CNN), ``y`` float32 ``[4, S, S]`` (:func:`encode` of
    :func:`grasp_maps` of the positive rectangles). :meth:`rectangles` gives the positive
    rectangles in crop coordinates, for :func:`grasp_success`.
    """

    def __init__(self, root: str | Path, folders: Sequence[str | int] | None = None, output_size: int = 300,
                 include_depth: bool = True, include_rgb: bool = False, fill_holes: bool = False,
                 cache: bool = False, downsample: int = 1) -> None:
        if not (include_depth or include_rgb):
            raise ValueError("at least one of include_depth and include_rgb must be True")
        if int(downsample) != downsample or downsample < 1 or output_size % downsample:
            raise ValueError(f"downsample must be a positive integer that divides output_size={output_size}, "
                             f"got {downsample}")
        self.downsample = int(downsample)
        self.root = Path(root)
        self.output_size = output_size
        self.include_depth, self.include_rgb = include_depth, include_rgb
        self.fill_holes = fill_holes
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = {} if cache else None
        if not self.root.is_dir():
            raise FileNotFoundError(f"No Cornell grasping data: {self.root} does not exist. See the "
                                    f"README for the download; {GENERATE_HINT}.")
        if folders is None:
            folder_dirs = sorted(p for p in self.root.iterdir() if p.is_dir() and p.name.isdigit())
        else:
            folder_dirs = [self.root / (f"{f:02d}" if isinstance(f, int) else str(f)) for f in folders]
            for folder in folder_dirs:
                if not folder.is_dir():
                    raise FileNotFoundError(f"{folder} does not exist: the Cornell folders are 01 .. 10.")
        self.positive_files = sorted(p for folder in folder_dirs for p in folder.glob("pcd*cpos.txt"))
        if not self.positive_files:
            raise FileNotFoundError(f"No pcdNNNNcpos.txt in {self.root} (folders "
                                    f"{[f.name for f in folder_dirs]}). Is it the folder holding 01 .. 10?")
        self.stems = [p.with_name(p.name[:-len("cpos.txt")]) for p in self.positive_files]
        self.depth_files = [Path(f"{stem}d.tiff") for stem in self.stems]
        self.rgb_files = [Path(f"{stem}r.png") for stem in self.stems]
        self.negative_files = [Path(f"{stem}cneg.txt") for stem in self.stems]
        for depth, rgb, negative in zip(self.depth_files, self.rgb_files, self.negative_files):
            if include_depth and not depth.is_file():
                raise FileNotFoundError(f"The depth image {depth} is missing. {GENERATE_HINT}.")
            if not rgb.is_file():
                raise FileNotFoundError(f"The RGB image {rgb} is missing: re-extract the Cornell "
                                        f"folder {rgb.parent.name} (see the README), or rebuild the sample.")
            if not negative.is_file():
                raise FileNotFoundError(f"The negative rectangles {negative} are missing: re-extract "
                                        f"the Cornell folder {negative.parent.name} (see the README), "
                                        "or rebuild the sample with make_sample_cornell.")
        self._positives = [read_rectangles(path) for path in self.positive_files]
        for path, rectangles in zip(self.positive_files, self._positives):
            if len(rectangles) == 0:
                raise ValueError(f"{path} holds no positive rectangle (after skipping those with NaN): "
                                 "the scene has no grasp to learn. Remove the scene's files.")

    def __len__(self) -> int:
        return len(self.stems)

    def negative_rectangles(self, index: int) -> np.ndarray:
        """The ``[N, 4, 2]`` negative rectangles of scene ``index``, in image coordinates."""
        return read_rectangles(self.negative_files[index])

    def read_depth(self, index: int) -> np.ndarray:
        """The ``[H, W]`` float32 depth image (metres) of scene ``index``, holes filled when
        ``fill_holes``."""
        path = self.depth_files[index]
        with Image.open(path) as image:
            depth = np.asarray(image, dtype=np.float32)
        if depth.ndim != 2:
            raise ValueError(f"{path} has shape {depth.shape}; a depth image has one channel.")
        if self.fill_holes:
            return fill_depth_holes(depth)
        holes = int(np.isnan(depth).sum())
        if holes:
            raise ValueError(f"{path} has {holes} NaN pixels. Pass fill_holes=True to fill them, or "
                             "write the depth with GG-CNN's generate_cornell_depth, which inpaints them.")
        return depth

    def read_rgb(self, index: int) -> np.ndarray:
        """The ``[H, W, 3]`` uint8 RGB image of scene ``index``."""
        with Image.open(self.rgb_files[index]) as image:
            return np.asarray(image.convert("RGB"))

    def _image_shape(self, index: int) -> tuple[int, int]:
        path = self.depth_files[index] if self.include_depth else self.rgb_files[index]
        with Image.open(path) as image:
            return image.height, image.width

    def crop_origin(self, index: int) -> tuple[int, int]:
        """``(top, left)`` of scene ``index``'s crop in the full image."""
        return crop_origin(self._positives[index], self._image_shape(index), self.output_size)

    def rectangles(self, index: int) -> np.ndarray:
        """The ``[N, 4, 2]`` positive rectangles of scene ``index`` in crop coordinates (row, col)."""
        return self._positives[index] - np.array(self.crop_origin(index), float)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        top, left = self.crop_origin(index)
        window = (slice(top, top + self.output_size), slice(left, left + self.output_size))
        channels = []
        if self.include_depth:
            depth = self.read_depth(index)
            channels.append(normalise_depth(depth[window])[None])
        if self.include_rgb:
            rgb = self.read_rgb(index)
            if self.include_depth and rgb.shape[:2] != depth.shape:
                raise ValueError(f"{self.rgb_files[index]} is {rgb.shape[1]}x{rgb.shape[0]} px but "
                                 f"{self.depth_files[index]} is {depth.shape[1]}x{depth.shape[0]}: "
                                 "the depth and RGB images of a scene must have the same size.")
            crop = rgb[window].astype(np.float32) / 255
            channels.append((crop - crop.mean()).transpose(2, 0, 1))
        x = torch.from_numpy(np.concatenate(channels).astype(np.float32))
        size = (self.output_size, self.output_size)
        y = torch.from_numpy(encode(*grasp_maps(self.rectangles(index), size)))
        if self.downsample > 1:
            k = self.downsample
            x = F.avg_pool2d(x[None], k)[0]
            y = y[:, k // 2::k, k // 2::k].contiguous()
        item = (x, y)
        if self._cache is not None:
            self._cache[index] = item
        return item


# -- training and evaluation helpers ---------------------------------------------------------------
def flip_grasp_maps(x: torch.Tensor, y: torch.Tensor, dim: int = -1) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror an input ``[..., C, H, W]`` and its target maps ``[..., 4, H, W]`` along ``dim``
    (-1: left-right, -2: up-down). A mirror turns every grasp angle a into -a: cos 2a stays,
    sin 2a changes sign; quality and width only move."""
    if dim not in (-1, -2):
        raise ValueError(f"dim must be -1 (left-right) or -2 (up-down), got {dim}")
    y = y.flip(dim).clone()
    y[..., 2, :, :] = -y[..., 2, :, :]
    return x.flip(dim), y


class RandomGraspFlip(torch.utils.data.Dataset):
    """A dataset of ``(x, y)`` grasp items, each mirrored left-right and up-down with probability
    1/2 (:func:`flip_grasp_maps`); the draws come from ``torch``'s global generator, as the
    loader's seeded workers set it."""

    def __init__(self, dataset: torch.utils.data.Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.dataset[index]
        for dim in (-1, -2):
            if torch.rand(()) < 0.5:
                x, y = flip_grasp_maps(x, y, dim)
        return x, y


@torch.inference_mode()
def predict_maps(model: torch.nn.Module, x: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """The model's maps ``[B, 4, size, size]`` (float32, on the CPU) for inputs ``[B, C, h, w]``,
    bilinearly upsampled to ``size`` when the inputs were downsampled (see ``CornellGrasping``)."""
    model.eval()
    device = next(model.parameters()).device
    out = model(x.to(device)).float()
    if size is not None and out.shape[-1] != size:
        out = F.interpolate(out, size=(size, size), mode="bilinear", align_corners=False)
    return out.cpu()


def success_rate(model: torch.nn.Module, dataset: "CornellGrasping | torch.utils.data.Subset",
                 max_grasps: int = 1, batch_size: int = 8) -> tuple[float, list[bool]]:
    """GG-CNN's evaluation: for each scene, the best ``max_grasps`` grasps detected in the decoded
    maps and whether one of them succeeds (:func:`grasp_success`). Returns the share of scenes with
    a success and the per-scene results. ``dataset`` is a :class:`CornellGrasping` or a ``Subset``
    of one (its ``rectangles`` give the ground truth)."""
    base, indices = (dataset.dataset, list(dataset.indices)) if isinstance(dataset, torch.utils.data.Subset) \
        else (dataset, list(range(len(dataset))))
    results = []
    for start in range(0, len(indices), batch_size):
        chunk = indices[start:start + batch_size]
        maps = predict_maps(model, torch.stack([base[i][0] for i in chunk]), base.output_size)
        for i, scene_maps in zip(chunk, maps):
            grasps = detect_grasps(*decode(scene_maps), max_grasps=max_grasps)
            results.append(grasp_success(grasps, base.rectangles(i)))
    return (sum(results) / len(results) if results else float("nan")), results
