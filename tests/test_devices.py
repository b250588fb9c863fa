import platform
import subprocess
import sys
import textwrap

import pytest
import torch

from seg_common import devices

CHILD = textwrap.dedent("""
    import torch
    from torch import nn
    from seg_common import devices, loops

    def train():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.Conv2d(64, 5, 1))
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        batches = [(torch.randn(4, 3, 256, 256), torch.randint(0, 5, (4, 256, 256))) for _ in range(3)]
        stats = loops.train_one_epoch(model, batches, optimizer, device="cpu", progress=False)
        return model, stats.step_losses

    devices._allocator_kept = False           # the loops' call becomes a no-op: glibc's defaults
    plain, plain_losses = train()
    devices._allocator_kept = None            # the next call sets the allocator, as the loops do
    assert devices.keep_freed_memory(torch.device("cpu")) is True
    kept, kept_losses = train()
    assert plain_losses == kept_losses, (plain_losses, kept_losses)
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), kept.state_dict().values()))
    print("identical")
""")


@pytest.mark.skipif(not (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"),
                    reason="the allocator setting exists on Linux with glibc only")
def test_keeping_freed_memory_changes_where_memory_comes_from_not_the_numbers():
    """In a fresh process (the setting is process-wide): the same training steps with glibc's
    defaults and with keep_freed_memory give bit-identical losses and weights."""
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True)
    assert out.returncode == 0 and "identical" in out.stdout, out.stderr[-2000:]


def test_keep_freed_memory_does_nothing_off_the_cpu():
    assert devices.keep_freed_memory(torch.device("meta")) is False
    assert devices.keep_freed_memory(torch.device("cuda")) is False
