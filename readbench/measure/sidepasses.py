"""Side passes of one cell, run in their own process after the timing rounds, never while timing.

  bpfstats  the cell's hook attached with BPF_ENABLE_STATS on (fd-scoped), so each program's
            run_cnt / run_time_ns splits the hook's cost into program and mechanism time. The
            stats switch costs ~20 ns per program run, which is why timing runs without it.
  perf      counters and sampling attribution of the timed loop (readbench.measure.perf_profile).

Run as `python -m readbench.measure.sidepasses --kind K ...`; prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from readbench.measure.readloop import BatchResult, ReadLoop
from readbench.measure.worker import add_cell_args, attach_hook, die_with_parent, open_loop


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


def _stats_run(
    loop: ReadLoop, loops: int, args: argparse.Namespace, **kw: Any
) -> tuple[BatchResult, dict[str, Any], dict[str, Any]]:
    """Attach the cell's hook with stats on, warm it, and run `loops` between two snapshots."""
    with attach_hook(args, stats=True, **kw) as h:
        loop.run(min(loops, 1000))  # warm the hooked path
        before = h.snapshot()
        res = loop.run(loops)
        return res, before, h.snapshot()


def bpfstats_pass(args: argparse.Namespace) -> dict[str, Any]:
    loop = open_loop(args)
    try:
        loops = loop.calibrate(args.seconds * 1e9)
        res, before, after = _stats_run(loop, loops, args)
        # The same programs with a filter that never matches: what the stats clock reads and
        # the dispatch into a program cost by themselves (the floor under run_time_ns/run_cnt).
        f_res, f_before, f_after = _stats_run(loop, loops, args, floor=True)
    finally:
        loop.close()
    return {
        "hook": after["hook"],
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


def perf_pass(args: argparse.Namespace) -> dict[str, Any]:
    from readbench.measure import perf_profile

    loop = open_loop(args)
    hook = None
    try:
        hook = attach_hook(args)
        return perf_profile.measure(
            loop, workload=args.rb_workload, size=args.rb_size, seconds=args.seconds
        )
    finally:
        if hook is not None:
            hook.close()
        loop.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m readbench.measure.sidepasses")
    p.add_argument("--kind", choices=["bpfstats", "perf"], required=True)
    add_cell_args(p)
    p.add_argument("--seconds", type=float, default=0.5)
    args = p.parse_args(argv)
    die_with_parent()
    out = bpfstats_pass(args) if args.kind == "bpfstats" else perf_pass(args)
    # The runner parses this one line from the child's stdout (not a user-facing printer).
    json.dump(out, sys.stdout, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
