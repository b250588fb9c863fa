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
