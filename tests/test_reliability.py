"""Training that survives what happens on small hardware: a killed process, a kill while a
checkpoint is being written, and memory that must not grow from epoch to epoch.

Each scenario trains in a child process (so that it can be killed, and so that its memory is its
own) and checks the outcome here."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from seg_common.engine import load_checkpoint

REPO = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent('''
    import io, sys, time
    from pathlib import Path
    import torch
    from torch import nn
    from seg_common.data.loading import seeded_loader
    from seg_common.engine import fit

    ckpt_dir, marker, mode, epochs = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    torch.set_num_threads(1)

    class Data(torch.utils.data.Dataset):
        """16 images with random noise added per draw (a stand-in for augmentation)."""
        def __init__(self, size=16):
            g = torch.Generator().manual_seed(0)
            self.x, self.y = torch.randn(16, 3, size, size, generator=g), torch.randint(0, 3, (16, size, size), generator=g)
            self.fetched = 0
        def __len__(self):
            return 16
        def __getitem__(self, i):
            self.fetched += 1
            if mode == "kill-mid-epoch" and self.fetched == 16 * 2 + 6:      # inside epoch 3
                marker.write_text("in epoch 3")
                time.sleep(120)
            return self.x[i] + 0.1 * torch.randn(self.x[i].shape), self.y[i]

    if mode == "kill-while-saving":
        real_save, saves = torch.save, []
        def slow_save(obj, f, *args, **kwargs):
            saves.append(1)
            if len(saves) == 3:                     # the checkpoint of epoch 3: write half, then hang
                buffer = io.BytesIO()
                real_save(obj, buffer)
                data = buffer.getvalue()
                f.write(data[:len(data) // 2])
                f.flush()
                marker.write_text("half written")
                time.sleep(120)
            return real_save(obj, f, *args, **kwargs)
        torch.save = slow_save

    leak = []
    def loss_fn(logits, target):
        loss = nn.functional.cross_entropy(logits, target, ignore_index=255)
        if mode == "leak":                          # keeps 2 MB per batch alive, like a list that
            leak.append(torch.ones(2**19))          # collects every batch's outputs
        return loss

    torch.manual_seed(0)
    width = 32 if mode in ("leak", "memory") else 8
    model = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.Dropout2d(0.2),
                          nn.Conv2d(width, 3, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    size = 64 if mode in ("leak", "memory") else 16
    train = seeded_loader(Data(size), 4, seed=0)
    val = torch.utils.data.DataLoader(Data(size), batch_size=4) if mode in ("leak", "memory") else None
    history = fit(model, train, val, optimizer=optimizer, loss_fn=loss_fn, epochs=epochs, num_classes=3, device="cpu",
                  checkpoint_dir=ckpt_dir, resume="auto", progress=False, verbose=False)
    torch.save({"model": model.state_dict(), "history": history}, ckpt_dir / "final.pt")
''')


def run_child(tmp_path: Path, mode: str, epochs: int, ckpt_dir: Path, kill_on_marker: bool = False):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    marker = tmp_path / f"marker-{mode}"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    child = subprocess.Popen([sys.executable, str(script), str(ckpt_dir), str(marker), mode, str(epochs)],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if not kill_on_marker:
        out, err = child.communicate(timeout=300)
        assert child.returncode == 0, err[-2000:]
        return None
    deadline = time.monotonic() + 240
    while not marker.exists():
        if child.poll() is not None:
            pytest.fail(f"the child ended before the kill point: {child.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            child.kill()
            pytest.fail("the child never reached the kill point")
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)               # no exception, no cleanup: like a lost Colab runtime
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    return marker


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("uninterrupted")
    run_child(tmp, "plain", 5, tmp / "ckpt")
    return torch.load(tmp / "ckpt" / "final.pt", weights_only=False)


def assert_same_weights(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_a_process_killed_mid_epoch_resumes_from_its_last_checkpoint_as_if_never_killed(tmp_path, uninterrupted):
    ckpt = tmp_path / "ckpt"
    run_child(tmp_path, "kill-mid-epoch", 5, ckpt, kill_on_marker=True)
    state = load_checkpoint(ckpt / "last.pt")
    assert state["epoch"] == 2                      # epoch 3 was under way: its work is lost, nothing else
    run_child(tmp_path, "plain", 5, ckpt)           # a new process, the same call: resume="auto"
    resumed = torch.load(ckpt / "final.pt", weights_only=False)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3, 4, 5]
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in uninterrupted["history"]]
    assert_same_weights(resumed["model"], uninterrupted["model"])


def test_a_kill_while_a_checkpoint_is_written_leaves_the_previous_one_whole(tmp_path, uninterrupted):
    ckpt = tmp_path / "ckpt"
    run_child(tmp_path, "kill-while-saving", 5, ckpt, kill_on_marker=True)
    strays = list(ckpt.glob(".last.pt.tmp-*"))
    assert len(strays) == 1 and strays[0].stat().st_size > 0          # the half-written file...
    assert load_checkpoint(ckpt / "last.pt")["epoch"] == 2             # ...never replaced last.pt
    run_child(tmp_path, "plain", 5, ckpt)
    assert not list(ckpt.glob(".*.tmp-*"))                             # cleared on resume
    resumed = torch.load(ckpt / "final.pt", weights_only=False)
    assert_same_weights(resumed["model"], uninterrupted["model"])


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="per-epoch peaks need Linux")
def test_peak_memory_does_not_grow_over_epochs_and_the_check_catches_a_leak(tmp_path):
    def peaks(mode):
        ckpt = tmp_path / mode
        run_child(tmp_path, mode, 6, ckpt)
        history = torch.load(ckpt / "final.pt", weights_only=False)["history"]
        return [h["peak_memory_mb"] for h in history]

    healthy, leaky = peaks("memory"), peaks("leak")
    assert all(p is not None and p > 0 for p in healthy)
    # After the first epoch (allocator warm-up) the peak of each train + validate epoch stays put.
    assert max(healthy[1:]) - healthy[1] < 20, healthy
    # The same bound fails when 2 MB per batch stay alive (8 MB per epoch here).
    assert max(leaky[1:]) - leaky[1] >= 20, leaky
