"""Side passes of one cell, run in their own process after the timing rounds, never while timing.

  bpfstats  the cell's hook attached with BPF_ENABLE_STATS on (fd-scoped), so each program's
            run_cnt / run_time_ns splits the hook's cost into program and mechanism time. The
            stats switch costs ~20 ns per program run, which is why timing runs without it.
  perf      counters and sampling attribution of the timed loop (readbench.perfpass).

Run as `python -m readbench.sidepass --kind K ...`; prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from readbench.driver import ReadLoop
from readbench.worker import die_with_parent


def calibrate(loop: ReadLoop, seconds: float) -> int:
    """Loops that take about `seconds` (from a short untimed trial)."""
    loops = 16
    while True:
        r = loop.run(loops)
        if r.ns > 20e6 or loops >= 1 << 26:
            return max(1, int(loops * seconds * 1e9 / max(r.ns, 1)))
        loops *= 4


def _ns_per_run(before: dict[str, Any], after: dict[str, Any]) -> float | None:
    """Mean run_time_ns per program run between two snapshots (all programs of the hook)."""

    def totals(s: dict[str, Any]) -> tuple[int, int]:
        progs = s.get("programs") or []
        return (
            sum(int(p.get("run_cnt") or 0) for p in progs),
            sum(int(p.get("run_time_ns") or 0) for p in progs),
        )

    c0, t0 = totals(before)
    c1, t1 = totals(after)
    return (t1 - t0) / (c1 - c0) if c1 > c0 else None


def _count_check(before: dict[str, Any], after: dict[str, Any], syscalls: int) -> dict[str, Any]:
    """A `count` body must have counted exactly the read calls the loop made (its tgid filter
    and syscall-id filter at work); other bodies count nothing to check."""
    if after.get("count") is None:
        return {"applies": False}
    counted = int(after["count"]) - int(before.get("count") or 0)
    return {"applies": True, "counted": counted, "syscalls": syscalls, "ok": counted == syscalls}


def bpfstats_pass(args: argparse.Namespace) -> dict[str, Any]:
    from readbench import hooks

    spec = hooks.parse(args.hook)
    loop = ReadLoop(args.workload, args.size, args.data or None, args.offset, args.align)
    try:
        loops = calibrate(loop, args.seconds)
        with hooks.attach(spec, tgid=os.getpid(), workload=args.workload, stats=True) as h:
            loop.run(min(loops, 1000))  # warm the hooked path
            before = h.snapshot()
            res = loop.run(loops)
            after = h.snapshot()
        # The same programs with a filter that never matches: what the stats clock reads and
        # the dispatch into a program cost by themselves (the floor under run_time_ns/run_cnt).
        with hooks.attach(
            spec, tgid=os.getpid(), workload=args.workload, stats=True, floor=True
        ) as f:
            loop.run(min(loops, 1000))
            f_before = f.snapshot()
            f_res = loop.run(loops)
            f_after = f.snapshot()
        return {
            "hook": spec.name,
            "ops": res.ops,
            "syscalls": res.syscalls,
            "seconds": res.ns / 1e9,
            "ns_per_op": res.ns_per_op,
            "stats_enabled": True,
            "snapshot_before": before,
            "snapshot": after,
            "floor": {
                "ops": f_res.ops,
                "ns_per_op": f_res.ns_per_op,
                "ns_per_run": _ns_per_run(f_before, f_after),
                "snapshot_before": f_before,
                "snapshot": f_after,
            },
            "ns_per_run": _ns_per_run(before, after),
            "count_check": _count_check(before, after, res.syscalls),
        }

    finally:
        loop.close()


def perf_pass(args: argparse.Namespace) -> dict[str, Any]:
    from readbench import perfpass

    loop = ReadLoop(args.workload, args.size, args.data or None, args.offset, args.align)
    hook = None
    try:
        if args.hook != "none":
            from readbench import hooks

            hook = hooks.attach(hooks.parse(args.hook), tgid=os.getpid(), workload=args.workload)
        return perfpass.measure(loop, workload=args.workload, size=args.size, seconds=args.seconds)
    finally:
        if hook is not None:
            hook.close()
        loop.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m readbench.sidepass")
    p.add_argument("--kind", choices=["bpfstats", "perf"], required=True)
    p.add_argument("--workload", required=True)
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--hook", default="none")
    p.add_argument("--data", default="")
    p.add_argument("--align", type=int, default=0)
    p.add_argument("--seconds", type=float, default=0.5)
    args = p.parse_args(argv)
    die_with_parent()
    out = bpfstats_pass(args) if args.kind == "bpfstats" else perf_pass(args)
    json.dump(out, sys.stdout, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
