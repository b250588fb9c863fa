import pytest

from seg_common.benchmark import measure_step
from seg_common.models import build_model


def test_cpu_memory_grows_with_the_batch_and_adam_keeps_two_copies_of_the_weights():
    """Measured in fresh processes: a bigger batch needs more memory, and Adam's state (two
    float32 tensors the size of the weights) adds at least 8 bytes per parameter - and at most one
    more copy, for the temporaries of its update (with tiny activations, the update is the peak)."""
    small = measure_step("fcn32s_resnet18", 1, (64, 64), steps=1)
    big = measure_step("fcn32s_resnet18", 16, (64, 64), steps=1)
    adam = measure_step("fcn32s_resnet18", 1, (64, 64), steps=1, optimizer="adam")
    assert small["measure"].startswith("process peak") and small["seconds_per_step"] > 0
    assert big["peak_mb"] > small["peak_mb"] + 20
    params = sum(p.numel() for p in build_model("fcn32s_resnet18").parameters())
    copies = (adam["peak_mb"] - small["peak_mb"]) / (4 * params / 2**20)
    assert 1.8 < copies < 3.3


def test_bad_arguments_are_refused_before_anything_runs():
    with pytest.raises(ValueError, match="Choose one of"):
        measure_step("unet_resnet1", 2)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        measure_step("unet_resnet18", 2, optimizer="rmsprop")
    with pytest.raises(ValueError, match="at least 1"):
        measure_step("unet_resnet18", 0)


def test_the_measure_does_not_inherit_the_parents_peak():
    """A child of a process that once held a lot of memory must still see its own, smaller peak."""
    import torch

    hog = torch.ones(400 * 2**20 // 4)                   # 400 MB in this (the parent) process
    hog += 1
    r = measure_step("fcn32s_resnet18", 1, (64, 64), steps=1)
    assert 20 < r["peak_mb"] < 350
    del hog


def test_a_sliding_window_needs_less_memory_than_the_whole_image_on_a_large_image():
    from seg_common.benchmark import measure_inference
    whole = measure_inference("fcn32s_resnet18", (768, 768), device="cpu")
    window = measure_inference("fcn32s_resnet18", (768, 768), window=(128, 128), device="cpu")
    assert whole["seconds_per_image"] > 0 and window["seconds_per_image"] > 0
    if whole["peak_mb"] is None:
        pytest.skip("this OS reports no peak memory")
    # Both keep the full-size logit map (21 floats per pixel); the window bounds the intermediate
    # activations only - for a ResNet-18 FCN on a 768x768 image, about a fifth of the peak.
    assert window["peak_mb"] < 0.9 * whole["peak_mb"]
    with pytest.raises(ValueError, match="Unknown model"):
        measure_inference("fcn33s", (64, 64))
