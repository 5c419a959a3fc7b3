"""Count one point's firings per read of a workload: the atlas's counting program
(readbench.bpf.points) attached with one attach type, gated to the read loop's timed window,
so it counts the reads and never the untimed pauses between segments (an eviction's fadvise,
a pipe drain, the perf-counter ioctls)."""

from __future__ import annotations

import os
from typing import Any

from readbench.bpf import binding as lb
from readbench.bpf.points import FUNCTION_TYPES, TRACEPOINT_TYPES, PointHook, trial
from readbench.bpf.refusals import refusal
from readbench.measure.readloop import ReadLoop
from readbench.model.hookspec import SYSCALL_NR
from readbench.model.workloads import get

__all__ = [
    "FUNCTION_TYPES",
    "TRACEPOINT_TYPES",
    "PointHook",
    "fires_per_read",
    "trial",
    "try_and_count",
]


def try_and_count(
    attach: str, target: str, group: str, loop: ReadLoop, reads: int
) -> dict[str, Any]:
    """One load per attach type: try it for real and, where the kernel accepts it, count its
    firings over `reads` operations in the same attachment. {available, reason} plus the
    counts of fires_per_read() when it attached."""
    if os.geteuid() != 0:
        return {"available": False, "reason": "not root: loading BPF programs needs root"}
    try:
        c = fires_per_read(attach, target, group, loop, reads, warm=False)
    except lb.LibbpfError as e:
        return {"available": False, "reason": refusal(attach, e, target)}
    return {"available": True, "reason": f"loaded and attached {attach} on {target}", **c}


def fires_per_read(
    attach: str, target: str, group: str, loop: ReadLoop, reads: int, warm: bool = True
) -> dict[str, Any]:
    """Attach the counter to the point, make `reads` operations, count. `per_read`: per read
    call (the syscalls the loop really made: a pipe op may take several; per op where a read
    is no call, mmap); `per_op`: per operation. On sys_enter/sys_exit (raw, BTF, or the
    classic raw_syscalls ones) only the read's own syscall is counted (a workload without
    one: any syscall inside the window)."""
    if warm:
        loop.run(min(reads, 100))  # first-touch work is not part of a steady read
    sc = get(loop.workload).syscall
    raw = attach in ("rawtp", "tpbtf") or (attach == "tp" and group == "raw_syscalls")
    nr = SYSCALL_NR[sc] if raw and sc else None
    with PointHook(attach, target, group, only_syscall=nr, gated=True) as h:
        loop.set_gate(h.gate_address())
        try:
            before = h.fired()
            r = loop.run(reads)
            n = h.fired() - before
        finally:
            loop.set_gate(None)
    return {"count": n, "read_calls": r.calls, "ops": r.ops, "per_read": n / r.calls,
            "per_op": n / r.ops, "via": attach}  # fmt: skip
