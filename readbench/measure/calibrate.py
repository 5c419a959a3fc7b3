"""`readbench calibrate`'s measurements: trials that are exactly what one hooked cell of a run
is (readbench.measure.paired), with two arms each:

  off   the sham detached (readbench.measure.paired.SHAM_HOOKS)
  aa    the sham attached: a real link on a point the read never reaches (the A/A claim)
  dX    the sham attached and a busy delay after every read of X % of the read's own
        measured time, injected in the C loop (a known slowdown the test should find)

The trial's processes and blocks are the run's (`--processes`, `--pairs`); its seed is drawn
independently per trial (and per process inside it, measure.paired.child_seed). The
statistics of the trials are readbench.analysis.calibration's: this module only measures.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyperf

from readbench.errors import MeasurementError
from readbench.measure.paired import OFF, child_seed, parse_arms
from readbench.measure.worker import cell_argv
from readbench.store.load import NS_PER_S


def trial_seed(seed: int, trial: int) -> int:
    """Independent per trial: trial t's processes share no block orders with trial t+1's
    (seed·1000 + t did, through process k's seed + k)."""
    return child_seed(seed, 1_000_000 + trial)


def pairs_of(suite: pyperf.BenchmarkSuite, name: str, suffix: str) -> list[tuple[Any, Any]]:
    """Per process: (off values, arm values) in ns, joined by readbench_process."""

    def by_process(bench: str) -> dict[str, np.ndarray]:
        return {
            r.get_metadata()["readbench_process"]: np.asarray(r.values) * NS_PER_S
            for r in suite.get_benchmark(bench).get_runs()
        }

    off, on = by_process(name + OFF), by_process(name + suffix)
    return [(off[p], on[p]) for p in off if p in on]


def run_trial(
    *,
    workload: str,
    size: int,
    data: str,
    arm: str,
    toggle: str,
    processes: int,
    pairs: int,
    min_time: float,
    seed: int,
    timeout: float = 900,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """One trial: `arm` ("aa" or "dPCT") against off, `processes` fresh worker processes of
    `pairs` blocks each. Returns the per-process (off, arm) values in ns."""
    (arm_obj,) = parse_arms(arm)
    name = f"calibrate/{workload}/{size}"
    with tempfile.TemporaryDirectory(prefix="readbench-calibrate-") as tmp:
        out = Path(tmp) / "trial.json"
        cmd = [
            sys.executable, "-m", "readbench.measure.paired",
            *cell_argv(workload, size, 0, toggle, 0, data),
            "--rb-name", name, "--arms", f"off,{arm}",
            "--processes", str(processes), "--pairs", str(pairs),
            "--min-time", str(min_time), "--seed", str(seed),
            "--output", str(out),
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=timeout)
        if proc.returncode != 0:
            raise MeasurementError(f"calibration trial ({arm}): {proc.stderr.strip()[-500:]}")
        suite = pyperf.BenchmarkSuite.load(str(out))
    return pairs_of(suite, name, arm_obj.suffix)
