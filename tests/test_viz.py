import matplotlib

matplotlib.use("Agg")
import numpy as np
import pytest
import torch

from seg_common import viz
from seg_common.data.voc import VOC_CLASSES, VOC_PALETTE, VOCSegmentation
from seg_common.widgets import draw_sample


def test_colorize_uses_the_palette_and_void_colour():
    mask = torch.tensor([[0, 1], [15, 255]])
    rgb = viz.colorize(mask, VOC_PALETTE)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert rgb[0, 1].tolist() == [128, 0, 0]           # aeroplane
    assert rgb[1, 0].tolist() == [192, 128, 128]       # person
    assert rgb[1, 1].tolist() == [224, 224, 192]       # void
    shown = viz.colorize(mask)                          # the display palette by default
    assert shown[0, 0].tolist() == [0, 0, 0] and shown[1, 1].tolist() == [224, 224, 192]
    assert shown[0, 1].tolist() == list(viz.DISPLAY_PALETTE[1])
    with pytest.raises(ValueError, match=r"\[H, W\] mask"):
        viz.colorize(torch.zeros(1, 2, 2, dtype=torch.long))


def _lab(rgb):
    """sRGB (0-255) -> CIELAB (D65), written out from the standard formulas."""
    c = np.asarray(rgb, float) / 255
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    xyz = c @ np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]).T
    f = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(f > 0.008856, np.cbrt(f), 7.787 * f + 16 / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def test_display_palette_tells_every_class_apart_where_vocs_does_not():
    def closest(palette):
        lab = _lab(palette[list(range(21)) + [255]])
        d = np.linalg.norm(lab[:, None] - lab[None], axis=-1) + np.eye(len(lab)) * 1e9
        return d.min()
    assert closest(viz.DISPLAY_PALETTE) > 35             # clearly different to anyone
    assert closest(VOC_PALETTE) < 20                       # VOC's own: some classes nearly alike
    assert viz.DISPLAY_PALETTE[0].tolist() == [0, 0, 0] and viz.DISPLAY_PALETTE[255].tolist() == [224, 224, 192]


def test_overlay_blends_objects_only():
    image = torch.full((3, 2, 2), 100, dtype=torch.uint8)
    mask = torch.tensor([[0, 1], [255, 1]])
    out = viz.overlay(image, mask, alpha=0.5, palette=VOC_PALETTE)
    assert out[0, 0].tolist() == [100, 100, 100] and out[1, 0].tolist() == [100, 100, 100]
    assert out[0, 1].tolist() == [114, 50, 50]         # (100 + 128) / 2, (100 + 0) / 2
    with pytest.raises(ValueError, match="alpha"):
        viz.overlay(image, mask, alpha=2)
    with pytest.raises(ValueError, match="differ in size"):
        viz.overlay(image, torch.zeros(3, 3, dtype=torch.long))


def test_grid_and_legend(sample_root):
    image, mask = VOCSegmentation(sample_root, "val")[0]
    fig = viz.show_grid([[image, mask], [image]], titles=["image", "mask"])
    assert len(fig.axes) == 4
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == [VOC_CLASSES[i] for i in viz.present_classes(mask)] + ["void (255)"]
    fig = draw_sample(VOCSegmentation(sample_root, "val"), 0, alpha=0.3)
    assert "alpha=0.30" in fig.axes[2].get_title()


def test_per_class_bars_checks_length():
    with pytest.raises(ValueError, match="21 class names"):
        viz.per_class_bars(np.ones(3))
    ax = viz.per_class_bars(np.arange(21))
    assert len(ax.patches) == 21


def test_plot_histories_shares_axes_and_puts_lr_on_a_log_axis():
    runs = {"A": [{"epoch": 1, "train_loss": 2.0, "lr": 0.1}, {"epoch": 2, "train_loss": 1.0, "lr": 0.01, "miou": 0.3}],
            "B": [{"epoch": 1, "train_loss": 3.0, "lr": 0.1, "miou": 0.1}, {"epoch": 2, "train_loss": 2.0, "lr": 0.1}]}
    fig = viz.plot_histories(runs)
    loss_ax, miou_ax, lr_ax = fig.axes
    assert [len(line.get_xdata()) for line in loss_ax.lines] == [2, 2]
    assert [list(line.get_xdata()) for line in miou_ax.lines] == [[2], [1]]   # validated epochs only
    assert lr_ax.get_yscale() == "log" and loss_ax.get_yscale() == "linear"


def test_prediction_grid_has_a_column_per_run(sample_root):
    image, mask = VOCSegmentation(sample_root, "val")[0]
    fig = viz.prediction_grid([image, image], [mask, mask], {"A": [mask, mask], "B": [mask, mask]})
    assert len(fig.axes) == 2 * 4 and fig.axes[3].get_title() == "B"
    with pytest.raises(ValueError, match="run 'A' has 1 predictions for 2 images"):
        viz.prediction_grid([image, image], [mask, mask], {"A": [mask]})


def test_seeds_are_drawn_as_mean_with_a_min_max_band():
    seeds = [[{"epoch": 1, "miou": v}, {"epoch": 2, "miou": v + 0.1}] for v in (0.1, 0.2, 0.6)]
    fig = viz.plot_histories({"A": seeds, "B": seeds[0]}, panels=("miou",), lr_panel=False)
    ax = fig.axes[0]
    mean_line, single = ax.lines
    assert list(mean_line.get_ydata()) == pytest.approx([0.3, 0.4]) and list(single.get_ydata()) == pytest.approx([0.1, 0.2])
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(0.1) and band.max() == pytest.approx(0.7)
    assert np.allclose(matplotlib.colors.to_rgb(mean_line.get_color()), ax.collections[0].get_facecolor()[0][:3])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["A", "B"]
    with pytest.raises(ValueError, match="same epochs"):
        viz.plot_histories({"A": [seeds[0], seeds[0][:1]]}, panels=("miou",), lr_panel=False)


def test_disagreement_map_by_hand():
    target = np.array([[0, 1, 2, 255]])
    first = np.array([[0, 1, 5, 3]])
    second = np.array([[0, 7, 2, 3]])
    assert viz.disagreement_map(first, second, target).tolist() == [[0, 1, 2, 5]]
    both_wrong = viz.disagreement_map(np.array([[4, 4]]), np.array([[4, 6]]), np.array([[1, 1]]))
    assert both_wrong.tolist() == [[3, 4]]
    with pytest.raises(ValueError, match="differ in size"):
        viz.disagreement_map(first, second, target[:, :2])


def test_pairs_and_two_run_figures(sample_root):
    image, mask = VOCSegmentation(sample_root, "val")[0]
    other = torch.zeros_like(mask)
    fig = viz.pairs_grid(image, mask, [("A", mask, "B", other), ("B", other, "C", mask)], scores={"A": 0.5},
                         row_labels=["network", "optimiser"])
    assert len(fig.axes) == 10 and fig.axes[2].get_title() == "A (mIoU 0.500)" and fig.axes[3].get_title() == "B"
    assert fig.axes[5].get_ylabel() == "optimiser" and fig.axes[9].get_title() == "B vs C"
    with pytest.raises(ValueError, match="1 row labels for 2 pairs"):
        viz.pairs_grid(image, mask, [("A", mask, "B", other), ("B", other, "C", mask)], row_labels=["x"])
    fig = viz.compare_two(image, mask, ("A: x", mask), ("B: y", other))
    assert len(fig.axes) == 5 and fig.axes[2].get_title() == "A: x"
    labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert "only A right" in labels and "only B right" in labels


def test_many_runs_get_one_legend_below_the_panels():
    runs = {name: [{"epoch": 1, "train_loss": 1.0}] for name in "ABCDE"}
    fig = viz.plot_histories(runs, panels=("train_loss",), lr_panel=False)
    assert fig.axes[0].get_legend() is None and len(fig.legends) == 1
    assert [t.get_text() for t in fig.legends[0].get_texts()] == list("ABCDE")


def test_seed_scores_show_every_seed_and_the_mean():
    runs = {"A": [{"final": {"miou": v}} for v in (0.1, 0.2, 0.6)], "B": [{"final": {"miou": 0.5}}]}
    fig = viz.plot_seed_scores(runs, keys=("miou",), references={"miou": 0.05})
    ax = fig.axes[0]
    dots = [c.get_offsets()[:, 1].tolist() for c in ax.collections if type(c).__name__ == "PathCollection"]
    assert sorted(sum(dots, [])) == pytest.approx([0.1, 0.2, 0.5, 0.6])
    means = sorted(seg.get_segments()[0][0][1] for seg in ax.collections if type(seg).__name__ == "LineCollection")
    assert means == pytest.approx([0.3, 0.5])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["A", "B"]
