import shutil

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torchvision import tv_tensors

from seg_common.data import prepare_voc
from seg_common.data.voc import VOC_CLASSES, VOC_COLORMAP, VOC_PALETTE, VOCSegmentation
from seg_common.profile import Profile


def test_items_match_torchvision_voc(sample_root):
    ours = VOCSegmentation(sample_root, "val")
    theirs = torchvision.datasets.VOCSegmentation(sample_root, year="2012", image_set="val")
    assert len(ours) == len(theirs) == 20
    for i in range(0, 20, 3):
        image, mask = ours[i]
        ref_image, ref_mask = theirs[i]
        assert isinstance(image, tv_tensors.Image) and isinstance(mask, tv_tensors.Mask)
        assert image.dtype == torch.uint8 and image.shape[0] == 3
        assert mask.dtype == torch.int64 and mask.ndim == 2
        np.testing.assert_array_equal(image.permute(1, 2, 0).numpy(), np.asarray(ref_image))
        np.testing.assert_array_equal(mask.numpy(), np.asarray(ref_mask))


def test_palette_constants():
    assert len(VOC_CLASSES) == 21 and VOC_CLASSES[15] == "person"
    # The d2l book's VOC_COLORMAP, as printed in its chapter.
    assert VOC_COLORMAP[:4] == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]]
    assert VOC_COLORMAP[20] == [0, 64, 128]
    assert tuple(VOC_PALETTE[255]) == (224, 224, 192)


def test_real_voc_files(realdata):
    ds = VOCSegmentation(realdata, "val")
    assert ds.ids == ["2007_000033"]
    image, mask = ds[0]
    assert tuple(mask.shape) == (366, 500) and tuple(image.shape) == (3, 366, 500)
    assert set(mask.unique().tolist()) == {0, 1, 255}
    with Image.open(ds.masks[0]) as png:
        np.testing.assert_array_equal(np.array(png.getpalette()[:768]).reshape(256, 3), VOC_PALETTE)
    train = VOCSegmentation(realdata, "train")
    assert set(train[0][1].unique().tolist()) == {0, 9, 12, 255}


def test_real_sbd_mask_via_train_aug(realdata, tmp_path):
    shutil.copytree(realdata / "VOCdevkit", tmp_path / "VOCdevkit")
    splits = tmp_path / "VOCdevkit/VOC2012/ImageSets/Segmentation"
    (splits / "train_aug.txt").write_text("2007_000129\n")
    image, mask = VOCSegmentation(tmp_path, "train_aug")[0]
    assert tuple(mask.shape) == (500, 334)                 # portrait
    assert set(mask.unique().tolist()) == {0, 2, 15, 255}


def test_train_aug_reads_grayscale_masks(sample_root):
    ds = VOCSegmentation(sample_root, "train_aug")
    assert ds.mask_dir.name == "SegmentationClassAug" and len(ds) == 24
    assert ds[0][1].dtype == torch.int64


def test_transforms_are_applied_jointly(sample_root):
    calls = []

    def record(image, mask):
        calls.append((type(image), type(mask)))
        return image[:, :10, :10], mask[:10, :10]

    image, mask = VOCSegmentation(sample_root, "train", transforms=record)[0]
    assert calls == [(tv_tensors.Image, tv_tensors.Mask)]
    assert tuple(image.shape) == (3, 10, 10) and tuple(mask.shape) == (10, 10)


def test_masks_go_through_the_transforms_as_uint8_and_come_out_int64(sample_root):
    """The label map enters the transforms as stored (uint8: an eighth of int64's bytes to scale,
    rotate and crop) and the item's mask is int64 (the API), with the same labels as an int64 mask
    sent through the same random transforms: nearest-neighbour, flips, crops and the 255 fill."""
    from torchvision.transforms import v2
    from seg_common.data.transforms import train_transforms
    seen = []
    augment = train_transforms((96, 112), base_size=120, scale_range=(0.5, 2.0), rotation=10, color_jitter=0.2)
    spy = v2.Compose([v2.Lambda(lambda m: seen.append(m.dtype) or m, tv_tensors.Mask), augment])
    ds = VOCSegmentation(sample_root, "train", transforms=spy)
    plain = VOCSegmentation(sample_root, "train")
    labels = set()
    for index in range(6):
        torch.manual_seed(index)
        image, mask = ds[index]
        assert seen[-1] == torch.uint8 and mask.dtype == torch.int64 and isinstance(mask, tv_tensors.Mask)
        raw_image, raw_mask = plain[index]                        # int64, as before the change
        torch.manual_seed(index)
        ref_image, ref_mask = augment(raw_image, raw_mask)
        assert ref_mask.dtype == torch.int64
        assert torch.equal(mask, ref_mask) and torch.equal(image, ref_image)
        labels |= set(mask.unique().tolist())
    assert 255 in labels and len(labels) > 3                      # void (band, padding, corners) and classes
    # Transforms without a ToDtype still give an int64 mask; the cached array is not written into.
    ds = VOCSegmentation(sample_root, "train", transforms=lambda i, m: (i, m.fill_(7)), cache=True)
    first = ds[0][1]
    assert first.dtype == torch.int64 and (first == 7).all()
    assert not (ds.read_mask(0) == 7).all() and not (ds._cache[0][1] == 7).all()


# ---- bad input: each error names the file and the fix ----------------------------------------

def test_missing_root_names_path_and_command(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"VOCdevkit/VOC2012 does not exist.*download_data.sh voc"):
        VOCSegmentation(tmp_path / "nowhere")


def test_missing_split_lists_available(sample_copy):
    with pytest.raises(FileNotFoundError, match=r"test.txt is missing. Available splits: train, train_aug, trainval, val"):
        VOCSegmentation(sample_copy, "test")


def test_missing_aug_split_points_to_voc_aug(sample_copy):
    (sample_copy / "VOCdevkit/VOC2012/ImageSets/Segmentation/train_aug.txt").unlink()
    with pytest.raises(FileNotFoundError, match="download_data.sh voc-aug"):
        VOCSegmentation(sample_copy, "train_aug")


def test_image_without_mask(sample_copy):
    ds = VOCSegmentation(sample_copy, "val")
    ds.masks[2].unlink()
    with pytest.raises(FileNotFoundError, match=f"{ds.ids[2]}.jpg has no mask: expected .*{ds.ids[2]}.png"):
        VOCSegmentation(sample_copy, "val")


def test_listed_image_missing(sample_copy):
    ds = VOCSegmentation(sample_copy, "val")
    ds.images[0].unlink()
    with pytest.raises(FileNotFoundError, match=f"lists {ds.ids[0]} but its image"):
        VOCSegmentation(sample_copy, "val")


def test_size_mismatch(sample_copy):
    ds = VOCSegmentation(sample_copy, "val")
    with Image.open(ds.masks[1]) as png:
        png.crop((0, 0, 100, 80)).save(ds.masks[1])
    with pytest.raises(ValueError, match=r"is \d+x\d+ but its mask .* is 100x80"):
        ds[1]


def test_bad_mask_value(sample_copy):
    ds = VOCSegmentation(sample_copy, "val")
    with Image.open(ds.masks[0]) as png:
        array = np.asarray(png).copy()
        palette = png.getpalette()
    array[0, :3] = [21, 77, 254]
    bad = Image.fromarray(array)
    bad.putpalette(palette)
    bad.save(ds.masks[0])
    with pytest.raises(ValueError, match=rf"{ds.ids[0]}.png has values \[21, 77, 254\] that are neither"):
        ds[0]


def test_rgb_mask_is_rejected(sample_copy):
    ds = VOCSegmentation(sample_copy, "val")
    with Image.open(ds.masks[0]) as png:
        png.convert("RGB").save(ds.masks[0])
    with pytest.raises(ValueError, match="has mode RGB; expected a palette"):
        ds[0]


def test_prepare_voc_full_without_data_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="download_data.sh voc.*SEG_PROFILE=sample"):
        prepare_voc(Profile("full", tmp_path))


def test_cache_gives_the_same_items_and_reads_each_file_once(sample_root):
    plain = VOCSegmentation(sample_root, "val")
    cached = VOCSegmentation(sample_root, "val", cache=True)
    reads = []
    read_image = cached.read_image
    cached.read_image = lambda i: reads.append(i) or read_image(i)
    for _ in range(2):
        for i in (0, 3, -1):
            image, mask = cached[i]
            ref_image, ref_mask = plain[i]
            assert torch.equal(image, ref_image) and torch.equal(mask, ref_mask)
    assert reads == [0, 3, len(plain) - 1]         # the second round came from memory
    image, _ = cached[0]
    image[0, 0, 0] = 255 - image[0, 0, 0]          # modifying an item must not modify the cache
    assert torch.equal(cached[0][0], plain[0][0])
    with pytest.raises(IndexError):
        cached[len(cached)]
