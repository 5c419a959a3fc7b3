"""Perf pass of one cell: counters, then sampling attribution, each scoped to the timed loop.

Both sub-passes run the cell's C loop with perf group-leader fds as `ctl_fds`; the loop
enables them right before its first read and disables them right after its last, so
neither the Python driving the batches nor the ring draining is counted or sampled.
They are separate sub-passes because sampling interrupts perturb the counters.
"""

from __future__ import annotations

import platform
import time
from collections import Counter
from typing import Any

from readbench.kernel import copyroutine, cpu, perf_event_open
from readbench.kernel.attribution import attribute
from readbench.kernel.ksyms import Kallsyms
from readbench.kernel.perf_event_open import Sample
from readbench.kernel.text import open_kernel_text
from readbench.measure.readloop import ReadLoop, null_syscall_ns
from readbench.model import layers
from readbench.model.layers import USER_FRAME

BATCH_NS = 20_000_000  # ~20 ms per run() call: drains the ring well before it fills


def _drive(loop: ReadLoop, ctl: list[int], seconds: float, on_batch: Any = None) -> dict[str, int]:
    """Run batches until `seconds` of timed-loop time; returns totals over all batches."""
    loops = loop.calibrate(BATCH_NS)  # uncounted: calibration must not leak into the counters
    ops = syscalls = ns = 0
    deadline = time.monotonic() + seconds * 3 + 1  # wall-clock guard on a loaded machine
    while ns < seconds * 1e9 and time.monotonic() < deadline:
        r = loop.run(loops, ctl_fds=ctl)
        ops += r.ops
        syscalls += r.syscalls
        ns += r.ns
        if on_batch is not None:
            on_batch()
    return {"ops": ops, "syscalls": syscalls, "loop_ns": ns}


def count(loop: ReadLoop, seconds: float) -> dict[str, Any]:
    groups = perf_event_open.open_counters()
    try:
        ctl = [g.leader for g in groups if g.leader >= 0]
        tot = _drive(loop, ctl, seconds)
        for g in groups:
            g.read()
    finally:
        for g in groups:
            g.close()
    counters = perf_event_open.counter_report(groups, tot["ops"])
    by = {c["name"]: c for c in counters if c["supported"]}
    derived: dict[str, float] = {}
    if "cycles" in by and "instructions" in by:
        derived["ipc"] = by["instructions"]["value"] / by["cycles"]["value"]  # type: ignore[operator]
    if "cycles" in by and "task-clock" in by and by["task-clock"]["value"]:
        # Effective clock over the loop; pyperf's cpu_freq metadata is only a snapshot.
        derived["ghz"] = by["cycles"]["value"] / by["task-clock"]["value"]  # type: ignore[operator]
    return {
        "counters": counters,
        "hardware_counters": any(c["supported"] and c["kind"] == "hardware" for c in counters),
        "derived": derived,
        **tot,
    }


def sample(
    loop: ReadLoop, seconds: float, routine: dict[str, Any], kallsyms: Kallsyms
) -> dict[str, Any]:
    """Samples of the timed loop with their kernel call chains: copy-routine attribution,
    per-function and per-layer shares, and the folded stacks (`callchains`) the anatomy,
    the flame graph and the measured path are drawn from."""
    s = perf_event_open.Sampler()
    if not s.open(callchain=True):
        return {
            "copy_fraction": None,
            "method": None,
            "sampling": {"available": False, "reason": s.reason},
        }
    raw: list[Sample] = []
    try:
        tot = _drive(loop, [s.fd], seconds, on_batch=lambda: raw.extend(s.drain()))
        raw.extend(s.drain())
    finally:
        s.close()
    # read kallsyms again: BPF programs (another process's, on a shared machine) and modules
    # loaded since the pass began have their symbols only there
    fresh = Kallsyms.fresh()
    stacks = [_stack(fresh, x) for x in raw]
    # The enable/disable ioctl bracketing the timed loop is sampled too, outside the loop's
    # clock reads: it is no part of a read, so it leaves the denominators (and is counted).
    keep = [i for i, st in enumerate(stacks) if not layers.is_harness(st)]
    samples = [fresh.symbolize(raw[i].ip, raw[i].kernel) for i in keep]
    text, reason = open_kernel_text(kallsyms) if routine.get("inline") else (None, "")
    res = attribute(samples, routine, text, reason, stacks=[stacks[i] for i in keep])
    folded = Counter(";".join(reversed(st)) for st in stacks)
    res["callchains"] = {
        "format": "folded: kernel frames outermost first, ';'-joined ('[user]' for a "
        "user-mode sample); the perf enable/disable ioctl's samples included",
        "folded": [[k, n] for k, n in folded.most_common()],
        "samples": len(raw),
        "harness_samples": len(raw) - len(keep),
        "max_depth": max((len(st) for st in stacks), default=0),
        "max_stack": perf_event_open.max_stack(),
    }
    res["sampling"] = {
        "available": True,
        "event": s.event,
        "kind": s.kind,
        "period": s.period,
        "period_unit": "cycles" if s.event == "cycles" else "ns",
        "lost": s.lost,
        "throttled": s.throttled,
        "fallback_reason": s.reason,
        "max_sample_rate": perf_event_open.max_sample_rate(),
        "callchain": True,
        **tot,
    }
    return res


def _stack(kallsyms: Kallsyms, x: Sample) -> tuple[str, ...]:
    """Function names of one sample, innermost first. Return addresses are looked up one
    byte back: a call that is its function's last instruction returns into the next one."""
    if not x.kernel:
        return (USER_FRAME,)
    if not x.chain:
        return (kallsyms.lookup(x.ip),)
    return (kallsyms.lookup(x.chain[0]), *(kallsyms.lookup(a - 1) for a in x.chain[1:]))


# Hooks that see the length of each copy, best first: the copy routine itself (its length
# is RCX, kprobe only), then its caller _copy_to_iter (one copy per call for a user
# buffer; fentry reads the `bytes` argument through BTF).
CHUNK_HOOKS = (
    "kprobe:rep_movs_alternative:hist",
    "fentry:_copy_to_iter:hist",
    "kprobe:_copy_to_iter:hist",
)


def chunk_sizes(loop: ReadLoop, workload: str, size: int, loops: int = 2000) -> dict[str, Any]:
    """Histogram (log2 buckets) of the length each copy is handed, vs the read size.

    A 1 MiB cached read is many <= 4 KiB copies (copy_page_to_iter works per page).
    Runs after counting and sampling: a BPF program on the copy path would perturb both.
    """
    import os

    from readbench.bpf import support
    from readbench.bpf.attach import attach_hook
    from readbench.errors import BadInput, MissingCapability
    from readbench.model import hookspec

    refusals = []
    for name in CHUNK_HOOKS:
        try:
            ok, why = support.availability(name, workload)
        except (BadInput, MissingCapability, OSError) as e:
            ok, why = False, str(e)
        if not ok:
            refusals.append(f"{name}: {why}")
            continue
        try:
            h = attach_hook(hookspec.parse(name), tgid=os.getpid(), workload=workload)
        except (BadInput, MissingCapability, OSError) as e:
            refusals.append(f"{name}: {e}")
            continue
        try:
            r = loop.run(loops)
            snap = h.snapshot()
        finally:
            h.close()
        calls = sum(b["count"] for b in snap.get("hist_size") or [])
        return {
            "available": True,
            "hook": name,
            "requested": size,
            "reads": r.syscalls,
            "copies": calls,
            "copies_per_read": calls / r.syscalls if r.syscalls else None,
            "hist_log2": snap.get("hist_size"),
            "refused": refusals,
        }
    return {
        "available": False,
        "requested": size,
        "reason": "no hook on the copy routine or its caller works on this kernel "
        "(copy lengths per read not measured)",
        "refused": refusals,
    }


def device_wait(loop: ReadLoop, seconds: float) -> dict[str, Any]:
    """Device wait per read, measured from the block tracepoints (bpf/devwait.py) in a pass
    of its own, with the wall and task-clock per read of that same pass beside it."""
    from readbench.bpf.devwait import SOURCE, DeviceWait
    from readbench.errors import MissingCapability

    try:
        dw = DeviceWait()
    except (MissingCapability, OSError) as e:
        return {"available": False, "reason": str(e), "source": SOURCE}
    clock = perf_event_open.CounterGroup("software")
    try:
        clock.open(["task-clock"])
        ctl = [clock.leader] if clock.leader >= 0 else []
        loops = loop.calibrate(BATCH_NS)  # untimed reads: not counted (dw is off)
        ops = syscalls = ns = 0
        deadline = time.monotonic() + seconds * 3 + 1
        while ns < seconds * 1e9 and time.monotonic() < deadline:
            dw.on()
            r = loop.run(loops, ctl_fds=ctl)
            dw.off()
            ops, syscalls, ns = ops + r.ops, syscalls + r.syscalls, ns + r.ns
        time.sleep(0.05)  # the last batch's completions (a read returns after its own)
        got = dw.read()
        clock.read()
    finally:
        dw.close()
        clock.close()
    tc = next((c for c in clock.counters if c.supported and c.value is not None), None)
    cpu_ns = tc.value / ops if tc is not None and ops else None
    wall_ns = ns / ops if ops else None
    out: dict[str, Any] = {
        "available": True,
        "source": SOURCE,
        "reads": ops,
        "read_calls": syscalls,
        **got,
        "device_ns_per_read": got["busy_ns"] / ops if ops else None,
        "request_ns_mean": got["sum_ns"] / got["requests"] if got["requests"] else None,
        "requests_per_read": got["requests"] / ops if ops else None,
        "bytes_per_read": got["bytes"] / ops if ops else None,
        "wall_ns_per_read": wall_ns,
        "cpu_ns_per_read": cpu_ns,
        "wall_minus_cpu_ns": wall_ns - cpu_ns if wall_ns is not None and cpu_ns else None,
        "off_cpu_ns_per_read": got["off_ns"] / ops if ops else None,
        "runnable_ns_per_read": got["runnable_ns"] / ops if ops else None,
        "switches_per_read": got["switches"] / ops if ops else None,
    }
    for internal in ("on", "inflight", "busy_start", "off_at", "runnable_at"):
        out.pop(internal, None)
    return out


def measure(loop: ReadLoop, *, workload: str, size: int, seconds: float) -> dict[str, Any]:
    """The `perf` object of `readbench one --perf --json` for one open cell.

    Half of `seconds` (timed-loop time) goes to counting, half to sampling (with call
    chains); then the copy-length histogram and the device-wait pass, each BPF-hooked and
    so after the two perf sub-passes they would perturb.
    """
    ks = Kallsyms.load()
    routine = copyroutine.predict(platform.release(), cpu.kernel_flags(), set(ks.by_name) or None)
    counting = count(loop, seconds / 2)
    sampling = sample(loop, seconds / 2, routine, ks)
    chunks = chunk_sizes(loop, workload, size)
    devwait = device_wait(loop, min(seconds / 2, 0.5))
    null_ns = null_syscall_ns()
    path = next(
        (
            r
            for r in routine["by_size"]
            if r["min"] <= min(size, 4096) and (r["max"] is None or min(size, 4096) <= r["max"])
        ),
        None,
    )
    out = {
        "workload": workload,
        "size": size,
        "scope": "timed loop only (perf fds enabled/disabled by the C loop via ctl_fds)",
        "copy_fraction": sampling.get("copy_fraction"),
        "copy_fraction_of_kernel": sampling.get("copy_fraction_of_kernel"),
        "copy_symbol": sampling.get("copy_symbol"),
        "copy_address": sampling.get("copy_address"),
        "method": sampling.get("method"),
        "method_limits": sampling.get("method_limits"),
        "confirmed": sampling.get("confirmed"),
        "functions": sampling.get("functions", []),
        "groups": sampling.get("groups", []),
        "callchains": sampling.get("callchains"),
        "device_wait": devwait,
        "samples": sampling.get("samples"),
        "sampling": sampling.get("sampling"),
        "counters": counting["counters"],
        "hardware_counters": counting["hardware_counters"],
        "derived": counting["derived"],
        "counting": {k: counting[k] for k in ("ops", "syscalls", "loop_ns")},
        "chunks": chunks,
        # the entry/exit floor any syscall pays, measured in this pass (the anatomy's floor)
        "null_syscall_ns": null_ns,
        "routine": {
            "name": routine["name"],
            "symbol": routine["symbol"],
            "inline": routine["inline"],
            "era": routine["era"],
            # Page-cache and pipe copies are chunked to <= 4 KiB (kernel-copy-paths §4).
            "expected_path": path,
            "kallsyms_check": routine["kallsyms_check"]["status"],
        },
    }
    return out
