"""Thin ipywidgets explorers. The drawing lives in :mod:`seg_common.viz` so tests can reach it;
these functions only wire sliders to it (ipywidgets 7.7, as on Colab, is enough)."""
from __future__ import annotations

import matplotlib.pyplot as plt

from . import viz


def draw_sample(dataset, index: int, alpha: float = 0.5) -> plt.Figure:
    """Image, mask and overlay of ``dataset[index]`` with a legend of the classes in it."""
    image, mask = dataset[index]
    ids = getattr(dataset, "ids", None)
    label = f"item {index}" + (f" ({ids[index]})" if ids else "")
    return viz.show_grid([[image, mask, viz.overlay(image, mask, alpha)]],
                         titles=[label, "mask (palette indices)", f"overlay (objects), alpha={alpha:.2f}"])


def browse_dataset(dataset, alpha: float = 0.5) -> None:
    """Show sliders for the item index and the overlay alpha over :func:`draw_sample`."""
    import ipywidgets as widgets

    def show(index: int, alpha: float) -> None:
        draw_sample(dataset, index, alpha)
        plt.show()

    widgets.interact(
        show,
        index=widgets.IntSlider(value=0, min=0, max=len(dataset) - 1, description="image"),
        alpha=widgets.FloatSlider(value=alpha, min=0.0, max=1.0, step=0.05, description="alpha"),
    )


def explore_transposed_conv(size: int = 4, kernel: int = 3, stride: int = 2, padding: int = 0) -> None:
    """Sliders for a transposed convolution's kernel, stride and padding: output shape and overlap map."""
    import ipywidgets as widgets

    def show(kernel: int, stride: int, padding: int) -> None:
        out = (size - 1) * stride - 2 * padding + kernel
        if out < 1:
            print(f"output size (n-1)s - 2p + k = {out}: padding too large for this kernel")
            return
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        counts = viz.draw_overlap(ax, size, kernel, stride, padding)
        inner = counts[kernel:-kernel, kernel:-kernel]          # away from the borders
        even = "even" if inner.numel() == 0 or inner.min() == inner.max() else "uneven: expect a checkerboard"
        print(f"output {out}x{out} = ({size}-1)*{stride} - 2*{padding} + {kernel}; overlap {even}")
        plt.show()

    widgets.interact(
        show,
        kernel=widgets.IntSlider(value=kernel, min=1, max=8, description="kernel"),
        stride=widgets.IntSlider(value=stride, min=1, max=4, description="stride"),
        padding=widgets.IntSlider(value=padding, min=0, max=3, description="padding"),
    )


def compare_runs(images, targets, predictions: dict[str, list], first: str | None = None,
                 second: str | None = None) -> None:
    """Pick two runs and an image: both predictions side by side and the pixels where they
    disagree (:func:`seg_common.viz.compare_two`). ``predictions`` maps a run's name to one
    prediction per image."""
    import ipywidgets as widgets

    names = list(predictions)
    if len(names) < 2:
        raise ValueError("compare_runs needs the predictions of at least two runs")
    for name, preds in predictions.items():
        if len(preds) != len(images):
            raise ValueError(f"run {name!r} has {len(preds)} predictions for {len(images)} images")

    def show(first: str, second: str, index: int) -> None:
        viz.compare_two(images[index], targets[index], (first, predictions[first][index]),
                        (second, predictions[second][index]))
        plt.show()

    widgets.interact(
        show,
        first=widgets.Dropdown(options=names, value=first or names[0], description="first run"),
        second=widgets.Dropdown(options=names, value=second or names[1], description="second run"),
        index=widgets.IntSlider(value=0, min=0, max=len(images) - 1, description="image"),
    )
