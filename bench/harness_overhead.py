"""Does the harness add measurable overhead? readbench's `cached` 64-byte result against a
bare C pread loop (workloads/bare_pread.c), interleaved A B A B in one session.

Each side gets the same number of fresh processes, the same loops per value and the same
values per process; the unit is the process (its median value). Reports the ratio as
exp(Hodges-Lehmann shift of log per-process medians) with its exact Mann-Whitney 95% CI (the
estimator readbench itself uses between groups of processes), and whether it lies within ±3%.

This VM's processes fall into two speed modes (about 370 and 450 ns at 64 B) at random; a
ratio of medians jumps between them, while the shift, built from all pairwise differences,
is dominated by same-mode pairs. Forty pairs take about 40 s here.

    python bench/harness_overhead.py [--pairs 40] [--size 64] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyperf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from readbench.analysis.paired import shift_ci, shift_estimate, shift_p  # noqa: E402
from readbench.measure import datafiles  # noqa: E402


def build_bare(tmp: Path) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        sys.exit("harness_overhead: needs a C compiler (apt-get install gcc)")
    exe = tmp / "bare_pread"
    subprocess.run(
        [cc, "-O2", "-o", str(exe), str(ROOT / "workloads" / "bare_pread.c")], check=True
    )
    return exe


def run_bare(exe: Path, path: Path, size: int, loops: int, values: int, warmups: int) -> float:
    out = subprocess.run(
        [str(exe), str(path), str(size), str(loops), str(values), str(warmups)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return statistics.median(float(x) for x in out.split())


def run_readbench(
    path: Path, size: int, loops: int, values: int, warmups: int, tmp: Path
) -> list[float]:
    """One pyperf invocation of the real worker (2 processes), per-process medians in ns."""
    out = tmp / "rb.json"
    out.unlink(missing_ok=True)
    subprocess.run(
        [
            sys.executable, "-m", "readbench.measure.worker",
            "--rb-workload", "cached", "--rb-size", str(size), "--rb-data", str(path),
            "--rb-name", f"cached/{size}/none",
            "--processes", "2", "--values", str(values), "--warmups", str(warmups),
            "--loops", str(loops), "--quiet", "--output", str(out),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    bench = pyperf.Benchmark.load(str(out))
    return [statistics.median(r.values) * 1e9 for r in bench.get_runs() if r.values]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=40, help="A/B pairs (each: 2 processes a side)")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--loops", type=int, default=1 << 16)
    ap.add_argument("--values", type=int, default=3)
    ap.add_argument("--warmups", type=int, default=1)
    ap.add_argument("--tolerance", type=float, default=0.03)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    data_dir = datafiles.check_data_dir(datafiles.default_data_dir())
    path = datafiles.ensure(data_dir, "cached")
    assert path is not None
    rb: list[float] = []
    bare: list[float] = []
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        exe = build_bare(tmp)
        for i in range(a.pairs):
            # Alternate which side goes first so drift within a pair cancels out.
            sides = ["rb", "bare"] if i % 2 == 0 else ["bare", "rb"]
            for s in sides:
                if s == "rb":
                    rb += run_readbench(path, a.size, a.loops, a.values, a.warmups, tmp)
                else:
                    bare += [
                        run_bare(exe, path, a.size, a.loops, a.values, a.warmups) for _ in range(2)
                    ]
            print(f"pair {i + 1}/{a.pairs}: readbench {rb[-1]:.1f} ns, bare C {bare[-1]:.1f} ns",
                  file=sys.stderr)  # fmt: skip

    log_rb, log_bare = np.log(rb), np.log(bare)
    r = float(np.exp(shift_estimate(log_bare, log_rb)))
    ci = shift_ci(log_bare, log_rb, 0.95)
    if ci is None:
        sys.exit("harness_overhead: too few processes for a 95% interval; raise --pairs")
    lo, hi = (float(np.exp(x)) for x in ci)
    p = shift_p(log_bare, log_rb)
    within = bool(1 - a.tolerance <= lo and hi <= 1 + a.tolerance)
    out = {
        "size": a.size,
        "processes_each": len(rb),
        "readbench_median_ns": statistics.median(rb),
        "bare_c_median_ns": statistics.median(bare),
        "ratio": r,
        "ratio_ci95": [lo, hi],
        "ratio_of_medians": statistics.median(rb) / statistics.median(bare),
        "mwu_p": p,
        "tolerance": a.tolerance,
        "within_tolerance": within,
        "readbench_process_ns": rb,
        "bare_c_process_ns": bare,
        "pid": os.getpid(),
    }
    if a.json:
        print(json.dumps(out, indent=2))
    else:
        print(
            f"readbench cached/{a.size}: {out['readbench_median_ns']:.1f} ns/op; bare C: "
            f"{out['bare_c_median_ns']:.1f} ns/op; ratio {r:.4f} (95% CI {lo:.4f}–{hi:.4f}), "
            f"MWU p={p:.3g}; {'within' if within else 'NOT within'} ±{a.tolerance:.0%}"
        )
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
