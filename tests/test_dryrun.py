"""The dry run (SEG_DRY_RUN): every setting kept, only the amount of work cut."""
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from seg_common import dryrun
from seg_common.data.sample import make_sample_voc
from seg_common.engine import evaluate, fit
from seg_common.profile import SAMPLE_MARKER, Profile, pictures_dir, real_voc_present, runs_dir


class CountingNet(nn.Module):
    """A 1x1 convolution that records the batch size of every training forward pass."""

    def __init__(self, num_classes=3):
        super().__init__()
        self.conv = nn.Conv2d(3, num_classes, 1)
        self.train_batches, self.eval_batches = [], []

    def forward(self, x):
        (self.train_batches if self.training else self.eval_batches).append(x.shape[0])
        return self.conv(x)


def _loader(n_images, batch_size):
    images = torch.randn(n_images, 3, 8, 8)
    masks = torch.randint(0, 3, (n_images, 8, 8))
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, masks), batch_size=batch_size)


def _fit(model, epochs=5):
    return fit(model, _loader(32, 8), _loader(10, 1), optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
               epochs=epochs, num_classes=3, device="cpu", progress=False, verbose=False)


def test_without_the_switch_nothing_is_cut(monkeypatch):
    monkeypatch.delenv(dryrun.ENV, raising=False)
    model = CountingNet()
    history = _fit(model)
    assert len(history) == 5 and model.train_batches == [8] * 20 and len(model.eval_batches) == 50
    assert dryrun.epochs(30) == 30 and dryrun.images(500) == 500 and dryrun.batch_size(32) == 32
    assert dryrun.batch_sizes([2, 4, 8]) == [2, 4, 8] and not dryrun.skipped("checks")
    assert dryrun.describe() == ""


@pytest.mark.parametrize("value", ["0", "false", "no", ""])
def test_switch_off_values(monkeypatch, value):
    monkeypatch.setenv(dryrun.ENV, value)
    assert not dryrun.active()


def test_a_dry_run_trains_one_epoch_of_two_batches_and_scores_two(monkeypatch):
    monkeypatch.setenv(dryrun.ENV, "1")
    monkeypatch.delenv(dryrun.MAX_BATCH_ENV, raising=False)
    monkeypatch.delenv(dryrun.BATCHES_ENV, raising=False)
    model = CountingNet()
    history = _fit(model)
    assert [h["epoch"] for h in history] == [1]
    assert model.train_batches == [8, 8]                  # full batches: no cap without SEG_DRY_RUN_MAX_BATCH
    assert model.eval_batches == [1, 1]
    assert "miou" in history[0]


def test_the_batch_cap_cuts_every_training_batch(monkeypatch, capsys):
    monkeypatch.setenv(dryrun.ENV, "1")
    monkeypatch.setenv(dryrun.MAX_BATCH_ENV, "2")
    model = CountingNet()
    _fit(model)
    assert model.train_batches == [2, 2]
    assert dryrun.batch_size(32) == 2 and dryrun.batch_sizes([16, 2, 4, 8]) == [2, 4]
    assert dryrun.skipped("the checks") is True
    assert "skipped" in capsys.readouterr().out
    assert "DRY RUN" in dryrun.describe() and "2 images" in dryrun.describe()


def test_a_bad_batch_cap_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(dryrun.ENV, "1")
    monkeypatch.setenv(dryrun.MAX_BATCH_ENV, "two")
    with pytest.raises(ValueError, match=dryrun.MAX_BATCH_ENV):
        dryrun.max_batch()


def test_one_batch_each_when_asked(monkeypatch):
    """make dry-run on a CPU: SEG_DRY_RUN_BATCHES=1 trains one batch and scores one, and says so."""
    monkeypatch.setenv(dryrun.ENV, "1")
    monkeypatch.setenv(dryrun.BATCHES_ENV, "1")
    model = CountingNet()
    history = _fit(model)
    assert model.train_batches == [8] and model.eval_batches == [1] and "miou" in history[0]
    assert dryrun.images(500) == 1 and dryrun.batches(40) == 1 and dryrun.batches(40, "eval") == 1
    assert "1 training batch per epoch, 1 evaluation batch," in dryrun.describe()
    monkeypatch.setenv(dryrun.BATCHES_ENV, "0")
    with pytest.raises(ValueError, match=dryrun.BATCHES_ENV):
        dryrun.train_batches()
    monkeypatch.delenv(dryrun.ENV)                     # outside a dry run the variable changes nothing
    assert dryrun.batches(40) == 40 and dryrun.images(500) == 500


def test_evaluate_alone_scores_two_batches(monkeypatch):
    monkeypatch.setenv(dryrun.ENV, "1")
    model = CountingNet()
    evaluate(model, _loader(10, 1), 3, device="cpu", progress=False)
    assert model.eval_batches == [1, 1]


def test_subset_and_limit(monkeypatch):
    data = list(range(100))
    monkeypatch.delenv(dryrun.ENV, raising=False)
    assert dryrun.subset(data, 5) is data and list(dryrun.limit(data, 3)) == data
    monkeypatch.setenv(dryrun.ENV, "1")
    assert list(dryrun.subset(data, 5)) == [0, 1, 2, 3, 4] and list(dryrun.limit(data, 3)) == [0, 1, 2]


def test_the_profile_line_says_it_is_a_dry_run(monkeypatch, tmp_path):
    monkeypatch.setenv(dryrun.ENV, "1")
    text = str(Profile.from_env({"SEG_PROFILE": "full", "SEG_DATA": str(tmp_path)}))
    assert text.startswith("Profile: full") and "DRY RUN" in text


def test_runs_and_pictures_can_move(monkeypatch, tmp_path):
    monkeypatch.setenv("SEG_RUNS", str(tmp_path / "drive" / "runs"))
    monkeypatch.setenv("SEG_PICTURES", str(tmp_path / "figs"))
    assert runs_dir() == tmp_path / "drive" / "runs" and pictures_dir() == tmp_path / "figs"
    monkeypatch.delenv("SEG_RUNS")
    assert runs_dir().name == "runs" and runs_dir() != tmp_path / "drive" / "runs"


def test_the_dry_run_voc_has_voc_sizes_and_passes_for_the_real_one(tmp_path):
    voc = make_sample_voc(tmp_path, n_train=6, n_val=2, n_aug_only=1, scale=1.0)
    sizes = {Image.open(p).size for p in (voc / "JPEGImages").glob("*.jpg")}
    assert sizes <= {(500, 375), (500, 333), (480, 360), (375, 500), (500, 300), (400, 300)}
    assert (500, 375) in sizes
    mask = np.asarray(Image.open(next((voc / "SegmentationClass").glob("*.png"))))
    assert mask.shape[1] in (500, 480, 375, 400)
    assert not real_voc_present(tmp_path)                 # the marker says "sample"...
    (voc / SAMPLE_MARKER).unlink()
    assert real_voc_present(tmp_path)                     # ... without it, it passes for the download
    with pytest.raises(ValueError, match="scale"):
        make_sample_voc(tmp_path / "other", n_train=1, n_val=1, scale=0)


def test_a_dry_run_never_writes_into_the_real_runs_or_pictures(monkeypatch, tmp_path):
    monkeypatch.setenv("SEG_RUNS", str(tmp_path / "runs"))
    monkeypatch.delenv("SEG_PICTURES", raising=False)
    monkeypatch.delenv(dryrun.ENV, raising=False)
    real_runs, real_pictures = runs_dir(), pictures_dir()
    monkeypatch.setenv(dryrun.ENV, "1")
    assert runs_dir() == real_runs / "dry-run"              # a real run never resumes a dry run's checkpoint
    assert pictures_dir() == real_runs / "dry-run" / "pictures" and pictures_dir() != real_pictures
    monkeypatch.setenv("SEG_PICTURES", str(tmp_path / "figs"))
    assert pictures_dir() == tmp_path / "figs"


def test_the_dry_run_ade20k_passes_for_the_download_with_its_instance_annotations(tmp_path):
    # notebook 09's full profile in the dry run: ADEChallengeData2016 without the sample marker
    from seg_common.data import prepare_ade20k
    from seg_common.data.ade20k import ADE_DIR, ADE20KSegmentation
    from seg_common.data.sample_ade20k import make_sample_ade20k

    ade = make_sample_ade20k(tmp_path, n_train=9, n_val=9) / ADE_DIR
    (ade / SAMPLE_MARKER).unlink()
    root = prepare_ade20k(Profile("full", tmp_path))
    things = ADE20KSegmentation(root, "training", annotations="instance")
    assert len(things) == 9 and things.classes[0] != "thing 1"    # the instance list is read, not made up


def test_a_cpu_dry_run_measures_a_quarter_of_each_side_without_warm_up(monkeypatch):
    from seg_common.benchmark import measure_inference, measure_step

    monkeypatch.delenv(dryrun.ENV, raising=False)
    assert dryrun.measured_size((512, 1024)) == (512, 1024) and dryrun.warmup_passes() == 1
    monkeypatch.setenv(dryrun.ENV, "1")
    monkeypatch.delenv(dryrun.MAX_BATCH_ENV, raising=False)         # a GPU's dry run: full sizes
    assert dryrun.measured_size((512, 1024)) == (512, 1024) and dryrun.warmup_passes() == 0
    monkeypatch.setenv(dryrun.MAX_BATCH_ENV, "2")                   # a CPU's dry run
    assert dryrun.measured_size((1024, 2048)) == (256, 512)
    assert dryrun.measured_size((100, 300)) == (64, 75) and dryrun.measured_size(None) is None
    step = measure_step("fcn8s_resnet18", 2, (512, 384), device="cpu")
    assert step["crop"] == [128, 96]
    inference = measure_inference("fcn8s_resnet18", (512, 1024), window=(256, 512), device="cpu")
    assert inference["size"] == [128, 256] and inference["window"] == (64, 128)


def test_a_scaled_dry_run_shows_the_networks_half_of_each_side_and_returns_full_size_outputs(monkeypatch):
    from seg_common.engine import infer_logits, predict

    class SizeNet(CountingNet):
        def forward(self, x):
            self.sizes = getattr(self, "sizes", []) + [tuple(x.shape[-2:])]
            return super().forward(x)

    monkeypatch.setenv(dryrun.SCALE_ENV, "0.5")
    assert dryrun.input_scale() is None                       # outside a dry run nothing shrinks
    monkeypatch.setenv(dryrun.ENV, "1")
    assert dryrun.input_scale() == 0.5 and "see 0.5 of each side" in dryrun.describe()
    images, labels = torch.randn(2, 3, 9, 12), torch.randint(0, 3, (2, 9, 12))
    small, small_labels = dryrun.shrink(images, labels)
    assert small.shape == (2, 3, 4, 6) and small_labels.shape == (2, 4, 6) and small_labels.dtype == labels.dtype
    assert set(small_labels.unique().tolist()) <= set(labels.unique().tolist())      # nearest: no new classes
    depth_maps = torch.rand(2, 4, 9, 12)                      # regression targets are interpolated
    assert dryrun.shrink(images, depth_maps)[1].shape == (2, 4, 4, 6)
    assert dryrun.shrink(images, torch.zeros(2, 5, 5))[0].shape == images.shape       # not maps: unchanged
    model = SizeNet()
    _fit(model, epochs=1)                                      # 8x8 training batches
    assert model.sizes[0] == (4, 4)
    model.eval()
    assert infer_logits(model, torch.randn(1, 3, 20, 30)).shape == (1, 3, 20, 30) and model.sizes[-1] == (10, 15)
    assert infer_logits(model, torch.randn(1, 3, 20, 30), window=(8, 8)).shape[-2:] == (20, 30)
    assert predict(model, torch.randn(3, 20, 30)).shape == (20, 30) and model.sizes[-1] == (10, 15)
    monkeypatch.setenv(dryrun.SCALE_ENV, "2")
    with pytest.raises(ValueError, match=dryrun.SCALE_ENV):
        dryrun.input_scale()
