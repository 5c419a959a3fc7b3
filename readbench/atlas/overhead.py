"""What a program at a point costs a read(): the paired measurement of readbench's own hook
programs (empty and inspect bodies) where the point is one they cover, and of the atlas's
counting program (a tgid filter and one atomic add: about an empty body) elsewhere."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pyperf

from readbench.analysis.stats import paired_claim
from readbench.measure.paired import OFF
from readbench.measure.worker import cell_argv
from readbench.store.load import NS_PER_S


def paired_overhead(
    hook: str, workload: str, size: int, data: str, processes: int, pairs: int, seed: int
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="readbench-atlas-") as tmp:
        out = Path(tmp) / "o.json"
        cmd = [
            sys.executable, "-m", "readbench.measure.paired",
            *cell_argv(workload, size, 0, hook, 0, data),
            "--rb-name", "atlas", "--processes", str(processes), "--pairs", str(pairs),
            "--min-time", "0.01", "--seed", str(seed), "--output", str(out),
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            return {"error": proc.stderr.strip()[-300:]}
        suite = pyperf.BenchmarkSuite.load(str(out))

    def runs(name: str) -> dict[str, Any]:
        return {
            r.get_metadata()["readbench_process"]: [v * NS_PER_S for v in r.values]
            for r in suite.get_benchmark(name).get_runs()
        }

    import numpy as np

    off, on = runs("atlas" + OFF), runs("atlas")
    c = paired_claim([(np.array(off[k]), np.array(on[k])) for k in off if k in on], 0.02)
    return {k: c[k] for k in ("delta_ns", "delta_ci95", "ratio", "ratio_ci95", "p",
                              "n_processes")}  # fmt: skip
