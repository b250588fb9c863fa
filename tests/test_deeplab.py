import pytest
import torch
import torchvision
from torchvision.models.segmentation.deeplabv3 import ASPP as TorchvisionASPP

from seg_common.models.deeplab import ASPP, AtrousResNet, DeepLabV3Plus


@pytest.mark.parametrize("name,channels", [("resnet18", (64, 512)), ("resnet50", (256, 2048))])
@pytest.mark.parametrize("output_stride", [8, 16, 32])
def test_atrous_backbone_strides(name, channels, output_stride):
    net = AtrousResNet(name, output_stride).eval()
    with torch.no_grad():
        low, high = net(torch.randn(1, 3, 64, 96))
    assert low.shape == (1, channels[0], 16, 24)
    assert high.shape == (1, channels[1], 64 // output_stride, 96 // output_stride)


def test_resnet18_dilated_by_hand_keeps_torchvisions_weights_and_os32_output():
    """At output stride 32 nothing is dilated: the features equal torchvision's ResNet-18's."""
    torch.manual_seed(0)
    ours = AtrousResNet("resnet18", 32).eval()
    ref = torchvision.models.resnet18(weights=None).eval()
    state = {k.replace("stem.0.", "conv1.").replace("stem.1.", "bn1."): v for k, v in ours.state_dict().items()}
    ref.load_state_dict(state, strict=False)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        feats = torch.nn.Sequential(*list(ref.children())[:-2])(x)
        assert torch.allclose(ours(x)[1], feats, atol=1e-5)


@pytest.mark.parametrize("output_stride", [8, 16])
def test_dilation_by_hand_equals_torchvisions_replace_stride_with_dilation(output_stride):
    torch.manual_seed(0)
    ours = AtrousResNet("resnet50", output_stride).eval()
    dilate = {8: [False, True, True], 16: [False, False, True]}[output_stride]
    ref = torchvision.models.resnet50(weights=None, replace_stride_with_dilation=dilate).eval()
    state = {k.replace("stem.0.", "conv1.").replace("stem.1.", "bn1."): v for k, v in ours.state_dict().items()}
    ref.load_state_dict(state, strict=False)
    for ours_conv, ref_conv in zip([m for m in ours.modules() if isinstance(m, torch.nn.Conv2d)],
                                   [m for m in ref.modules() if isinstance(m, torch.nn.Conv2d)]):
        assert (ours_conv.stride, ours_conv.dilation, ours_conv.padding) == (ref_conv.stride, ref_conv.dilation, ref_conv.padding)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        feats = torch.nn.Sequential(*list(ref.children())[:-2])(x)
        assert torch.allclose(ours(x)[1], feats, atol=1e-4)


def test_aspp_equals_torchvisions_with_the_same_weights():
    torch.manual_seed(0)
    ours, ref = ASPP(64, (2, 4, 6), 32).eval(), TorchvisionASPP(64, [2, 4, 6], 32).eval()
    ref.load_state_dict(ours.state_dict())                    # same layout, same keys
    x = torch.randn(2, 64, 9, 11)
    with torch.no_grad():
        assert torch.allclose(ours(x), ref(x), atol=1e-6)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())


def test_separable_aspp_has_far_fewer_weights():
    dense, separable = ASPP(512, separable=False), ASPP(512, separable=True)
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert count(separable) < 0.5 * count(dense)


@pytest.mark.parametrize("size", [(64, 64), (97, 131), (33, 47)])
@pytest.mark.parametrize("output_stride", [8, 16])
def test_deeplabv3plus_predicts_at_the_input_size(size, output_stride):
    model = DeepLabV3Plus(5, "resnet18", output_stride).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, *size)).shape == (1, 5, *size)


def test_clear_errors():
    with pytest.raises(ValueError, match="Choose one of"):
        AtrousResNet("resnet19")
    with pytest.raises(ValueError, match="8 or 16"):
        DeepLabV3Plus(21, "resnet18", output_stride=32)


def _count(module):
    return sum(p.numel() for p in module.parameters())


def test_head_parameters_against_torchvisions_deeplabv3_resnet50_by_hand():
    """torchvision's DeepLabV3 head is ASPP + one 3x3 conv (256 -> 256) + BN + ReLU + 1x1 classifier.
    DeepLabV3+ adds exactly the decoder's extra pieces: the 48-channel 1x1 projection of layer1's 256
    channels (+ its BN) and the 3x3 conv that mixes the 256 + 48 concatenated channels (+ its BN)."""
    from torchvision.models.segmentation import deeplabv3_resnet50
    ours = DeepLabV3Plus(21, "resnet50", 16)
    ref = deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=21, aux_loss=False)
    assert _count(ours.backbone) == _count(ref.backbone)
    assert _count(ours.aspp) == _count(ref.classifier[0])
    extra = (256 * 48 + 2 * 48) + (304 * 256 * 9 + 2 * 256)
    assert _count(ours) - _count(ours.backbone) == _count(ref.classifier) + extra


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50"])
@pytest.mark.parametrize("output_stride", [8, 16])
def test_separable_variant_has_exactly_smps_parameter_count(backbone, output_stride):
    """segmentation-models-pytorch builds DeepLabV3+ with depthwise-separable convs in ASPP and the
    decoder; with ``separable=True`` ours has the same number of weights. (smp puts one 256 -> 256
    separable conv after ASPP, at stride 16, where ours mixes twice after the concatenation at
    stride 4: the same weights, a little more compute in ours, as in the paper.) The dense default
    is larger by the 3x3 convs that separable ones replace (40.4 M vs 26.7 M for ResNet-50)."""
    smp = pytest.importorskip("segmentation_models_pytorch")
    ref = smp.DeepLabV3Plus(encoder_name=backbone, encoder_weights=None, classes=21,
                            encoder_output_stride=output_stride)
    ours = DeepLabV3Plus(21, backbone, output_stride, separable=True)
    assert _count(ours.backbone) == _count(ref.encoder)
    assert _count(ours) == _count(ref)
    dense = DeepLabV3Plus(21, backbone, output_stride)
    assert _count(dense) > 1.2 * _count(ref)


def test_atrous_rates_default_to_the_papers_and_can_be_set():
    rates = lambda m: [m.aspp.convs[i][0].dilation[0] for i in (1, 2, 3)]
    assert rates(DeepLabV3Plus(3, "resnet18", 16)) == [6, 12, 18]
    assert rates(DeepLabV3Plus(3, "resnet18", 8)) == [12, 24, 36]
    small = DeepLabV3Plus(3, "resnet18", 16, atrous_rates=(1, 2, 3))
    assert rates(small) == [1, 2, 3] and small.atrous_rates == (1, 2, 3)
    with pytest.raises(ValueError, match="positive"):
        DeepLabV3Plus(3, "resnet18", 16, atrous_rates=(0, 2))
