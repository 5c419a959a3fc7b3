"""The independent C/libbpf cross-check builds, attaches its own programs and reports."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from tests.conftest import load_bench, require


def test_crosscheck_program_runs_and_detaches(root: None, data_dir: Path) -> None:
    require(shutil.which("bpftool") is not None, "needs bpftool (apt-get install bpftool)")
    cc = load_bench("bpf_crosscheck")
    exe = cc.build_c()
    data = data_dir / "crosscheck-4KiB.bin"
    if not data.exists():
        data.write_bytes(os.urandom(4096))
    before = subprocess.run(
        ["bpftool", "-j", "prog", "list"], capture_output=True, text=True, check=True
    ).stdout
    res = cc.c_rounds(exe, data, 64, rounds=2, loops=200, batches=3, seed=7)
    assert set(res) == set(cc.HOOKS)
    for h, vals in res.items():
        assert len(vals) == 2 and all(v > 0 for v in vals), h
    # its programs lived only as long as the process (freeing is deferred, briefly)
    deadline = time.monotonic() + 10
    while True:
        after = subprocess.run(
            ["bpftool", "-j", "prog", "list"], capture_output=True, text=True, check=True
        ).stdout
        if after.count('"cc_rawtp"') <= before.count('"cc_rawtp"'):
            break
        assert time.monotonic() < deadline, "cross-check programs outlived their process"
        time.sleep(0.1)


def test_paired_summary_math() -> None:
    cc = load_bench("bpf_crosscheck")
    s = cc.paired([100.0, 110.0, 90.0], [120.0, 130.0, 110.0])
    assert s["overhead_ns"] == 20.0
    assert s["ci95_ns"] == [20.0, 20.0]  # identical differences: zero-width interval
    assert abs(s["overhead_pct"] - (20 + 100 * 20 / 110 + 100 * 20 / 90) / 3) < 1e-9
    assert s["n_rounds"] == 3
