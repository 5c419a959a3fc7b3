"""`readbench calibrate`: the whole pipeline's honesty and power, measured on this machine.

Each trial is what one hooked cell of a run is: a set of fresh worker processes, each
alternating arms block by block (readbench.measure.paired). The arms of a trial:

  off   nothing
  aa    nothing either, but a separate arm: a toggle that changes nothing (the A/A claim)
  dX    a busy delay after every read of X % of the read's own measured time, injected in the
        C loop (the known slowdown the test should find)

and each of aa, d1, d2, … is tested against off exactly as a hook claim is (exact signed-rank
over per-process median log-ratios), *uncorrected* at α: the A/A rate is the test's real
false-positive rate (with its exact binomial CI), the dX detection rates are its power.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyperf
from scipy import stats as sps

from readbench.analysis.stats import paired_claim
from readbench.errors import MeasurementError
from readbench.measure.paired import OFF, Arm, arms_arg
from readbench.measure.worker import cell_argv
from readbench.store.load import NS_PER_S


def _pairs(suite: pyperf.BenchmarkSuite, name: str, arm: Arm) -> list[tuple[Any, Any]]:
    def by_process(bench: str) -> dict[str, np.ndarray]:
        return {
            r.get_metadata()["readbench_process"]: np.asarray(r.values) * NS_PER_S
            for r in suite.get_benchmark(bench).get_runs()
        }

    off, on = by_process(name + OFF), by_process(name + arm.suffix)
    return [(off[p], on[p]) for p in off if p in on]


def binomial_ci(k: int, n: int) -> list[float] | None:
    if n == 0:
        return None
    ci = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    return [float(ci.low), float(ci.high)]


def calibrate(
    *,
    workload: str,
    size: int,
    data: str,
    effects: list[float],
    trials: int,
    processes: int,
    pairs: int,
    min_time: float,
    alpha: float,
    seed: int = 0,
    progress: Any = None,
) -> dict[str, Any]:
    arms = [Arm(OFF), Arm("#aa")] + [Arm(f"#d{e:g}", delay_pct=e) for e in effects]
    name = f"calibrate/{workload}/{size}"
    t0 = time.monotonic()
    aa_p: list[float] = []
    power: dict[float, list[dict[str, Any]]] = {e: [] for e in effects}
    with tempfile.TemporaryDirectory(prefix="readbench-calibrate-") as tmp:
        for t in range(trials):
            out = Path(tmp) / f"trial{t}.json"
            cmd = [
                sys.executable, "-m", "readbench.measure.paired",
                *cell_argv(workload, size, 0, "none", 0, data),
                "--rb-name", name, "--arms", arms_arg(arms),
                "--processes", str(processes), "--pairs", str(pairs),
                "--min-time", str(min_time), "--seed", str(seed * 1000 + t),
                "--output", str(out),
            ]  # fmt: skip
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise MeasurementError(f"calibration trial {t + 1}: {proc.stderr.strip()[-500:]}")
            suite = pyperf.BenchmarkSuite.load(str(out))
            aa_p.append(paired_claim(_pairs(suite, name, arms[1]), margin=0.02)["p"])
            for arm in arms[2:]:
                c = paired_claim(_pairs(suite, name, arm), margin=0.02)
                off_ns = float(c["median_a_ns"])
                power[arm.delay_pct].append(
                    {
                        "p": c["p"],
                        "delta_ns": c["delta_ns"],
                        "injected_ns": off_ns * arm.delay_pct / 100,
                        "detected": bool(c["p"] < alpha and c["delta_ns"] > 0),
                    }
                )
            if progress:
                progress(t + 1, trials)
    fp = sum(p < alpha for p in aa_p)
    return {
        "workload": workload,
        "size": size,
        "alpha": alpha,
        "trials": trials,
        "processes_per_trial": processes,
        "pairs_per_process": pairs,
        "min_time": min_time,
        "test": "exact Wilcoxon signed-rank over per-process median log(arm/off), uncorrected",
        "seconds": round(time.monotonic() - t0, 1),
        "aa": {
            "claims": len(aa_p),
            "false_positives": fp,
            "rate": fp / len(aa_p) if aa_p else None,
            "rate_ci95": binomial_ci(fp, len(aa_p)),
            "p_values": aa_p,
        },
        "power": [
            {
                "effect_pct": e,
                "trials": len(rows),
                "detected": sum(r["detected"] for r in rows),
                "rate": sum(r["detected"] for r in rows) / len(rows) if rows else None,
                "rate_ci95": binomial_ci(sum(r["detected"] for r in rows), len(rows)),
                "delta_ns_median": float(np.median([r["delta_ns"] for r in rows])),
                "injected_ns": float(np.median([r["injected_ns"] for r in rows])),
            }
            for e, rows in power.items()
        ],
    }
