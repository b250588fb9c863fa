import pytest
import torch
import torch.nn.functional as F

from seg_common.models import PSPNet, PyramidPoolingModule, build_model


def _count(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("size", [(64, 64), (97, 131), (33, 47)])
def test_pspnet_predicts_at_the_input_size_in_train_and_eval(size):
    torch.manual_seed(0)
    model = PSPNet(5, "resnet18")
    x = torch.randn(2, 3, *size)
    main, aux = model.train()(x)
    assert main.shape == aux.shape == (2, 5, *size)
    with torch.no_grad():
        out = model.eval()(x)
    assert torch.is_tensor(out) and out.shape == (2, 5, *size)
    assert PSPNet(5, "resnet18", aux=False).train()(x).shape == (2, 5, *size)   # no aux head: one output


def test_pyramid_pooling_by_hand():
    """The first C channels are the input; the bin-1 branch is ReLU(BN(conv(global mean))) everywhere;
    the bin-2 branch upsamples a 2x2 grid of quadrant means."""
    torch.manual_seed(0)
    ppm = PyramidPoolingModule(8, bins=(1, 2)).eval()
    x = torch.randn(1, 8, 6, 6)
    with torch.no_grad():
        out = ppm(x)
        assert out.shape == (1, 16, 6, 6) and ppm.out_channels == 16
        assert torch.equal(out[:, :8], x)
        conv, bn = ppm.stages[0][1], ppm.stages[0][2]
        expected = F.relu(bn(conv(x.mean((2, 3), keepdim=True))))
        assert torch.allclose(out[:, 8:12], expected.expand(-1, -1, 6, 6), atol=1e-6)
        quadrants = torch.stack([torch.stack([x[..., 3 * i:3 * i + 3, 3 * j:3 * j + 3].mean((2, 3)) for j in range(2)], -1)
                                 for i in range(2)], -2)
        conv, bn = ppm.stages[1][1], ppm.stages[1][2]
        grid = F.relu(bn(conv(quadrants)))
        assert torch.allclose(out[:, 12:], F.interpolate(grid, size=(6, 6), mode="bilinear"), atol=1e-6)


def test_dilated_to_output_stride_8():
    model = PSPNet(3, "resnet50", aux=True)
    b = model.backbone
    with torch.no_grad():
        mid = b.layer3(b.layer2(b.layer1(b.stem(torch.randn(1, 3, 64, 64)))))
        assert mid.shape == (1, 1024, 8, 8) and b.layer4(mid).shape == (1, 2048, 8, 8)


def test_parameters_against_smps_pspnet_by_hand():
    """segmentation-models-pytorch's PSPNet differs on purpose, and exactly as counted here: by
    default it reads the features of layer2 (encoder_depth=3) and is not dilated; with
    encoder_depth=5 its encoder is our dilated backbone weight for weight (dilation adds none). Its PPM has no
    BatchNorm (but a bias) in the bin-1 branch, it mixes with a 1x1 conv where PSPNet uses a 3x3,
    and classifies with a 3x3 conv; it has no auxiliary head unless asked."""
    smp = pytest.importorskip("segmentation_models_pytorch")
    ref = smp.PSPNet(encoder_name="resnet50", encoder_weights=None, encoder_depth=5, classes=21)
    ours = PSPNet(21, "resnet50", aux=True)
    assert _count(ours.backbone) == _count(ref.encoder)
    C, R, K = 2048, 512, 21
    ours_head = 4 * (C * R + 2 * R) + (2 * C * 512 * 9 + 2 * 512) + (512 * K + K)
    ours_aux = (1024 * 256 * 9 + 2 * 256) + (256 * K + K)
    smp_head = 3 * (C * R + 2 * R) + (C * R + R) + (2 * C * 512 + 2 * 512) + (512 * K * 9 + K)
    assert _count(ours.ppm) + _count(ours.head) == ours_head
    assert _count(ours.aux_head) == ours_aux
    assert _count(ref) - _count(ref.encoder) == smp_head


def test_registered_and_aux_loss_trains():
    from seg_common.losses import with_aux
    torch.manual_seed(0)
    model = build_model("pspnet_resnet18", 4).train()
    x, y = torch.randn(2, 3, 48, 48), torch.randint(0, 4, (2, 48, 48))
    loss = with_aux(weight=0.4)(model(x), y)
    loss.backward()
    assert model.aux_head[0].weight.grad is not None and model.head[0].weight.grad is not None
