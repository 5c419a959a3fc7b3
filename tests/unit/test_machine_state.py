"""The machine's state around a measurement (measure.sysstate, analysis.machine_state): other
processes' CPU time is seen and our own children's is not, the warnings say how much, and a
second concurrent measurement is refused with exit 2 before anything is written."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from readbench.analysis import machine_state
from readbench.measure import sysstate

ROOT = Path(__file__).resolve().parents[2]
BUSY = "import time\nt = time.monotonic()\nwhile time.monotonic() - t < {s}: pass\n"
# a fixed amount of CPU time, however contended the machine is
BURN = "import time\nwhile time.process_time() < {s}: pass\n"


def test_other_processes_cpu_time_is_seen_and_our_own_children_are_not() -> None:
    hog = subprocess.Popen([sys.executable, "-c", BUSY.format(s=3)])  # not waited: "other"
    try:
        time.sleep(0.2)
        a = sysstate.counters()
        time.sleep(0.6)
        s = sysstate.sample(a, sysstate.counters())
        assert s["other_cpus"] >= 0.5, s
    finally:
        hog.kill()
        hog.wait()
    a = sysstate.counters()
    subprocess.run([sys.executable, "-c", BURN.format(s=0.4)], check=True)  # waited: ours
    s = sysstate.sample(a, sysstate.counters())
    assert s["own_cpus"] * s["seconds"] >= 0.35, s
    assert s["steal_fraction"] is not None and 0 <= s["steal_fraction"] <= 1


def test_settings_and_cpu_lists() -> None:
    st = sysstate.cpu_settings()
    assert st["cpus"] == sorted(os.sched_getaffinity(0))
    assert set(st["siblings"]) == {str(c) for c in st["cpus"]}
    assert sysstate.parse_cpu_list("0,2-3") == [0, 2, 3]
    from readbench.errors import BadInput

    with pytest.raises(BadInput, match="--affinity"):
        sysstate.parse_cpu_list("x")


def test_warnings_say_how_much() -> None:
    state = {
        "before": {"other_cpus": 0.8},
        "settings": {"cpus": [0, 1], "governor": ["powersave"], "boost": "1",
                     "smt_active": "1", "shared_cores": ["0-1"]},
        "during": [{"seconds": 10, "other_cpus": 1.2, "steal_fraction": 0.03},
                   {"seconds": 10, "other_cpus": 0.0, "steal_fraction": 0.0}],
        "concurrent": {"holder": "123 readbench run"},
    }  # fmt: skip
    w = " | ".join(machine_state.warnings(state))
    assert "0.60 CPUs of 2 on average (1.20 at most" in w and "60% of the machine" in w
    assert "stole 1.5%" in w and "powersave" in w and "turbo" in w and "SMT" in w
    assert "--allow-concurrent" in w and "0.80 CPUs busy" in w
    quiet = {"before": {"other_cpus": 0.0}, "settings": {"cpus": [0, 1]},
             "during": [{"seconds": 1, "other_cpus": 0.02, "steal_fraction": 0.0}]}  # fmt: skip
    assert machine_state.warnings(quiet) == []


def test_a_second_measurement_is_refused(tmp_path: Path) -> None:
    lock = tmp_path / "rb.lock"
    env = {**os.environ, "READBENCH_LOCK_FILE": str(lock)}
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom readbench.measure.sysstate import RunLock\n"
         "lk = RunLock('readbench run (test holder)').acquire()\nprint('held', flush=True)\n"
         "time.sleep(60)"],
        env=env, stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        out = tmp_path / "results"
        r = subprocess.run(
            [sys.executable, "-m", "readbench", "run", "--matrix", "quick", "--out", str(out)],
            env=env, capture_output=True, text=True, cwd=ROOT, check=False,
        )  # fmt: skip
        assert r.returncode == 2, r.stderr
        assert "another readbench measurement is running" in r.stderr
        assert "--allow-concurrent" in r.stderr and "test holder" in r.stderr
        assert not out.exists()
        # the holder's own children pass (its run's calibrate), and --allow-concurrent records
        os.environ["READBENCH_LOCK_FILE"] = str(lock)
        try:
            lk = sysstate.RunLock("x", allow_concurrent=True).acquire()
            assert lk.concurrent and "test holder" in lk.concurrent["holder"]
        finally:
            del os.environ["READBENCH_LOCK_FILE"]
    finally:
        holder.kill()
        holder.wait()
    # released with the process: the lock is free again
    os.environ["READBENCH_LOCK_FILE"] = str(lock)
    try:
        with sysstate.RunLock("again") as lk2:
            assert lk2.concurrent is None
    finally:
        del os.environ["READBENCH_LOCK_FILE"]
