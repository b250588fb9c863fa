import math

import pytest
import torch
from torch import nn

from seg_common.data.transforms import eval_transforms, pad_collate, train_transforms
from seg_common.data.voc import VOCSegmentation
from seg_common.engine import (BEST, LAST, CheckpointError, compare_settings, evaluate, fit, load_checkpoint,
                               load_weights, predict, save_checkpoint, save_weights, summarize_runs, train_one_epoch)
from seg_common.metrics import ConfusionMatrix


class TinyNet(nn.Module):
    """A small fully convolutional net with BatchNorm and dropout (RNG + running stats)."""

    def __init__(self, num_classes=21, width=8):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Dropout2d(0.2), nn.Conv2d(width, num_classes, 1))

    def forward(self, x):
        return self.body(x)


def loaders(root, seed=0, batch_size=4):
    train = VOCSegmentation(root, "train", train_transforms((48, 64), base_size=60))
    val = VOCSegmentation(root, "val", eval_transforms())
    train_loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(train, range(12)), batch_size=batch_size, shuffle=True,
        generator=torch.Generator().manual_seed(seed))
    val_loader = torch.utils.data.DataLoader(torch.utils.data.Subset(val, range(4)), batch_size=2,
                                             collate_fn=pad_collate)
    return train_loader, val_loader


def run(root, epochs, ckpt=None, resume=False, lr=0.05):
    torch.manual_seed(0)
    model = TinyNet()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    train_loader, val_loader = loaders(root)
    history = fit(model, train_loader, val_loader, optimizer=opt, scheduler=sched, epochs=epochs,
                  num_classes=21, checkpoint_dir=ckpt, resume=resume, device="cpu",
                  settings={"lr": lr}, progress=False, verbose=False)
    return model, opt, history


def test_resume_gives_the_same_weights_as_training_straight(sample_root, tmp_path):
    straight, _, history4 = run(sample_root, 4)
    run(sample_root, 2, ckpt=tmp_path)                          # "interrupted" after 2 epochs
    assert load_checkpoint(tmp_path / LAST)["epoch"] == 2
    resumed, opt, history = run(sample_root, 4, ckpt=tmp_path, resume=True)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert [h["train_loss"] for h in history] == [h["train_loss"] for h in history4]
    assert history[2]["lr"] == pytest.approx(0.05 * 0.7 ** 2)   # the scheduler resumed too


def test_resume_without_the_rng_state_would_differ(sample_root, tmp_path):
    # The check above is sharp: resuming with fresh random state gives other weights.
    straight, _, _ = run(sample_root, 3)
    run(sample_root, 2, ckpt=tmp_path)
    state = load_checkpoint(tmp_path / LAST)
    state["rng"]["torch"] = torch.manual_seed(123).get_state()
    torch.save(state, tmp_path / LAST)
    resumed, _, _ = run(sample_root, 3, ckpt=tmp_path, resume=True)
    assert not all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(),
                                                     resumed.state_dict().values()))


def test_history_and_checkpoint_contents(sample_root, tmp_path):
    model, _, history = run(sample_root, 2, ckpt=tmp_path)
    keys = {"epoch", "lr", "train_loss", "train_seconds", "val_loss", "pixel_acc", "mean_acc", "miou",
            "iou", "seconds"}
    assert all(keys <= set(h) for h in history)
    assert len(history[0]["iou"]) == 21 and 0 <= history[-1]["miou"] <= 1
    assert all(0 < h["train_seconds"] <= h["seconds"] for h in history)
    state = load_checkpoint(tmp_path / LAST)
    assert {"model", "optimizer", "scheduler", "epoch", "history", "rng", "settings",
            "model_class"} <= set(state)
    assert state["model_class"] == "TinyNet" and state["settings"] == {"lr": 0.05}
    best = load_checkpoint(tmp_path / BEST)
    assert best["best_miou"] == max(h["miou"] for h in history)
    # best.pt holds the best epoch's weights, not a second copy of the optimizer's state
    assert "optimizer" not in best and "rng" not in best
    assert best["epoch"] == max(history, key=lambda h: h["miou"])["epoch"]
    assert (tmp_path / BEST).stat().st_size < (tmp_path / LAST).stat().st_size
    loaded = load_weights(TinyNet(), tmp_path / BEST).state_dict()
    assert all(torch.equal(loaded[k], best["model"][k]) for k in loaded)
    assert not list(tmp_path.glob(".*tmp*"))          # no temporary files left behind


def test_resume_errors_name_the_file(sample_root, tmp_path):
    with pytest.raises(CheckpointError, match=f"No checkpoint at {tmp_path / LAST}"):
        run(sample_root, 1, ckpt=tmp_path, resume=True)
    run(sample_root, 1, ckpt=tmp_path, resume="auto")         # auto: starts fresh
    assert (tmp_path / LAST).exists()
    good = (tmp_path / LAST).read_bytes()
    (tmp_path / LAST).write_bytes(good[: len(good) // 2])     # a truncated file
    with pytest.raises(CheckpointError, match="is not readable.*truncated"):
        run(sample_root, 2, ckpt=tmp_path, resume=True)
    assert (tmp_path / LAST).read_bytes() == good[: len(good) // 2]   # left untouched
    (tmp_path / LAST).write_bytes(good)
    with pytest.raises(CheckpointError, match=r"other settings:\n  lr: checkpoint 0.05 vs now 0.1"):
        run(sample_root, 2, ckpt=tmp_path, resume=True, lr=0.1)


def test_loading_weights_of_another_model_is_a_clear_error(tmp_path):
    save_weights(TinyNet(width=8), tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match=r"holds the weights of TinyNet.*\n.*shape mismatch: body.0.weight: file \(8, 3, 3, 3\) vs model \(4, 3, 3, 3\)"):
        load_weights(TinyNet(width=4), tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match="missing in the file: 0.weight"):
        load_weights(nn.Sequential(nn.Conv2d(3, 2, 1)), tmp_path / "w.pt")
    model = load_weights(TinyNet(width=8), tmp_path / "w.pt")
    assert isinstance(model, TinyNet)


def test_evaluate_matches_a_direct_computation(sample_root):
    torch.manual_seed(0)
    model = TinyNet().eval()
    _, val_loader = loaders(sample_root)
    scores = evaluate(model, val_loader, 21, device="cpu", progress=False, amp=False)   # float32 reference
    cm, loss_sum, pixels = ConfusionMatrix(21), 0.0, 0
    val = VOCSegmentation(sample_root, "val", eval_transforms())
    with torch.no_grad():
        for i in range(4):
            image, mask = val[i]
            logits = model(image[None])
            cm.update(logits.argmax(1), mask[None])
            loss_sum += nn.functional.cross_entropy(logits, mask[None], ignore_index=255, reduction="sum").item()
            pixels += int((mask != 255).sum())
    assert scores["miou"] == pytest.approx(cm.compute().miou)
    assert scores["loss"] == pytest.approx(loss_sum / pixels, rel=1e-5)


def test_gradient_accumulation_matches_a_big_batch():
    torch.manual_seed(0)
    x, y = torch.randn(8, 3, 6, 6), torch.randint(0, 21, (8, 6, 6))
    big, small = nn.Conv2d(3, 21, 1), nn.Conv2d(3, 21, 1)
    small.load_state_dict(big.state_dict())
    for model, batches, steps in ((big, [(x, y)], 1), (small, [(x[:4], y[:4]), (x[4:], y[4:])], 2)):
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        train_one_epoch(model, batches, opt, device="cpu", grad_accum_steps=steps, progress=False, amp=False)
    assert torch.allclose(big.weight, small.weight, atol=1e-6)


def test_early_stop(sample_root):
    torch.manual_seed(0)
    model = TinyNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)         # nothing changes: no improvement
    train_loader, val_loader = loaders(sample_root)
    history = fit(model, train_loader, val_loader, optimizer=opt, epochs=6, num_classes=21,
                  device="cpu", early_stop_patience=2, progress=False, verbose=False)
    assert len(history) == 3 and math.isfinite(history[-1]["miou"])


def test_eval_every_validates_on_schedule_and_after_the_last_epoch(sample_root):
    torch.manual_seed(0)
    model = TinyNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    train_loader, val_loader = loaders(sample_root)
    history = fit(model, train_loader, val_loader, optimizer=opt, epochs=5, num_classes=21,
                  device="cpu", eval_every=2, progress=False, verbose=False)
    assert ["miou" in h for h in history] == [False, True, False, True, True]
    with pytest.raises(ValueError, match="eval_every"):
        fit(model, train_loader, val_loader, optimizer=opt, epochs=1, num_classes=21, eval_every=0)


def test_tensorboard_logging_writes_every_number(sample_root, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    torch.manual_seed(0)
    model = TinyNet()
    train_loader, val_loader = loaders(sample_root)
    fit(model, train_loader, val_loader, optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
        epochs=2, num_classes=21, device="cpu", tensorboard_dir=tmp_path, progress=False, verbose=False)
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert {"train_loss", "miou", "pixel_acc", "lr"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("miou")] == [1, 2]


# ---- recorded runs ---------------------------------------------------------------------------

from seg_common.engine import load_run, load_runs, save_run  # noqa: E402


def test_save_and_load_a_run(tmp_path):
    history = [{"epoch": 1, "train_loss": 2.0}, {"epoch": 2, "train_loss": 1.5, "miou": 0.2, "iou": [0.2]}]
    model = TinyNet()
    save_run(tmp_path / "A", history=history, settings={"lr": 0.1}, class_names=["bg", "x"], model=model)
    run = load_run(tmp_path / "A")
    assert run["history"] == history and run["settings"] == {"lr": 0.1}
    assert run["final"] == {"train_loss": 1.5, "miou": 0.2, "iou": [0.2]}
    assert run["model_class"] == "TinyNet" and run["parameters"] == sum(p.numel() for p in model.parameters())
    load_weights(TinyNet(), tmp_path / "A" / "weights.pt")
    with pytest.raises(ValueError, match="no epoch of the history was validated"):
        save_run(tmp_path / "B", history=history[:1], settings={}, class_names=["bg"])


def test_comparing_missing_or_mismatched_runs_is_a_clear_error(tmp_path):
    save_run(tmp_path / "A", history=[], settings={}, class_names=["bg", "x"], final={"miou": 0.1})
    save_run(tmp_path / "B", history=[], settings={}, class_names=["bg", "x", "y"], final={"miou": 0.2})
    with pytest.raises(FileNotFoundError, match=f"No recorded run in {tmp_path / 'C'}"):
        load_runs({"A": tmp_path / "A", "C": tmp_path / "C"})
    with pytest.raises(ValueError, match="'A' and 'B' were trained on different class sets \\(2 vs 3"):
        load_runs({"A": tmp_path / "A", "B": tmp_path / "B"})
    assert set(load_runs({"A": tmp_path / "A", "A2": tmp_path / "A"})) == {"A", "A2"}


def test_a_short_last_accumulation_group_is_not_scaled_down():
    """5 batches with grad_accum_steps=2: steps over (1,2), (3,4) and (5) alone; the last step's
    gradient is that batch's own gradient, not half of it. Reference: plain SGD by hand."""
    torch.manual_seed(0)
    batches = [(torch.randn(2, 3, 5, 5), torch.randint(0, 4, (2, 5, 5))) for _ in range(5)]
    model, ref = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 4, 1)
    ref.load_state_dict(model.state_dict())
    opt = torch.optim.SGD(model.parameters(), lr=0.3)
    stats = train_one_epoch(model, batches, opt, device="cpu", grad_accum_steps=2, progress=False, amp=False)
    step_losses, mean = stats.step_losses, float(stats)
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.3)
    expected_steps = []
    for group in ([0, 1], [2, 3], [4]):
        ref_opt.zero_grad()
        losses = [nn.functional.cross_entropy(ref(batches[i][0]), batches[i][1], ignore_index=255) for i in group]
        (sum(losses) / len(group)).backward()
        ref_opt.step()
        expected_steps.append(float(sum(losses).detach()) / len(group))
    assert torch.allclose(model.weight, ref.weight, atol=1e-6) and torch.allclose(model.bias, ref.bias, atol=1e-6)
    assert step_losses == pytest.approx(expected_steps, rel=1e-5)
    assert len(step_losses) == 3 and mean == pytest.approx(sum(expected_steps[:2]) * 2 / 5 + expected_steps[2] / 5, rel=1e-5)
    assert stats.batches == 5 and stats.step_lrs == [[0.3]] * 3


def test_predict_returns_the_class_map_at_the_image_size():
    model = TinyNet(num_classes=5)
    image = torch.randn(3, 17, 23)
    model.eval()
    with torch.no_grad():
        expected = model(image[None]).argmax(1)[0]
    model.train()
    out = predict(model, image, amp=False)
    assert out.shape == (17, 23) and out.dtype == torch.int64 and torch.equal(out, expected)
    assert not model.training
    with pytest.raises(ValueError, match=r"one image \[3, H, W\]"):
        predict(model, image[None])


def test_predict_gives_a_model_and_its_channels_last_copy_the_same_classes():
    """fit leaves a model in channels_last; a reloaded copy starts contiguous. predict must use one
    layout for both, or bf16 kernels of the two layouts round differently and flip the argmax."""
    from seg_common.models import fcn8s_resnet18
    torch.manual_seed(0)
    trained = fcn8s_resnet18(21).eval()
    reloaded = fcn8s_resnet18(21).eval()
    reloaded.load_state_dict(trained.state_dict())
    trained.to(memory_format=torch.channels_last)          # as fit leaves it
    images = [torch.randn(3, 120, 160) for _ in range(3)]
    for image in images:
        assert torch.equal(predict(trained, image), predict(reloaded, image))


def _recorded(miou, classes=("bg", "x")):
    return {"class_names": list(classes), "final": {"miou": miou, "pixel_acc": 0.5 + miou, "mean_acc": 0.1}}


def test_summarize_runs_gives_mean_spread_and_std_over_seeds():
    runs = {"A": [_recorded(v) for v in (0.1, 0.2, 0.3)], "B": [_recorded(v) for v in (0.35, 0.4, 0.45)],
            "C": [_recorded(v) for v in (0.25, 0.3, 0.5)]}
    table = summarize_runs(runs)
    assert table.loc["A", "miou mean"] == pytest.approx(0.2)
    assert table.loc["A", "miou std"] == pytest.approx(0.1)          # sample std (n-1) of .1 .2 .3
    assert table.loc["C", "miou min"] == pytest.approx(0.25) and table.loc["C", "miou max"] == pytest.approx(0.5)
    assert table.loc["B", "pixel_acc mean"] == pytest.approx(0.9) and table.loc["B", "seeds"] == 3
    diff = compare_settings(table, [("A", "B"), ("A", "C")])
    assert diff.loc["A -> B", "difference"] == pytest.approx(0.2)
    assert bool(diff.loc["A -> B", "larger than the spread"])          # [.1, .3] vs [.35, .45]
    assert not bool(diff.loc["A -> C", "larger than the spread"])      # [.1, .3] vs [.25, .5] overlap
    single = summarize_runs({"A": [_recorded(0.1)], "B": [_recorded(0.5)]})
    assert compare_settings(single, [("A", "B")]).loc["A -> B", "larger than the spread"] is None
    with pytest.raises(KeyError, match="no setting 'D'"):
        compare_settings(table, [("A", "D")])
    with pytest.raises(ValueError, match="different class set"):
        summarize_runs({"A": [_recorded(0.1), _recorded(0.2, classes=("bg", "x", "y"))]})
    with pytest.raises(ValueError, match="'E' has no recorded runs"):
        summarize_runs({"E": []})


def test_accumulation_is_exact_with_frozen_batchnorm_and_not_without():
    """With BatchNorm frozen, 4 batches of 2 accumulated give the weights of one batch of 8 (no
    void pixels, so every batch has as many scored pixels); with BatchNorm training they do not,
    because each small batch is normalised with its own statistics."""
    torch.manual_seed(0)
    x, y = torch.randn(8, 3, 6, 6), torch.randint(0, 21, (8, 6, 6))
    start = TinyNet(width=4)
    start.body[3] = nn.Identity()                         # no dropout: only BatchNorm differs

    def train(batches, steps, freeze):
        model = TinyNet(width=4)
        model.body[3] = nn.Identity()
        model.load_state_dict(start.state_dict())
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        train_one_epoch(model, batches, opt, device="cpu", grad_accum_steps=steps, progress=False,
                        freeze_bn=freeze, amp=False)
        return model.body[0].weight, model.body[1].running_mean

    chunks = [(x[i:i + 2], y[i:i + 2]) for i in range(0, 8, 2)]
    (w_big, mean_big), (w_acc, mean_acc) = train([(x, y)], 1, True), train(chunks, 4, True)
    assert torch.allclose(w_big, w_acc, atol=1e-6)
    assert torch.equal(mean_big, torch.zeros(4)) and torch.equal(mean_acc, torch.zeros(4))   # not updated
    (w_big, _), (w_acc, _) = train([(x, y)], 1, False), train(chunks, 4, False)
    assert not torch.allclose(w_big, w_acc, atol=1e-4)


def test_sliding_window_equals_the_whole_image_for_a_pointwise_model_and_covers_every_pixel():
    from seg_common.engine import infer_logits
    torch.manual_seed(0)
    pointwise = nn.Conv2d(3, 4, 1).eval()
    for size in [(50, 70), (20, 30), (64, 64)]:                # larger, smaller than, equal to the window
        x = torch.randn(2, 3, *size)
        whole = infer_logits(pointwise, x)
        slid = infer_logits(pointwise, x, window=(32, 48))
        assert slid.shape == whole.shape and torch.allclose(slid, whole, atol=1e-6)
    ones = lambda t: torch.ones(t.shape[0], 2, *t.shape[-2:])   # averaging ones gives ones iff every pixel is covered
    assert torch.equal(infer_logits(ones, torch.randn(1, 3, 77, 101), window=(32, 32), stride=(30, 7)),
                       torch.ones(1, 2, 77, 101))


def test_sliding_window_averages_overlapping_windows():
    from seg_common.engine import infer_logits
    # A model that outputs the mean of its input window at every pixel. On a strip of width 6 with
    # window 4 and stride 2, pixels 0-1 lie in window [0:4] only, 2-3 in both, 4-5 in [2:6] only.
    model = lambda t: t.mean(dim=(-2, -1), keepdim=True).expand(-1, -1, *t.shape[-2:])
    x = torch.arange(6.0).reshape(1, 1, 1, 6)
    out = infer_logits(model, x, window=(1, 4), stride=(1, 2))[0, 0, 0]
    first, second = x[..., :4].mean(), x[..., 2:].mean()
    assert torch.allclose(out, torch.stack([first, first, (first + second) / 2, (first + second) / 2, second, second]))


def test_flip_averages_the_flipped_prediction_flipped_back():
    from seg_common.engine import infer_logits
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 2, (1, 3), padding=(0, 1)).eval()      # not mirror-symmetric
    x = torch.randn(1, 3, 5, 9)
    expected = (conv(x) + conv(x.flip(-1)).flip(-1)) / 2
    assert torch.allclose(infer_logits(conv, x, flip=True), expected, atol=1e-6)
    assert not torch.allclose(infer_logits(conv, x), expected, atol=1e-3)


def test_evaluate_with_a_window_scores_a_pointwise_model_like_whole_images(sample_root):
    _, val_loader = loaders(sample_root)
    torch.manual_seed(0)
    model = nn.Conv2d(3, 21, 1)
    whole = evaluate(model, val_loader, 21, device="cpu", progress=False, amp=False)
    slid = evaluate(model, val_loader, 21, device="cpu", progress=False, window=(64, 64), flip=True, amp=False)
    assert slid["miou"] == pytest.approx(whole["miou"]) and slid["pixel_acc"] == pytest.approx(whole["pixel_acc"])


def test_flip_with_a_window_flips_each_window_and_averages_overlaps():
    from seg_common.engine import infer_logits
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 2, (1, 3), padding=(0, 1)).eval()      # not mirror-symmetric, and sees window edges
    x = torch.randn(1, 3, 4, 10)
    total, counts = torch.zeros(1, 2, 4, 10), torch.zeros(4, 10)
    with torch.no_grad():
        for left in (0, 3, 6):                                  # window 4 wide, stride 3: starts 0, 3, 6
            crop = x[..., left:left + 4]
            total[..., left:left + 4] += (conv(crop) + conv(crop.flip(-1)).flip(-1)) / 2
            counts[:, left:left + 4] += 1
    got = infer_logits(conv, x, window=(4, 4), stride=(4, 3), flip=True)
    assert torch.allclose(got, total / counts, atol=1e-6)


# ---- GPU-path bugs (issue 15) ----------------------------------------------------------------

import seg_common.engine as engine  # noqa: E402
from seg_common.models import build_model  # noqa: E402


def _lazy_device() -> str:
    """torch's "lazy" device: a non-CPU device that exists without a GPU (TorchScript backend)."""
    try:
        import torch._lazy.ts_backend
        torch._lazy.ts_backend.init()
    except (ImportError, RuntimeError) as exc:
        pytest.skip(f"torch has no lazy device here ({exc})")
    return "lazy"


def test_resume_restores_random_states_that_the_checkpoint_put_on_another_device(sample_root, tmp_path, monkeypatch):
    # fit loads the checkpoint with map_location=device: on a GPU the saved random states come
    # back as GPU ByteTensors, which torch.set_rng_state and Generator.set_state refuse. The lazy
    # device plays the GPU here.
    device = _lazy_device()
    loaded = engine.load_checkpoint

    def load_onto_device(path, map_location="cpu"):
        state = loaded(path, map_location)
        state["rng"] = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in state["rng"].items()}
        assert state["rng"]["torch"].device.type == device and "loader" in state["rng"]
        return state

    straight, _, _ = run(sample_root, 2)
    run(sample_root, 1, ckpt=tmp_path)
    monkeypatch.setattr(engine, "load_checkpoint", load_onto_device)
    resumed, _, history = run(sample_root, 2, ckpt=tmp_path, resume=True)
    assert len(history) == 2
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_resume_on_cuda(sample_root, tmp_path):
    def cuda_run(epochs, resume):
        torch.manual_seed(0)
        model = TinyNet()
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        train_loader, val_loader = loaders(sample_root)
        return fit(model, train_loader, val_loader, optimizer=opt, epochs=epochs, num_classes=21,
                   checkpoint_dir=tmp_path, resume=resume, device="cuda", progress=False, verbose=False)

    cuda_run(1, False)
    assert [h["epoch"] for h in cuda_run(2, True)] == [1, 2]


def _scheduled_run(root, ckpt, epochs, make_scheduler, resume=False):
    torch.manual_seed(0)
    model = TinyNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    train_loader, val_loader = loaders(root)
    scheduler = make_scheduler(opt, len(train_loader))
    return fit(model, train_loader, val_loader, optimizer=opt, scheduler=scheduler, scheduler_per_iteration=True,
               epochs=epochs, num_classes=21, checkpoint_dir=ckpt, resume=resume, device="cpu", amp=False,
               progress=False, verbose=False)


@pytest.mark.parametrize("make_scheduler", [
    lambda opt, n: torch.optim.lr_scheduler.PolynomialLR(opt, total_iters=1 * n, power=0.9),
    lambda opt, n: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=1 * n),
], ids=["PolynomialLR", "OneCycleLR"])
def test_extending_a_run_past_its_schedule_is_refused(sample_root, tmp_path, make_scheduler):
    # A run made for 1 epoch, then resumed for 2: the schedule comes back from the checkpoint and
    # ends after epoch 1 (PolynomialLR: learning rate 0 from then on; OneCycleLR: an error).
    _scheduled_run(sample_root, tmp_path, 1, make_scheduler)
    with pytest.raises(CheckpointError, match=r"ends after 3 steps.*2 epochs need 6.*new checkpoint_dir"):
        _scheduled_run(sample_root, tmp_path, 2, make_scheduler, resume=True)
    assert load_checkpoint(tmp_path / LAST)["epoch"] == 1      # nothing was trained


def test_a_schedule_long_enough_resumes(sample_root, tmp_path):
    def poly(opt, n):
        return torch.optim.lr_scheduler.PolynomialLR(opt, total_iters=2 * n, power=0.9)
    _scheduled_run(sample_root, tmp_path, 1, poly)
    history = _scheduled_run(sample_root, tmp_path, 2, poly, resume=True)
    assert [h["epoch"] for h in history] == [1, 2] and history[1]["lr"] > 0


def test_resuming_an_early_stopped_run_trains_no_more(sample_root, tmp_path):
    def stopping_run():
        torch.manual_seed(0)
        model = TinyNet()
        opt = torch.optim.SGD(model.parameters(), lr=0.0)      # mIoU never improves
        train_loader, val_loader = loaders(sample_root)
        history = fit(model, train_loader, val_loader, optimizer=opt, epochs=6, num_classes=21, device="cpu",
                      early_stop_patience=2, checkpoint_dir=tmp_path, resume="auto", progress=False, verbose=False)
        return model, history

    stopped, history = stopping_run()
    assert len(history) == 3
    saved = (tmp_path / LAST).read_bytes()
    resumed, again = stopping_run()
    assert [h["epoch"] for h in again] == [1, 2, 3] and (tmp_path / LAST).read_bytes() == saved
    for (name, a), b in zip(stopped.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name                         # BatchNorm's running stats too


def test_the_default_loss_of_an_all_void_batch_is_zero_not_nan():
    torch.manual_seed(0)
    model = TinyNet(num_classes=4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    batches = [(torch.randn(2, 3, 8, 8), torch.full((2, 8, 8), 255))]
    loss = train_one_epoch(model, batches, opt, device="cpu", progress=False, amp=False).loss
    assert loss == 0.0
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_the_default_loss_is_plain_cross_entropy_when_pixels_are_labelled():
    torch.manual_seed(0)
    images, targets = torch.randn(2, 3, 8, 8), torch.randint(0, 4, (2, 8, 8))
    targets[0, :4] = 255
    model = TinyNet(num_classes=4).eval()
    with torch.no_grad():
        expected = nn.CrossEntropyLoss(ignore_index=255)(model(images), targets).item()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    model.body[3].p = 0.0                                      # no dropout: the same forward pass
    loss = train_one_epoch(model, [(images, targets)], opt, device="cpu", progress=False, amp=False,
                           channels_last=False, freeze_bn=True).loss
    assert loss == expected


def test_a_training_batch_of_one_image_is_a_clear_error():
    # DeepLabV3+'s ASPP pools each image to 1x1 before a BatchNorm: a batch of one image gives it a
    # single value per channel. A loader of 3 images in batches of 2 ends with such a batch.
    torch.manual_seed(0)
    model = build_model("deeplabv3plus_resnet18", num_classes=3)
    data = torch.utils.data.TensorDataset(torch.randn(3, 3, 32, 32), torch.randint(0, 3, (3, 32, 32)))
    loader = torch.utils.data.DataLoader(data, batch_size=2)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with pytest.raises(ValueError, match=r"batch of 1 image.*drop_last=True"):
        train_one_epoch(model, loader, opt, device="cpu", progress=False, amp=False)
    dropped = torch.utils.data.DataLoader(data, batch_size=2, drop_last=True)
    assert math.isfinite(train_one_epoch(model, dropped, opt, device="cpu", progress=False, amp=False).loss)


class _RecordsCudnnBenchmark(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.seen = []

    def forward(self, x):
        self.seen.append(torch.backends.cudnn.benchmark)
        return self.conv(x)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA"))])
def test_cudnn_benchmark_is_on_while_training_on_cuda_and_restored(device):
    model = _RecordsCudnnBenchmark().to(device)
    data = torch.utils.data.TensorDataset(torch.randn(4, 3, 8, 8), torch.randint(0, 3, (4, 8, 8)))
    before = torch.backends.cudnn.benchmark
    train_one_epoch(model, torch.utils.data.DataLoader(data, batch_size=2), torch.optim.SGD(model.parameters(), lr=0.1),
                    device=device, progress=False)
    assert model.seen == [device == "cuda"] * 2
    assert torch.backends.cudnn.benchmark == before


def test_fit_validates_void_first_labels_with_their_ignore_index():
    """Labels numbered void-first (0 = void, as a learner's ADE20K run): fit's validation must skip
    label 0, not 255. Reference: evaluate called with the same ignore_index on the trained model."""
    torch.manual_seed(0)
    model = TinyNet(num_classes=4)
    images = torch.randn(4, 3, 8, 8)
    labels = torch.randint(0, 4, (4, 8, 8))
    labels[:, :3] = 0                                          # a void band
    data = [(images[:2], labels[:2]), (images[2:], labels[2:])]
    history = fit(model, data, data, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), epochs=1,
                  num_classes=4, loss_fn=nn.CrossEntropyLoss(ignore_index=0), device="cpu", amp=False,
                  progress=False, verbose=False, ignore_index=0)
    expected = evaluate(model, data, 4, device="cpu", amp=False, progress=False, ignore_index=0)
    assert history[-1]["miou"] == expected["miou"] and history[-1]["val_loss"] == expected["loss"]
    as_void_255 = evaluate(model, data, 4, device="cpu", amp=False, progress=False)
    assert as_void_255["pixel_acc"] != expected["pixel_acc"]   # the void band would be scored as class 0


def test_a_failed_checkpoint_write_says_how_much_disk_is_free_and_keeps_the_old_file(tmp_path, monkeypatch):
    # A full disk makes torch.save fail with "file write failed" and then "unexpected pos" (what CI
    # saw); the message must name the file and the free space, and the previous checkpoint survive.
    path = save_checkpoint({"model": {"w": torch.ones(3)}}, tmp_path / LAST)
    good = path.read_bytes()

    def full_disk(state, file):
        file.write(b"PK partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 111200064 vs 111199960")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(CheckpointError, match=r"(?s)Could not write the checkpoint .*last\.pt.*MB are free.*untouched"):
        save_checkpoint({"model": {"w": torch.zeros(3)}}, path)
    assert path.read_bytes() == good and not list(tmp_path.glob(".*tmp*"))
