"""The feature cache of a frozen backbone (seg_common.features)."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from seg_common.features import (StaleFeatureCache, build_feature_cache, feature_cache, fingerprint,
                                 load_feature_cache)

SIZE = (32, 32)


def _backbone(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU())


def _data(n=12, size=SIZE):
    g = torch.Generator().manual_seed(1)
    images = torch.randn(n, 3, *size, generator=g)
    targets = torch.randint(0, 4, (n, *size), generator=g)
    return TensorDataset(images, targets), [f"img_{i:03d}.jpg" for i in range(n)]


class Head(nn.Module):
    def __init__(self, channels=16, classes=4):
        super().__init__()
        torch.manual_seed(3)
        self.score = nn.Conv2d(channels, classes, 1)

    def forward(self, features):
        return F.interpolate(self.score(features), size=SIZE, mode="bilinear", align_corners=False)


def _train(head, loader, backbone=None, steps=6):
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
    done = 0
    while done < steps:
        for x, y in loader:
            if backbone is not None:
                with torch.no_grad():
                    x = backbone(x)
            loss = F.cross_entropy(head(x), y, ignore_index=0)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            done += 1
            if done == steps:
                break
    return head


def test_training_on_cached_features_equals_training_through_the_backbone(tmp_path):
    backbone = _backbone().eval()
    data, names = _data()
    cache = feature_cache(tmp_path / "f.pt", backbone, data, names, input_size=SIZE, batch_size=5)
    assert cache.features[0].shape == (12, 16, 4, 4) and cache.targets.dtype == torch.uint8
    through = _train(Head(), DataLoader(data, batch_size=4), backbone=backbone)
    cached = _train(Head(), DataLoader(load_feature_cache(tmp_path / "f.pt", cache.fingerprint).dataset(),
                                       batch_size=4))
    for a, b in zip(through.parameters(), cached.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_a_backbone_returning_several_levels_is_cached_level_by_level(tmp_path):
    class TwoLevels(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.Conv2d(4, 6, 3, stride=2, padding=1)

        def forward(self, x):
            low = self.a(x)
            return low, self.b(low)

    data, names = _data(5)
    cache = build_feature_cache(TwoLevels(), data, names, input_size=SIZE, batch_size=2)
    features, target = cache.dataset()[3]
    assert [f.shape for f in features] == [(4, 16, 16), (6, 8, 8)] and target.dtype == torch.int64


@pytest.mark.parametrize("change", ["weights", "architecture", "input_size", "image_list"])
def test_a_stale_cache_is_refused_with_what_differs(tmp_path, change):
    backbone = _backbone()
    data, names = _data()
    path = tmp_path / "f.pt"
    feature_cache(path, backbone, data, names, input_size=SIZE)
    size = SIZE
    if change == "weights":
        backbone = _backbone(seed=1)
    elif change == "architecture":
        backbone = nn.Sequential(*backbone[:3])
    elif change == "input_size":
        size = (48, 48)
        data, names = _data(size=size)
    else:
        names = names[:-1] + ["img_999.jpg"]
    with pytest.raises(StaleFeatureCache, match=str(path)) as error:
        feature_cache(path, backbone, data, names, input_size=size)
    assert "Delete the file" in str(error.value)
    expected = {"weights": "backbone weights", "architecture": "backbone architecture",
                "input_size": "input size", "image_list": "image list"}[change]
    assert expected in str(error.value)
    rebuilt = feature_cache(path, backbone, data, names, input_size=size, rebuild=True)
    assert load_feature_cache(path, fingerprint(backbone, size, names)).fingerprint == rebuilt.fingerprint


def test_the_fingerprint_ignores_where_the_images_live():
    backbone = _backbone()
    assert (fingerprint(backbone, SIZE, ["/a/x.jpg", "/a/y.jpg"])
            == fingerprint(backbone, SIZE, ["/drive/x.jpg", "/drive/y.jpg"]))


def test_images_of_another_size_than_the_cache_are_an_error():
    data, names = _data(size=(40, 40))
    with pytest.raises(ValueError, match="input_size"):
        build_feature_cache(_backbone(), data, names, input_size=SIZE)


def test_a_missing_cache_says_how_to_build_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="build_feature_cache"):
        load_feature_cache(tmp_path / "none.pt", {})
