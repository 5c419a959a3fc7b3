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

import numpy as np

from readbench.measure import paired
from readbench.measure.paired import child_seed
from readbench.measure.worker import cell_argv


def trial_seed(seed: int, trial: int) -> int:
    """Independent per trial: trial t's processes share no block orders with trial t+1's
    (seed·1000 + t did, through process k's seed + k)."""
    return child_seed(seed, 1_000_000 + trial)


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
    return paired.measure(cell_argv(workload, size, 0, toggle, 0, data), arm,
                          processes=processes, pairs=pairs, min_time=min_time, seed=seed,
                          timeout=timeout, name=f"calibrate/{workload}/{size}")  # fmt: skip
