"""Figures: coloured masks, overlays, image/mask grids, legends, per-class bars.

Every function draws with one palette, so the same class has the same colour in every panel and
every notebook. The default is ``DISPLAY_PALETTE``, not VOC's own: VOC's palette (the colours stored
in its PNG files, notebook 01) makes bicycle, cow, potted plant, sofa and train all shades of green
and cat nearly black, so predictions drawn with it are hard to read. ``DISPLAY_PALETTE`` keeps VOC's
black background and cream void and gives the 20 object classes colours chosen to lie far apart
from each other and from black (at least 37 units apart in CIELAB, where about 2.3 is the smallest
difference people see); pass ``palette=VOC_PALETTE`` for the dataset's own colours.
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

# Made by a greedy farthest-point search in CIELAB over sRGB colours with lightness above 40,
# starting from black (background) and VOC's cream (void); tests/test_viz.py checks the distances.
_DISPLAY_COLOURS = (
    (0, 0, 0),                                                            # background
    (136, 0, 255), (255, 0, 0), (0, 255, 0), (0, 136, 238), (255, 68, 170),      # aeroplane..bottle
    (255, 238, 0), (17, 119, 0), (136, 85, 0), (0, 255, 187), (0, 119, 119),     # bus..cow
    (153, 102, 136), (204, 119, 255), (238, 102, 102), (0, 238, 255), (187, 238, 119),  # table..person
    (255, 153, 0), (187, 204, 255), (255, 0, 238), (0, 85, 238), (221, 187, 85),  # plant..tv/monitor
)
DISPLAY_PALETTE = VOC_PALETTE.copy()
DISPLAY_PALETTE[: len(_DISPLAY_COLOURS)] = _DISPLAY_COLOURS



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


def colorize(mask, palette: np.ndarray = DISPLAY_PALETTE) -> np.ndarray:
    """``[H, W]`` class indices -> ``[H, W, 3]`` uint8 colours (255 = void gets ``palette[255]``)."""
    array = _numpy(mask).astype(np.int64)
    if array.ndim != 2:
        raise ValueError(f"colorize expects an [H, W] mask, got shape {array.shape}")
    if array.min() < 0 or array.max() >= len(palette):
        raise ValueError(f"mask values must lie in 0..{len(palette) - 1}, got {array.min()}..{array.max()}")
    return palette[array]


def overlay(image, mask, alpha: float = 0.5, palette: np.ndarray = DISPLAY_PALETTE,
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
                   palette: np.ndarray = DISPLAY_PALETTE, void: bool = True) -> list[Patch]:
    """Legend patches (colour + name) for ``class_ids`` (all classes by default)."""
    ids = range(len(names)) if class_ids is None else class_ids
    handles = [Patch(facecolor=palette[i] / 255, edgecolor="0.3", label=names[i]) for i in ids
               if i != IGNORE_INDEX]
    if void:
        handles.append(Patch(facecolor=palette[IGNORE_INDEX] / 255, edgecolor="0.3", label="void (255)"))
    return handles


def add_legend(fig: plt.Figure, class_ids: Sequence[int] | None = None, ncol: int = 11,
               names: Sequence[str] = VOC_CLASSES, palette: np.ndarray = DISPLAY_PALETTE,
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
              palette: np.ndarray = DISPLAY_PALETTE) -> plt.Figure:
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


def per_class_bars(values, names: Sequence[str] = VOC_CLASSES, palette: np.ndarray = DISPLAY_PALETTE,
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


def use_notebook_style(dpi: int = 100) -> None:
    """Inline figures for a notebook at ``dpi`` pixels per inch (matplotlib's default, 72, is small
    on a laptop screen). Plain PNG rather than "retina": a retina figure has four times the pixels,
    and the executed notebooks are committed with their figures."""
    plt.rcParams["figure.dpi"] = dpi
    try:
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:          # not in a notebook: nothing to set
        return
    set_matplotlib_formats("png")


def save_figure(fig: plt.Figure, path: str | Path, dpi: int = 100) -> Path:
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


def _seed_curves(history_or_seeds, key: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Epochs and values ``[seeds, epochs]`` of ``key``; several seeds must share their epochs."""
    seeds = history_or_seeds
    if not seeds:
        return None
    if isinstance(seeds[0], dict):        # one history
        seeds = [seeds]
    curves = []
    for history in seeds:
        points = [(h["epoch"], h[key]) for h in history if key in h]
        curves.append(points)
    if not curves[0]:
        return None
    epochs = [e for e, _ in curves[0]]
    for points in curves[1:]:
        if [e for e, _ in points] != epochs:
            raise ValueError(f"the seeds of one run must record {key!r} at the same epochs")
    return np.array(epochs), np.array([[v for _, v in points] for points in curves], dtype=float)


#: Line styles and markers of successive runs, so that runs whose curves coincide stay visible.
LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1, 1, 1)))
MARKERS = ("o", "s", "^", "D", "v", "P")


def plot_histories(histories: dict[str, list], *, panels: Sequence[str] = ("train_loss", "miou"),
                   lr_panel: bool = True, figsize_per_panel: tuple[float, float] = (5.0, 3.8),
                   titles: dict[str, str] | None = None) -> plt.Figure:
    """Curves of several runs on shared axes: one panel per history key (validated epochs only
    for validation keys), plus the learning rate on a log axis in its own panel.

    A run is one history (a list of per-epoch dicts) or a list of histories, one per seed; seeds
    are drawn as their mean with the min-max range shaded (say so in a title). Each run keeps its
    colour in every panel. ``titles`` renames panels (by key).
    """
    keys = list(panels) + (["lr"] if lr_panel else [])
    legend_below = len(histories) > 3       # many runs: one legend below, clear of the curves
    legend_inches = (0.27 * -(-len(histories) // 3) + 0.15) if legend_below else 0.0
    fig, axes = plt.subplots(1, len(keys), squeeze=False,
                             figsize=(figsize_per_panel[0] * len(keys), figsize_per_panel[1] + legend_inches))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, key in zip(axes[0], keys):
        for i, (name, runs) in enumerate(histories.items()):
            curve = _seed_curves(runs, key)
            if curve is None:
                continue
            epochs, values = curve
            colour = colours[i % len(colours)]
            label = name
            ax.plot(epochs, values.mean(0), marker=MARKERS[i % len(MARKERS)], markersize=4, color=colour,
                    linestyle=LINESTYLES[i % len(LINESTYLES)], label=label)
            if len(values) > 1:
                ax.fill_between(epochs, values.min(0), values.max(0), color=colour, alpha=0.18, linewidth=0)
        if key == "lr":
            ax.set_yscale("log")
        ax.set_title((titles or {}).get(key, key.replace("_", " ")))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    if legend_below:
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=10, frameon=False)
        fig.tight_layout(rect=(0, legend_inches / fig.get_figheight(), 1, 1))
    else:
        axes[0][0].legend(fontsize=9)
        fig.tight_layout()
    return fig


def plot_seed_scores(runs: dict[str, list[dict]], keys: Sequence[str] = ("miou", "mean_acc"),
                     titles: dict[str, str] | None = None, references: dict[str, float] | None = None,
                     panel_size: tuple[float, float] = (6.0, 3.8)) -> plt.Figure:
    """The final score of every seed, one column of dots per setting and a bar at the mean: the
    spread is visible at a glance. ``runs`` maps a setting to its recorded runs (as
    :func:`seg_common.engine.load_run` returns them); ``references`` draws dashed lines (e.g. the
    score of predicting background everywhere), by key."""
    fig, axes = plt.subplots(1, len(keys), figsize=(panel_size[0] * len(keys), panel_size[1]), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    names = list(runs)
    for ax, key in zip(axes[0], keys):
        for i, name in enumerate(names):
            values = np.array([run["final"][key] for run in runs[name]], dtype=float)
            offsets = np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else np.zeros(1)
            ax.scatter(i + offsets, values, s=36, color=colours[i % len(colours)], zorder=3)
            ax.hlines(values.mean(), i - 0.3, i + 0.3, color=colours[i % len(colours)], lw=2.5)
        if references and key in references:
            ax.axhline(references[key], color="0.4", ls="--", lw=1)
            ax.text(len(names) - 0.5, references[key], " all background", va="bottom", ha="right",
                    fontsize=9, color="0.3")
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=15, ha="right", fontsize=9)
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.set_title((titles or {}).get(key, key.replace("_", " ")))
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


#: Colours of :func:`disagreement_map`: (label, RGB).
AGREEMENT_COLOURS = (
    ("both right", (200, 200, 200)),
    ("only the first right", (31, 119, 180)),
    ("only the second right", (255, 127, 14)),
    ("both wrong, same class", (90, 90, 90)),
    ("both wrong, different classes", (214, 39, 40)),
    ("void (not scored)", (255, 255, 255)),
)


def disagreement_map(first, second, target, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """``[H, W]`` codes 0-5 comparing two predictions with the ground truth, in the order of
    :data:`AGREEMENT_COLOURS` (both right, only the first right, only the second right, both wrong
    the same way, both wrong differently, void)."""
    a, b, t = _numpy(first), _numpy(second), _numpy(target)
    if not a.shape == b.shape == t.shape:
        raise ValueError(f"predictions {a.shape}, {b.shape} and target {t.shape} differ in size")
    codes = np.full(t.shape, 4, dtype=np.uint8)
    codes[(a == t) & (b == t)] = 0
    codes[(a == t) & (b != t)] = 1
    codes[(a != t) & (b == t)] = 2
    codes[(a != t) & (b != t) & (a == b)] = 3
    codes[t == ignore_index] = 5
    return codes


def draw_disagreement(ax: plt.Axes, first, second, target, ignore_index: int = IGNORE_INDEX) -> dict[str, float]:
    """Draw :func:`disagreement_map` on ``ax``; return the share of scored pixels in each group."""
    codes = disagreement_map(first, second, target, ignore_index)
    colours = np.array([rgb for _, rgb in AGREEMENT_COLOURS], dtype=np.uint8)
    ax.imshow(colours[codes], interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    scored = codes != 5
    total = max(int(scored.sum()), 1)
    return {label: float((codes == i).sum()) / total for i, (label, _) in enumerate(AGREEMENT_COLOURS[:5])}


def agreement_handles(first: str = "the first", second: str = "the second") -> list[Patch]:
    """Legend patches of :func:`draw_disagreement`, with the two runs' names filled in."""
    return [Patch(facecolor=np.array(rgb) / 255, edgecolor="0.3",
                  label=label.replace("the first", first).replace("the second", second))
            for label, rgb in AGREEMENT_COLOURS]


def _two_legends(fig: plt.Figure, masks: Sequence, first: str, second: str, names, palette) -> None:
    """Class legend bottom left, agreement legend bottom right."""
    class_handles = legend_handles(present_classes(*masks), names, palette)
    fig.legend(handles=class_handles, loc="lower left", ncol=min(6, len(class_handles)), fontsize=9,
               frameon=False, bbox_to_anchor=(0.0, 0.0))
    fig.legend(handles=agreement_handles(first, second), loc="lower right", ncol=2, fontsize=9,
               frameon=False, bbox_to_anchor=(1.0, 0.0))


def displayable(image):
    """An image ready for display: ImageNet-normalised float tensors are denormalised, anything
    else (uint8 tensors, arrays) is returned as it is."""
    from .data.transforms import denormalize

    if isinstance(image, torch.Tensor) and image.is_floating_point():
        return denormalize(image)
    return image


def _panel_figure(n_rows: int, n_cols: int, aspect: float, panel_width: float, title_inches: float,
                  legend_inches: float) -> tuple[plt.Figure, np.ndarray]:
    """A grid of image panels of the right height for the image's ``aspect`` (height / width),
    with room for titles above each row and for legends below."""
    panel_height = panel_width * aspect
    height = n_rows * (panel_height + title_inches) + legend_inches
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(n_cols * (panel_width + 0.15), height), squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig, axes


def _finish_layout(fig: plt.Figure, legend_inches: float = 1.0) -> None:
    """Tight layout once the titles are set, keeping ``legend_inches`` free at the bottom."""
    fig.tight_layout(rect=(0, legend_inches / fig.get_figheight(), 1, 1))


def _short(name: str) -> str:
    """"A: FCN, SGD 1e-3" -> "A" (a run's key for compact legends)."""
    return name.split(":")[0]


def compare_two(image, target, first: tuple[str, object], second: tuple[str, object],
                names: Sequence[str] = VOC_CLASSES, palette: np.ndarray = DISPLAY_PALETTE,
                panel_width: float = 3.4) -> plt.Figure:
    """Image, ground truth, two runs' predictions and where they disagree, in one row.

    ``first`` and ``second`` are ``(name, prediction)``. The class legend (bottom left) lists the
    classes in the masks; the agreement legend (bottom right) explains the last panel, whose
    title gives the share of scored pixels only one of the two runs gets right.
    """
    (name_a, pred_a), (name_b, pred_b) = first, second
    shown = displayable(image)
    target_np = _numpy(target)
    fig, axes = _panel_figure(1, 5, target_np.shape[0] / target_np.shape[1], panel_width, 0.4, 1.0)
    axes = axes[0]
    axes[0].imshow(to_hwc_uint8(shown))
    for ax, mask in zip(axes[1:4], (target, pred_a, pred_b)):
        ax.imshow(colorize(mask, palette), interpolation="nearest")
    shares = draw_disagreement(axes[4], pred_a, pred_b, target)
    titles = ["image", "ground truth", name_a, name_b,
              f"only {_short(name_a)} right: {shares['only the first right']:.0%}, "
              f"only {_short(name_b)}: {shares['only the second right']:.0%}"]
    for ax, title in zip(axes, titles):
        ax.set_title(title, fontsize=10)
    _two_legends(fig, [target, pred_a, pred_b], _short(name_a), _short(name_b), names, palette)
    _finish_layout(fig)
    return fig


def pairs_grid(image, target, pairs: Sequence[tuple[str, object, str, object]],
               scores: dict[str, float] | None = None, row_labels: Sequence[str] | None = None,
               names: Sequence[str] = VOC_CLASSES, palette: np.ndarray = DISPLAY_PALETTE,
               panel_width: float = 3.0) -> plt.Figure:
    """One row per single change: image, ground truth, the prediction before the change, after
    it, and where the two disagree. ``pairs`` holds ``(name_before, pred_before, name_after,
    pred_after)``; ``scores`` (optional) adds each run's score to its title; ``row_labels``
    (optional) names each change at the left of its row."""
    if row_labels is not None and len(row_labels) != len(pairs):
        raise ValueError(f"{len(row_labels)} row labels for {len(pairs)} pairs")
    shown = displayable(image)
    target_np = _numpy(target)
    fig, axes = _panel_figure(len(pairs), 5, target_np.shape[0] / target_np.shape[1], panel_width, 0.45, 1.0)
    masks = [target]
    label = (lambda n: f"{n} (mIoU {scores[n]:.3f})" if scores and n in scores else n)
    for r, (row, (before, pred_before, after, pred_after)) in enumerate(zip(axes, pairs)):
        row[0].imshow(to_hwc_uint8(shown))
        for ax, mask in zip(row[1:4], (target, pred_before, pred_after)):
            ax.imshow(colorize(mask, palette), interpolation="nearest")
        masks += [pred_before, pred_after]
        draw_disagreement(row[4], pred_before, pred_after, target)
        titles = ["image" if r == 0 else "", "ground truth" if r == 0 else "", label(before), label(after),
                  f"{_short(before)} vs {_short(after)}"]
        for ax, title in zip(row, titles):
            ax.set_title(title, fontsize=9.5)
        if row_labels is not None:
            row[0].set_ylabel(row_labels[r], fontsize=11)
    _two_legends(fig, masks, "before", "after", names, palette)
    _finish_layout(fig)
    return fig


def prediction_grid(images: Sequence, targets: Sequence, predictions: dict[str, Sequence],
                    names: Sequence[str] = VOC_CLASSES, palette: np.ndarray = DISPLAY_PALETTE) -> plt.Figure:
    """Rows are images; columns are image, ground truth, then each run's prediction - one palette
    and one legend for all panels. ``images`` may be ImageNet-normalised ``[3, H, W]`` tensors."""
    for name, preds in predictions.items():
        if len(preds) != len(images):
            raise ValueError(f"run {name!r} has {len(preds)} predictions for {len(images)} images")
    rows = []
    for i, (image, target) in enumerate(zip(images, targets)):
        shown = displayable(image)
        rows.append([shown, target] + [preds[i] for preds in predictions.values()])
    return show_grid(rows, titles=["image", "ground truth", *predictions], names=names, palette=palette)
