"""Figures: coloured masks, overlays, image/mask grids, legends, per-class bars.

Every function draws with one palette (VOC's by default, void in its own cream colour), so the same
class has the same colour in every panel and every notebook.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Patch

from .data.voc import IGNORE_INDEX, VOC_CLASSES, VOC_PALETTE
from .profile import pictures_dir



def _numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def to_hwc_uint8(image) -> np.ndarray:
    """An image as ``[H, W, 3]`` uint8 for display, from ``[3, H, W]`` or ``[H, W, 3]``, uint8 or
    float in [0, 1]."""
    array = _numpy(image)
    if array.ndim == 3 and array.shape[0] == 3 and array.shape[-1] != 3:
        array = array.transpose(1, 2, 0)
    if array.dtype != np.uint8:
        array = (np.clip(array, 0, 1) * 255).round().astype(np.uint8)
    return array


def colorize(mask, palette: np.ndarray = VOC_PALETTE) -> np.ndarray:
    """``[H, W]`` class indices -> ``[H, W, 3]`` uint8 colours (255 = void gets ``palette[255]``)."""
    array = _numpy(mask).astype(np.int64)
    if array.ndim != 2:
        raise ValueError(f"colorize expects an [H, W] mask, got shape {array.shape}")
    if array.min() < 0 or array.max() >= len(palette):
        raise ValueError(f"mask values must lie in 0..{len(palette) - 1}, got {array.min()}..{array.max()}")
    return palette[array]


def overlay(image, mask, alpha: float = 0.5, palette: np.ndarray = VOC_PALETTE,
            ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Blend the coloured mask over the image; background (0) and void stay unblended."""
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    rgb = to_hwc_uint8(image).astype(np.float32)
    m = _numpy(mask)
    if rgb.shape[:2] != m.shape:
        raise ValueError(f"image {rgb.shape[:2]} and mask {m.shape} differ in size")
    colours = colorize(m, palette).astype(np.float32)
    objects = ((m != 0) & (m != ignore_index))[..., None]
    blended = np.where(objects, (1 - alpha) * rgb + alpha * colours, rgb)
    return blended.round().astype(np.uint8)


def mask_edges(mask) -> np.ndarray:
    """``[H, W]`` bool: pixels whose right or lower neighbour has another label."""
    m = _numpy(mask)
    edge = np.zeros(m.shape, dtype=bool)
    edge[:, 1:] |= m[:, 1:] != m[:, :-1]
    edge[1:, :] |= m[1:, :] != m[:-1, :]
    return edge


def draw_outlines(image, mask, color: Sequence[int] = (255, 255, 0)) -> np.ndarray:
    """The image with the label borders of ``mask`` painted in ``color`` (to check alignment)."""
    picture = to_hwc_uint8(image).copy()
    picture[mask_edges(mask)] = color
    return picture


def legend_handles(class_ids: Sequence[int] | None = None, names: Sequence[str] = VOC_CLASSES,
                   palette: np.ndarray = VOC_PALETTE, void: bool = True) -> list[Patch]:
    """Legend patches (colour + name) for ``class_ids`` (all classes by default)."""
    ids = range(len(names)) if class_ids is None else class_ids
    handles = [Patch(facecolor=palette[i] / 255, edgecolor="0.3", label=names[i]) for i in ids
               if i != IGNORE_INDEX]
    if void:
        handles.append(Patch(facecolor=palette[IGNORE_INDEX] / 255, edgecolor="0.3", label="void (255)"))
    return handles


def add_legend(fig: plt.Figure, class_ids: Sequence[int] | None = None, ncol: int = 11,
               names: Sequence[str] = VOC_CLASSES, palette: np.ndarray = VOC_PALETTE,
               fontsize: int = 11) -> None:
    """One legend for the whole figure, below the panels."""
    handles = legend_handles(class_ids, names, palette)
    fig.legend(handles=handles, loc="lower center", ncol=min(ncol, len(handles)),
               fontsize=fontsize, frameon=False, handlelength=1.2, columnspacing=1.0)


def present_classes(*masks, ignore_index: int = IGNORE_INDEX) -> list[int]:
    """Sorted class ids that occur in any of the masks (void excluded)."""
    ids: set[int] = set()
    for m in masks:
        ids.update(int(v) for v in np.unique(_numpy(m)))
    ids.discard(ignore_index)
    return sorted(ids)


def show_grid(rows: Sequence[Sequence], titles: Sequence[str] | None = None,
              row_labels: Sequence[str] | None = None, panel_size: float = 2.6,
              legend: bool = True, names: Sequence[str] = VOC_CLASSES,
              palette: np.ndarray = VOC_PALETTE) -> plt.Figure:
    """A grid of panels: each row is a sequence of images (``[3, H, W]`` / ``[H, W, 3]``) and
    masks (``[H, W]`` integer class maps, coloured with the palette). One legend lists the classes
    that appear in any mask."""
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(panel_size * n_cols * 1.25, panel_size * n_rows),
                             squeeze=False)
    masks = []
    for r, row in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(row):
                ax.axis("off")
                continue
            item = _numpy(row[c])
            if item.ndim == 2:
                masks.append(item)
                ax.imshow(colorize(item, palette), interpolation="nearest")
            else:
                ax.imshow(to_hwc_uint8(item))
            if r == 0 and titles is not None and c < len(titles):
                ax.set_title(titles[c], fontsize=11)
        if row_labels is not None:
            axes[r, 0].set_ylabel(row_labels[r], fontsize=10)
    if legend and masks:
        add_legend(fig, present_classes(*masks), names=names, palette=palette)
        n_legend_rows = int(np.ceil((len(present_classes(*masks)) + 1) / 11))
        fig.tight_layout(rect=(0, 0.05 * n_legend_rows * 3 / max(n_rows, 1) + 0.02, 1, 1))
    else:
        fig.tight_layout()
    return fig


def per_class_bars(values, names: Sequence[str] = VOC_CLASSES, palette: np.ndarray = VOC_PALETTE,
                   ylabel: str = "", title: str = "", ax: plt.Axes | None = None,
                   log: bool = False) -> plt.Axes:
    """A bar per class, coloured with the class colour (NaN bars are left empty)."""
    vals = _numpy(values).astype(float)
    if len(vals) != len(names):
        raise ValueError(f"got {len(vals)} values for {len(names)} class names")
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 3.6))
    colours = palette[: len(names)] / 255
    ax.bar(range(len(vals)), np.nan_to_num(vals), color=colours, edgecolor="0.3", linewidth=0.6)
    ax.set_xticks(range(len(vals)))
    ax.set_xticklabels(names, rotation=55, ha="right", fontsize=9)
    ax.set_xlim(-0.6, len(vals) - 0.4)
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    return ax


def save_figure(fig: plt.Figure, path: str | Path, dpi: int = 80) -> Path:
    """Save a figure as PNG at a modest dpi (committed figures stay small) and return the path.

    A bare file name (``"01_classes.png"``) goes into the project's ``pictures/`` folder.
    """
    path = Path(path)
    if path.parent == Path("."):
        path = pictures_dir() / path
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    return path


def overlap_counts(size: int, kernel: int, stride: int, padding: int = 0) -> torch.Tensor:
    """How many kernel placements write to each output pixel of a transposed convolution.

    A ``size x size`` input of ones through a ``kernel x kernel`` kernel of ones: the result counts
    the overlaps. Uneven counts (kernel not divisible by stride) are what draws checkerboards.
    """
    ones = torch.ones(1, 1, size, size)
    return torch.nn.functional.conv_transpose2d(
        ones, torch.ones(1, 1, kernel, kernel), stride=stride, padding=padding)[0, 0]


def draw_overlap(ax: plt.Axes, size: int, kernel: int, stride: int, padding: int = 0,
                 vmax: float | None = None) -> torch.Tensor:
    """Draw :func:`overlap_counts` as an annotated heat map and return the counts."""
    counts = overlap_counts(size, kernel, stride, padding)
    ax.imshow(counts, cmap="viridis", vmin=0, vmax=vmax or float(counts.max()), interpolation="nearest")
    if counts.numel() <= 400:
        for (i, j), value in np.ndenumerate(counts.numpy()):
            ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=8,
                    color="white" if value < 0.6 * float(counts.max()) else "black")
    ax.set_title(f"k={kernel}, s={stride}, p={padding}: {size}x{size} -> "
                 f"{counts.shape[0]}x{counts.shape[1]}", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    return counts


def plot_histories(histories: dict[str, list[dict]], *, panels: Sequence[str] = ("train_loss", "miou"),
                   lr_panel: bool = True, figsize_per_panel: tuple[float, float] = (5.0, 3.8)) -> plt.Figure:
    """Curves of several runs on shared axes: one panel per history key (validated epochs only
    for validation keys), plus the learning rate on a log axis in its own panel."""
    keys = list(panels) + (["lr"] if lr_panel else [])
    fig, axes = plt.subplots(1, len(keys), figsize=(figsize_per_panel[0] * len(keys), figsize_per_panel[1]),
                             squeeze=False)
    for ax, key in zip(axes[0], keys):
        for name, history in histories.items():
            points = [(h["epoch"], h[key]) for h in history if key in h]
            if points:
                ax.plot(*zip(*points), marker="o", markersize=3, label=name)
        if key == "lr":
            ax.set_yscale("log")
        ax.set_title(key.replace("_", " "))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=9)
    fig.tight_layout()
    return fig


def prediction_grid(images: Sequence, targets: Sequence, predictions: dict[str, Sequence],
                    names: Sequence[str] = VOC_CLASSES, palette: np.ndarray = VOC_PALETTE) -> plt.Figure:
    """Rows are images; columns are image, ground truth, then each run's prediction - one palette
    and one legend for all panels. ``images`` may be ImageNet-normalised ``[3, H, W]`` tensors."""
    from .data.transforms import denormalize

    for name, preds in predictions.items():
        if len(preds) != len(images):
            raise ValueError(f"run {name!r} has {len(preds)} predictions for {len(images)} images")
    rows = []
    for i, (image, target) in enumerate(zip(images, targets)):
        shown = denormalize(image) if isinstance(image, torch.Tensor) and image.is_floating_point() else image
        rows.append([shown, target] + [preds[i] for preds in predictions.values()])
    return show_grid(rows, titles=["image", "ground truth", *predictions], names=names, palette=palette)
