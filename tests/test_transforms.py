import numpy as np
import pytest
import torch
from torchvision import tv_tensors

from seg_common.data.transforms import (IMAGENET_MEAN, IMAGENET_STD, denormalize, eval_transforms,
                                        train_transforms)
from seg_common.data.voc import VOCSegmentation

STEP = 10   # gray level per class: the image *is* the mask, so any misalignment shows


def encoded_pair(mask: torch.Tensor):
    """An image whose three channels all equal mask * STEP (void -> 0)."""
    m = mask.clone()
    m[m == 255] = 0
    image = (m * STEP).to(torch.uint8).expand(3, -1, -1).clone()
    return tv_tensors.Image(image), tv_tensors.Mask(mask.clone())


def decode(image: torch.Tensor) -> torch.Tensor:
    return torch.round(image[0] * 255 / STEP).long()


def interior(mask: torch.Tensor, radius: int = 2) -> torch.Tensor:
    """Labelled pixels whose (2 radius + 1)^2 neighbourhood holds one label only: away from label
    borders, where bilinear resampling of the image blends neighbouring classes."""
    m = mask[None, None].float()
    k = 2 * radius + 1
    high = torch.nn.functional.max_pool2d(m, k, stride=1, padding=radius)
    low = -torch.nn.functional.max_pool2d(-m, k, stride=1, padding=radius)
    return ((high == low)[0, 0]) & (mask != 255)


@pytest.mark.parametrize("seed", range(6))
def test_every_random_op_keeps_image_and_mask_aligned(sample_root, seed):
    _, mask = VOCSegmentation(sample_root, "train")[seed]
    t = train_transforms((160, 200), base_size=200, rotation=10, hflip=0.5, blur=0, color_jitter=0,
                         normalize=False)
    torch.manual_seed(seed)
    image, out_mask = t(*encoded_pair(mask))
    assert image.shape == (3, 160, 200) and out_mask.shape == (160, 200)
    assert image.dtype == torch.float32 and out_mask.dtype == torch.int64
    # Bilinear resampling of the image blends classes on label borders (thin parts are mostly
    # border); away from borders every pixel must match.
    valid = interior(out_mask)
    assert valid.sum() > 1000
    agree = (decode(image)[valid] == out_mask[valid]).float().mean().item()
    assert agree > 0.995, agree


def test_a_misaligned_pipeline_would_fail_that_check(sample_root):
    _, mask = VOCSegmentation(sample_root, "train")[0]
    image, out_mask = encoded_pair(mask)
    shifted = torch.roll(out_mask, shifts=(25, 40), dims=(0, 1))
    valid = interior(shifted)
    agree = (decode(image.float() / 255)[valid] == shifted[valid]).float().mean().item()
    assert agree < 0.995


def test_padding_fills_image_with_zero_and_mask_with_void():
    mask = tv_tensors.Mask(torch.full((20, 30), 7, dtype=torch.int64))
    image = tv_tensors.Image(torch.full((3, 20, 30), 200, dtype=torch.uint8))
    t = train_transforms((64, 64), base_size=20, scale_range=(1.0, 1.0), rotation=0, hflip=0,
                         color_jitter=0, normalize=False)
    out_image, out_mask = t(image, mask)
    assert out_mask.shape == (64, 64)
    assert set(out_mask.unique().tolist()) == {7, 255}
    assert (out_image[:, out_mask == 255] == 0).all()
    assert torch.allclose(out_image[:, out_mask == 7], torch.tensor(200 / 255))


def test_rotation_corners_are_void():
    mask = tv_tensors.Mask(torch.full((100, 100), 3, dtype=torch.int64))
    image = tv_tensors.Image(torch.full((3, 100, 100), 90, dtype=torch.uint8))
    t = train_transforms((100, 100), base_size=100, scale_range=(1.0, 1.0), rotation=30, hflip=0,
                         color_jitter=0, normalize=False)
    torch.manual_seed(1)
    _, out_mask = t(image, mask)
    assert (out_mask == 255).any() and (out_mask == 3).any()
    assert set(out_mask.unique().tolist()) <= {3, 255}      # nearest: no blended labels


def test_eval_keeps_the_whole_image_and_normalizes(sample_root):
    raw_image, raw_mask = VOCSegmentation(sample_root, "val")[0]
    image, mask = VOCSegmentation(sample_root, "val", eval_transforms())[0]
    assert image.shape == raw_image.shape and torch.equal(mask, raw_mask)
    expected = (raw_image.float() / 255 - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)
    assert torch.allclose(image, expected, atol=1e-5)
    assert torch.allclose(denormalize(image), raw_image.float() / 255, atol=1e-5)


def test_color_jitter_and_blur_never_touch_the_mask(sample_root):
    _, mask = VOCSegmentation(sample_root, "val")[1]
    t = train_transforms(mask.shape, base_size=min(mask.shape), scale_range=(1.0, 1.0), rotation=0,
                         hflip=0, blur=1.0, color_jitter=0.5)
    image = tv_tensors.Image(torch.randint(0, 255, (3, *mask.shape), dtype=torch.uint8))
    _, out_mask = t(image, tv_tensors.Mask(mask.clone()))
    assert torch.equal(out_mask, mask)


def test_bad_scale_range():
    with pytest.raises(ValueError, match="scale_range"):
        train_transforms(scale_range=(2.0, 0.5))


def test_pad_collate_pads_images_with_zero_and_masks_with_void():
    from seg_common.data.transforms import pad_collate

    a = (torch.ones(3, 4, 5), torch.full((4, 5), 2))
    b = (torch.ones(3, 6, 3), torch.full((6, 3), 7))
    images, masks = pad_collate([a, b], multiple=4)
    assert images.shape == (2, 3, 8, 8) and masks.shape == (2, 8, 8)
    assert torch.equal(masks[0, :4, :5], a[1]) and (masks[0, 4:] == 255).all() and (masks[0, :, 5:] == 255).all()
    assert torch.equal(masks[1, :6, :3], b[1]) and (masks[1, :, 3:] == 255).all()
    assert images[0, :, :4, :5].eq(1).all() and images[0, :, 4:].eq(0).all()


def test_eval_resize_scales_the_shorter_side_and_keeps_labels(sample_root):
    raw_image, raw_mask = VOCSegmentation(sample_root, "val")[0]
    image, mask = VOCSegmentation(sample_root, "val", eval_transforms(size=100))[0]
    h, w = raw_mask.shape
    assert min(mask.shape) == 100 and image.shape[-2:] == mask.shape
    assert abs(mask.shape[0] / mask.shape[1] - h / w) < 0.02
    assert set(mask.unique().tolist()) <= set(raw_mask.unique().tolist())     # nearest: no new labels
    with pytest.raises(ValueError, match="positive"):
        eval_transforms(size=0)
