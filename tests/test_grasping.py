"""Grasp maps as dense prediction: GG-CNN, the depth-input PSPNet, their loss and distillation term,
mirroring of grasp maps, the downsampled dataset and the success-rate evaluation (hand-computed
cases, the maps of mirrored rectangles, PyTorch's own losses and an RGB network fed grey images)."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from seg_common.data.cornell import (CornellGrasping, Grasp, RandomGraspFlip, encode, flip_grasp_maps,
                                     grasp_maps, success_rate)
from seg_common.data.sample_cornell import make_sample_cornell
from seg_common.losses import DistillationLoss, with_aux
from seg_common.models import GGCNN, Distiller, PSPNet, depth_conv1, grasp_mse


@pytest.fixture(scope="module")
def cornell(tmp_path_factory):
    return make_sample_cornell(tmp_path_factory.mktemp("grasp") / "cornell", size=0.05)   # 2 scenes per folder


def test_ggcnn_has_ggcnns_shapes_and_weight_count():
    model = GGCNN()
    # conv 1*32*81+32, 32*16*25+16, 16*8*9+8; tconv 8*8*9+8, 8*16*25+16, 16*32*81+32; heads 4*(32*4+1)
    assert sum(p.numel() for p in model.parameters()) == 2624 + 12816 + 1160 + 584 + 3216 + 41504 + 516
    assert model(torch.zeros(2, 1, 300, 300)).shape == (2, 4, 300, 300)
    assert model(torch.zeros(1, 1, 100, 100)).shape == (1, 4, 100, 100)     # resized back to the input


def test_grasp_mse_is_the_sum_of_each_maps_mean_squared_error():
    out, target = torch.randn(2, 4, 5, 6), torch.randn(2, 4, 5, 6)
    expected = sum(F.mse_loss(out[:, k], target[:, k]) for k in range(4))
    assert torch.allclose(grasp_mse(out, target), expected)
    with pytest.raises(ValueError, match="differ in shape"):
        grasp_mse(out, target[:, :3])


def test_summed_conv1_gives_a_depth_image_the_rgb_networks_response_to_it_in_grey():
    torch.manual_seed(0)
    rgb = PSPNet(4, "resnet18", aux=False).eval()
    depth = depth_conv1(PSPNet(4, "resnet18", aux=False), "average").eval()
    depth.load_state_dict({k: v for k, v in rgb.state_dict().items() if k != "backbone.stem.0.weight"}, strict=False)
    depth.backbone.stem[0].weight.data = rgb.backbone.stem[0].weight.data.sum(1, keepdim=True)
    x = torch.randn(1, 1, 64, 64)
    assert torch.allclose(depth(x), rgb(x.expand(-1, 3, -1, -1)), atol=1e-4)


def test_a_1x1_conv_puts_three_channels_in_front_of_the_unchanged_network():
    model = depth_conv1(PSPNet(4, "resnet18", aux=False), "1x1").eval()
    first = model.backbone.stem[0]
    assert isinstance(first[0], nn.Conv2d) and (first[0].in_channels, first[0].out_channels) == (1, 3)
    assert first[1].in_channels == 3
    assert model(torch.zeros(1, 1, 64, 64)).shape == (1, 4, 64, 64)
    with pytest.raises(ValueError, match="average"):
        depth_conv1(PSPNet(4, "resnet18", aux=False), "mean")


def test_regression_distillation_adds_alpha_times_the_students_error_against_the_teacher():
    torch.manual_seed(0)
    student, teacher = PSPNet(4, "resnet18", aux=True), PSPNet(4, "resnet18", aux=False)
    model = Distiller(student, teacher).train()
    x, y = torch.randn(2, 1 * 3, 64, 64), torch.randn(2, 4, 64, 64)
    loss_fn = DistillationLoss(with_aux(grasp_mse, 0.4), alpha=0.5, distill_fn=grasp_mse)
    (main, aux), teacher_maps = model(x)
    expected = grasp_mse(main, y) + 0.4 * grasp_mse(aux, y) + 0.5 * grasp_mse(main, teacher_maps)
    loss = loss_fn(((main, aux), teacher_maps), y)
    assert torch.allclose(loss, expected)
    assert set(loss_fn.last) == {"main", "aux", "distill"}
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())


def test_a_mirrored_scene_has_the_maps_of_the_mirrored_rectangles():
    rectangles = np.stack([Grasp((40.0, 30.0), math.radians(25), 30.0, 12.0).rectangle(),
                           Grasp((20.0, 60.0), math.radians(-60), 24.0, 10.0).rectangle()])
    maps = torch.from_numpy(encode(*grasp_maps(rectangles, (64, 80))))
    for dim, axis, size in ((-1, 1, 80), (-2, 0, 64)):
        mirrored = rectangles.copy()
        mirrored[..., axis] = size - 1 - mirrored[..., axis]
        expected = torch.from_numpy(encode(*grasp_maps(mirrored, (64, 80))))
        _, flipped = flip_grasp_maps(torch.zeros(1, 64, 80), maps, dim)
        inside = (flipped[0] > 0) & (expected[0] > 0)
        assert (flipped[0] != expected[0]).float().mean() < 0.01        # rasterised edges may differ
        assert torch.allclose(flipped[1:, inside], expected[1:, inside], atol=1e-5)
        assert (flipped[2, inside] * maps[2].flip(dim)[inside] <= 0).all()   # sin 2a changed sign
    with pytest.raises(ValueError, match="dim"):
        flip_grasp_maps(torch.zeros(1, 4, 4), torch.zeros(4, 4, 4), 0)


def test_random_flips_keep_the_pair_consistent(cornell):
    scenes = CornellGrasping(cornell, downsample=3)
    torch.manual_seed(0)
    x, y = RandomGraspFlip(scenes)[0]
    x0, y0 = scenes[0]
    matches = [(flip_grasp_maps(*flip_grasp_maps(x0, y0, -1), -2) if h and v else flip_grasp_maps(x0, y0, -1)
                if h else flip_grasp_maps(x0, y0, -2) if v else (x0, y0)) for h in (0, 1) for v in (0, 1)]
    assert any(torch.equal(x, mx) and torch.equal(y, my) for mx, my in matches)


def test_downsampling_averages_the_input_and_subsamples_the_targets(cornell):
    full, small = CornellGrasping(cornell), CornellGrasping(cornell, downsample=3)
    (x, y), (xs, ys) = full[1], small[1]
    assert xs.shape == (1, 100, 100) and ys.shape == (4, 100, 100)
    assert torch.allclose(xs[0, 5, 7], x[0, 15:18, 21:24].mean(), atol=1e-6)
    assert torch.equal(ys[:, 5, 7], y[:, 16, 22])
    assert np.array_equal(small.rectangles(1), full.rectangles(1))            # still in 300 px crop coordinates
    with pytest.raises(ValueError, match="divides"):
        CornellGrasping(cornell, downsample=7)


class _Oracle(nn.Module):
    """Returns the ground-truth maps of the scenes it is given (looked up by the input)."""

    def __init__(self, scenes):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))
        self.items = [scenes[i] for i in range(len(scenes))]

    def forward(self, x):
        return torch.stack([next(y for xi, y in self.items if torch.equal(xi, image)) for image in x])


def test_success_rate_is_one_for_the_true_maps_and_zero_for_empty_maps(cornell):
    scenes = CornellGrasping(cornell, downsample=3)
    rate, per_scene = success_rate(_Oracle(scenes), scenes)
    assert rate == 1.0 and per_scene == [True] * len(scenes)
    empty = nn.Conv2d(1, 4, 1)
    nn.init.zeros_(empty.weight), nn.init.zeros_(empty.bias)
    subset = torch.utils.data.Subset(scenes, [1, 2])
    assert success_rate(empty, subset) == (0.0, [False, False])


def test_every_sample_scene_has_one_continuous_grasp_strip(cornell):
    """The sample's positives overlap, so any point of the quality strip is a ground-truth grasp
    centre (the first version's islands left a network nothing to learn in minutes)."""
    from skimage.measure import label

    scenes = CornellGrasping(cornell)
    for i in range(len(scenes)):
        quality = grasp_maps(scenes.rectangles(i), (300, 300))[0] > 0
        assert label(quality, connectivity=2).max() == 1, f"scene {i}: the strip is broken"
