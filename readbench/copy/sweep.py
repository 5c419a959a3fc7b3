"""The copy-strategy sweep of a run or of `readbench copy`: every replica at every size and
misalignment (pyperf, readbench.copy.replicas), checked against `perf bench mem memcpy`
(readbench.copy.perf_bench), with the kernel's own routine beside them.

    python -m readbench.copy.sweep --out copy.json     # what a run's copy pass writes
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from readbench.copy import perf_bench, replicas
from readbench.copy.cpuid import cpuid_flags
from readbench.errors import ReadbenchError
from readbench.kernel import cpu
from readbench.model import matrix
from readbench.store.rundir import atomic_write_json


def sweep(
    sizes: list[int],
    variants: list[str],
    src_aligns: list[int],
    dst_aligns: list[int],
    *,
    rounds: int = 2,
    processes: int = 2,
    values: int = 3,
    min_time: float = 0.01,
    check_perf_bench: bool = True,
    perf_bench_rounds: int = 7,
    pyperf_json: str | None = None,
    say: Callable[[str], None] = lambda _msg: None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """({results, perf_bench, skipped, variants, kernel_routine, unit, …}: copy.json, and
    perf_bench.validate()'s whole answer, for its table; None without the cross-check)."""
    results: list[dict[str, Any]] = []
    for sa in src_aligns:
        for da in dst_aligns:
            say(f"copy sweep: {len(variants)} variants x {len(sizes)} sizes, src+{sa} dst+{da}")
            results += replicas.sweep(sizes, variants, sa, da, rounds=rounds,
                                      processes=processes, values=values, min_time=min_time,
                                      json_out=pyperf_json, progress=say)  # fmt: skip
    out: dict[str, Any] = {
        "results": results,
        "perf_bench": [],
        "skipped": [],
        "variants": {v: replicas.DESCRIPTIONS[v] for v in variants},
        "kernel_routine": kernel_routine(),
        "unit": "gbps = 1e9 bytes/s; ns_per_copy = median pyperf value",
    }
    if not check_perf_bench:
        out["skipped"].append({"variant": "*", "reason": "--no-perf-bench"})
        return out, None
    say("perf bench mem memcpy cross-check at 4 KiB and 64 KiB ...")
    pb = perf_bench.validate(variants, rounds=perf_bench_rounds)
    out.update(perf_bench=pb["results"], skipped=pb["skipped"], perf_version=pb["perf_version"],
               perf_bench_offered=pb["offered"])  # fmt: skip
    return out, pb


def kernel_routine() -> dict[str, Any] | None:
    """The kernel's own copy-to-user routine for these flags, beside its replicas."""
    from readbench.kernel import copyroutine

    try:
        p = copyroutine.predict(platform.release(), cpu.kernel_flags(), None, cpuid=cpuid_flags())
    except (OSError, ValueError):
        return None
    return {"name": p["name"], "why": p["why"], "by_size": p["by_size"], "cpuid": p["cpuid"]}


def main(argv: list[str] | None = None) -> int:
    """The design sizes and default variants, written atomically to --out and printed."""
    p = argparse.ArgumentParser(prog="python -m readbench.copy.sweep")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    try:
        out, _ = sweep(list(matrix.DESIGN_SIZES), list(replicas.DEFAULT_VARIANTS), [0], [0],
                    say=lambda m: print(m, file=sys.stderr))  # fmt: skip
    except ReadbenchError as e:
        sys.stderr.write(f"readbench copy sweep: {e}\n")
        return e.exit_code
    atomic_write_json(args.out, out)
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
