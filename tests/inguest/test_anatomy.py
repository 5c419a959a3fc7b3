"""Inside a readbench guest (Debian 6.1, the data directory on ext4 on a virtio-blk disk):
uncached and direct reads reach the device, and their anatomy shows the file-system mapping,
the block layer and the driver sampled, with the device wait measured (issue 15). The same
check runs on the host in tests/system/test_anatomy_here.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from readbench.model import layers
from tests.anatomy_checks import lower_layers

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("workload", ["uncached", "direct"])
def test_lower_layers_are_sampled_and_device_wait_measured(workload: str, data_dir: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "readbench", "one", "--workload", workload, "--size", "64K",
         "--perf", "--json", "--rounds", "1", "--no-progress", "--data-dir", str(data_dir)],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    one = json.loads(r.stdout)
    ns = lower_layers(one)
    # printed for the lane's log: the anatomy layer by layer, device wait beside wall − CPU
    print(json.dumps({"cell": f"{workload}/65536", **{k: round(v) for k, v in ns.items()}}))
    assert ns[layers.DEVICE] > 0
