import pytest
import torch
from torch import nn

from seg_common import precision
from seg_common.engine import evaluate, predict, train_one_epoch


def test_formats_by_device(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert precision.autocast_dtype("cpu") == torch.bfloat16
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert precision.autocast_dtype("cpu") is None                  # emulated bf16 is slower
    assert precision.autocast_dtype("cpu", True) == torch.bfloat16  # unless asked for
    assert precision.autocast_dtype("cpu", False) is None
    assert precision.autocast_dtype("cpu", "fp16") == torch.float16
    assert precision.autocast_dtype("mps") is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert precision.autocast_dtype("cuda") == torch.float16         # a T4: fp16 ...
    assert precision.needs_grad_scaler("cuda", torch.float16)        # ... with a gradient scaler
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert precision.autocast_dtype("cuda") == torch.bfloat16
    assert not precision.needs_grad_scaler("cuda", torch.bfloat16)
    assert not precision.needs_grad_scaler("cpu", torch.float16)
    with pytest.raises(ValueError, match="amp must be one of"):
        precision.autocast_dtype("cpu", "half")


def test_describe_says_why_a_cpu_trains_in_float32(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert precision.describe("cpu") == "cpu: bfloat16 mixed precision"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert precision.describe("cpu").startswith("cpu: float32 (this CPU has no native bfloat16")
    assert precision.describe("cpu", False) == "cpu: float32"           # asked for: nothing to explain
    assert precision.describe("mps") == "mps: float32"


class Recorder(nn.Module):
    """A 1x1 conv that records the dtype its convolution computed in."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.seen = []

    def forward(self, x):
        out = self.conv(x)
        self.seen.append(out.dtype)
        return out


@pytest.mark.parametrize("amp, expected", [("bf16", torch.bfloat16), (False, torch.float32)])
def test_the_engine_runs_the_forward_pass_in_the_chosen_format_and_the_loss_in_float32(amp, expected):
    torch.manual_seed(0)
    model = Recorder()
    batches = [(torch.randn(2, 3, 4, 4), torch.randint(0, 4, (2, 4, 4)))]
    losses = []

    def loss_fn(logits, target):
        losses.append(logits.dtype)
        return nn.functional.cross_entropy(logits, target)

    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    train_one_epoch(model, batches, opt, device="cpu", loss_fn=loss_fn, amp=amp, progress=False)
    scores = evaluate(model, batches, 4, device="cpu", amp=amp, progress=False)
    predict(model, batches[0][0][0], amp=amp)
    assert model.seen == [expected] * 3 and losses == [torch.float32]
    assert model.conv.weight.dtype == torch.float32 and 0 <= scores["miou"] <= 1
