import urllib.error

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from seg_common.models import FCN8s, FCN32s, bilinear_kernel, build_model, fcn_resnet18_d2l
from seg_common.models import backbones


def d2l_fcn(num_classes=21):
    """The FCN exactly as the d2l book builds it (section "Fully Convolutional Networks")."""
    pretrained_net = torchvision.models.resnet18(weights=None)
    net = nn.Sequential(*list(pretrained_net.children())[:-2])
    net.add_module("final_conv", nn.Conv2d(512, num_classes, kernel_size=1))
    net.add_module("transpose_conv", nn.ConvTranspose2d(num_classes, num_classes, kernel_size=64,
                                                        padding=16, stride=32))
    return net


def test_fcn32s_is_the_books_fcn():
    torch.manual_seed(0)
    ours = fcn_resnet18_d2l().eval()
    book = d2l_fcn().eval()
    state = {k.removeprefix("features."): v for k, v in ours.state_dict().items()}
    book.load_state_dict(state)                      # same parameter names and shapes
    x = torch.randn(1, 3, 320, 480)
    with torch.no_grad():
        assert book[:-2](x).shape == (1, 512, 10, 15)    # the book's printed feature shape
        assert torch.allclose(ours(x), book(x), atol=1e-5)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in book.parameters())


@pytest.mark.parametrize("model_cls", [FCN32s, FCN8s])
@pytest.mark.parametrize("size", [(320, 480), (375, 500), (500, 333), (97, 131)])
def test_prediction_covers_the_whole_image(model_cls, size):
    model = model_cls(num_classes=5).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, *size)).shape == (2, 5, *size)


def test_padding_does_not_change_the_result_where_nothing_was_padded():
    # An input that is already a multiple of 32 goes through untouched.
    torch.manual_seed(0)
    model = FCN32s(num_classes=3).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        direct = model.transpose_conv(model.final_conv(model.features(x)))
        assert torch.equal(model(x), direct)


def test_bilinear_transposed_conv_equals_interpolate_inside():
    layer = nn.ConvTranspose2d(3, 3, kernel_size=4, stride=2, padding=1, bias=False)
    layer.weight.data.copy_(bilinear_kernel(3, 3, 4))
    x = torch.rand(1, 3, 9, 11)
    with torch.no_grad():
        ours = layer(x)
    ref = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert torch.allclose(ours[..., 1:-1, 1:-1], ref[..., 1:-1, 1:-1], atol=1e-6)
    assert not torch.allclose(ours[..., 0, :], ref[..., 0, :], atol=1e-3)   # the border differs
    k = bilinear_kernel(2, 2, 64)
    assert torch.equal(k[0, 1], torch.zeros(64, 64)) and k[0, 0].max() < 1


def test_fcn8s_skips_start_at_zero_and_learn():
    model = FCN8s(num_classes=4)
    assert model.score8.weight.abs().sum() == 0 and model.score16.weight.abs().sum() == 0
    out = model(torch.randn(2, 3, 64, 64))
    F.cross_entropy(out, torch.randint(0, 4, (2, 64, 64))).backward()
    assert model.score8.weight.grad.abs().sum() > 0 and model.score16.weight.grad.abs().sum() > 0


def test_build_model_lists_valid_names():
    assert isinstance(build_model("fcn8s_resnet18", num_classes=3), FCN8s)
    with pytest.raises(ValueError, match="Unknown model .fcn_resnet81.. Choose one of: deeplabv3plus_resnet101, .*fcn32s_resnet18, fcn8s_resnet18"):
        build_model("fcn_resnet81")


def test_failed_weight_download_says_how_to_go_on(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(backbones.models, "resnet18", offline)
    with pytest.raises(RuntimeError, match="Could not load the ImageNet weights.*pretrained=False"):
        fcn_resnet18_d2l(pretrained=True)


# ---- ResNet U-Net ----------------------------------------------------------------------------

from seg_common.models import ResNetUNet  # noqa: E402


@pytest.mark.parametrize("size", [(320, 480), (375, 500), (97, 131), (32, 32)])
def test_unet_predicts_at_the_input_size(size):
    model = build_model("unet_resnet18", num_classes=6).eval()
    assert isinstance(model, ResNetUNet)
    with torch.no_grad():
        assert model(torch.randn(1, 3, *size)).shape == (1, 6, *size)


def test_unet_encoder_is_torchvisions_resnet18():
    torch.manual_seed(0)
    unet = ResNetUNet().eval()
    ref = torchvision.models.resnet18(weights=None).eval()
    # Copy the U-Net's encoder weights into a plain ResNet-18 and compare the stride-32 features.
    mapping = {}
    for k, v in unet.state_dict().items():
        if k.startswith("layer0.0."):
            mapping["conv1." + k[len("layer0.0."):]] = v
        elif k.startswith("layer0.1."):
            mapping["bn1." + k[len("layer0.1."):]] = v
        elif k.startswith("layer1.1."):
            mapping["layer1." + k[len("layer1.1."):]] = v
        elif k.startswith(("layer2.", "layer3.", "layer4.")):
            mapping[k] = v
    missing = ref.load_state_dict(mapping, strict=False).missing_keys
    assert set(missing) == {"fc.weight", "fc.bias"}
    x = torch.randn(1, 3, 64, 96)
    backbone = nn.Sequential(*list(ref.children())[:-2])
    with torch.no_grad():
        ours = unet.layer4(unet.layer3(unet.layer2(unet.layer1(unet.layer0(x)))))
        assert torch.allclose(ours, backbone(x), atol=1e-5)


def test_unet_skip_connections_carry_gradient_to_every_stage():
    model = ResNetUNet(num_classes=3)
    out = model(torch.randn(2, 3, 64, 64))
    F.cross_entropy(out, torch.randint(0, 3, (2, 64, 64))).backward()
    for name in ["layer0.0.weight", "layer1.1.0.conv1.weight", "layer4.0.conv1.weight",
                 "up0.mix.0.0.weight", "up_full.mix.0.0.weight"]:
        assert dict(model.named_parameters())[name].grad.abs().sum() > 0, name


def test_unet_has_the_layers_of_smps_unet():
    """Same structure as segmentation-models-pytorch's Unet(resnet18): every decoder convolution
    and the head have the same shapes, so the parameter counts agree exactly."""
    smp = pytest.importorskip("segmentation_models_pytorch")
    ref = smp.Unet("resnet18", encoder_weights=None, classes=21)
    ours = ResNetUNet(21)
    shapes = lambda model, prefix: [tuple(p.shape) for n, p in model.named_parameters() if n.startswith(prefix)]
    decoder = [s for block in ("up3", "up2", "up1", "up0", "up_full") for s in shapes(ours, block)]
    assert decoder == shapes(ref, "decoder")
    assert shapes(ours, "classifier") == shapes(ref, "segmentation_head")
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
