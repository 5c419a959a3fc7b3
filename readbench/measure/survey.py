"""The hook-point atlas of one workload and size: every point on its read path with what
the kernel permits there (tried for real), how often it fires per read() (counted for real,
never estimated), the arguments a program receives (BTF) and what they give access to.

    atlas(workload, size, data_file) -> {"workload", "size", "points": [...]}
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from readbench.bpf import binding
from readbench.bpf.points import FUNCTION_TYPES, PointHook, trial
from readbench.bpf.refusals import refusal
from readbench.errors import MissingCapability
from readbench.kernel import btf, copyroutine, cpu, ksyms
from readbench.kernel.tracefs import ensure_tracefs, events_dir
from readbench.measure.readloop import ReadLoop
from readbench.model.hookspec import SYSCALL_NR
from readbench.model.points import (
    READ_SIDE_GROUPS,
    Point,
    available,
    explain_silent,
    function_points,
    is_copy_routine,
    sees,
    syscall_points,
)
from readbench.model.workloads import get


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
    except binding.LibbpfError as e:
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


class _Trials:
    """Each attach type tried once per point, for real, with the counting program attached to
    this process: a type the kernel accepts is counted over the same reads in that very
    attachment (one load per type and point), a type it refuses keeps the kernel's reason."""

    def __init__(self, loop: ReadLoop, reads: int) -> None:
        self.loop, self.reads = loop, reads
        loop.run(min(reads, 100))  # first-touch work is not part of a steady read

    def __call__(self, attach: str, target: str, group: str = "") -> dict[str, Any]:
        return try_and_count(attach, target, group, self.loop, self.reads)


Trial = Callable[..., dict[str, Any]]  # (attach, target[, group]) -> {available, reason, …}


def _function_row(
    p: Point, syms: frozenset[str], b: btf.Btf | None, tr: Trial = trial
) -> dict[str, Any]:
    exists = p.target in syms
    args = b.function(p.target) if b else None
    presence = "present" if exists else (
        "inlined or absent: no symbol in /proc/kallsyms" + ("" if args is None else
        " (BTF still lists a prototype: a trampoline cannot reach an inlined copy)"))  # fmt: skip
    why = "no BTF prototype for it in this kernel's BTF: a trampoline needs one"
    no_btf = {"available": False, "reason": why}
    attach: dict[str, Any] = {}
    if not exists:
        attach = {t: {"available": False, "reason": presence} for t in FUNCTION_TYPES}
        if p.target == "security_file_permission":
            attach["lsm"] = tr("lsm", "file_permission")
    else:
        for t in FUNCTION_TYPES:
            trampoline = t in ("fentry", "fexit")
            attach[t] = dict(no_btf) if trampoline and args is None else tr(t, p.target)
    if p.target.startswith("security_") and exists:
        # The two attach types that can change a read's outcome: an LSM program on the hook,
        # and fmod_ret on the security_* function (the kernel allows it on security_*).
        attach["lsm"] = tr("lsm", "file_permission")
        attach["fmod_ret"] = tr("fmod_ret", p.target) if args is not None else dict(no_btf)
    return {"presence": presence, "args": args, "attach": attach}


def _tracepoint_row(p: Point, b: btf.Btf | None, tr: Trial = trial) -> dict[str, Any]:
    args = b.tracepoint(p.target) if b else None
    args = [{"name": a["name"] or f"arg{i}", "type": a["type"]} for i, a in enumerate(args or [])]
    attach = {t: tr(t, p.target, p.group) for t in ("rawtp", "tpbtf", "tp")}
    return {"presence": "present", "args": args, "attach": attach}


def read_side_tracepoints(groups: tuple[str, ...] = READ_SIDE_GROUPS) -> list[Point]:
    """Every tracepoint of the read-side groups this kernel has (tracefs, mounted privately)."""
    ensure_tracefs()
    ev = events_dir()
    if ev is None:
        return []
    out = []
    for g in groups:
        d = ev / g
        if d.is_dir():
            out += [Point(e.name, "tracepoint", g != "ext4", g)
                    for e in sorted(d.iterdir()) if (e / "format").exists()]  # fmt: skip
    return out


def _firing(points: list[Point], loop: ReadLoop, reads: int) -> list[Point]:
    """The tracepoints among `points` that fire during `reads` operations of `loop`."""
    from readbench.kernel.perf_event_open import TracepointCounters

    ev = events_dir()
    ids = {}
    for p in points:
        try:
            ids[p.key] = int((ev / p.group / p.target / "id").read_text()) if ev else -1
        except (OSError, ValueError):
            continue
    loop.run(min(reads, 100))
    with TracepointCounters(ids) as tc:
        if tc.leader < 0:  # perf refuses tracepoint events here: count each with BPF
            return [p for p in points if _bpf_fires(p, loop, reads)]
        loop.run(reads, ctl_fds=[tc.leader])
        counts = tc.read()
    return [p for p in points if counts.get(p.key, 0) > 0 or p.key in tc.refused]


def _bpf_fires(p: Point, loop: ReadLoop, reads: int) -> bool:
    return bool(try_and_count("rawtp", p.target, p.group, loop, reads).get("count"))


def _read_function(workload: str, data_file: Path | None) -> tuple[str, str]:
    """(function, note): the f_op function the workload's read calls (read_iter, or
    splice_read for splice) of its data file (or a pipe), read from the open file by BPF
    (readbench.bpf.fileops); a placeholder name and the reason when it cannot be read, so
    the row says so instead of guessing. ('', why) for a read that calls no f_op (mmap)."""
    from readbench.bpf.fileops import file_operations

    w = get(workload)
    if w.fs_op is None:
        return "", f"{workload}: {w.op}; no f_op read function is called per read"
    try:
        ops = file_operations(None if w.data is None else data_file)
    except (MissingCapability, OSError) as e:
        return f"f_op->{w.fs_op} (unknown)", f"not read from the file: {e}"
    fn = ops.get(w.fs_op) or (ops.get("read") if w.fs_op == "read_iter" else None)
    if not fn:
        return f"f_op->{w.fs_op} (none)", f"{ops['fs_type']}: the file has no {w.fs_op}"
    via = w.fs_op if ops.get(w.fs_op) else "read"
    return fn, f"this file's f_op->{via} ({ops['fs_type']}), read from the open file by BPF"


def kernel_view(not_root: str) -> tuple[Any, Any, str | None]:
    """What a survey of points needs of the running kernel, after the root check that
    counting BPF attachments needs: its BTF, its function names, and the out-of-line copy
    routine's symbol (None where `rep movsb` is inlined)."""
    if os.geteuid() != 0:
        raise MissingCapability(not_root)
    routine = copyroutine.identify()
    copy_sym = None if routine.get("inline") else routine.get("symbol")
    return btf.running(), ksyms.function_names(), copy_sym


def atlas(workload: str, size: int, data_file: Path | None, fs_type: str = "") -> dict[str, Any]:
    b, syms, copy_sym = kernel_view("readbench atlas tries and counts BPF attachments: run as root")
    read_fn, read_note = _read_function(workload, data_file)
    points = syscall_points(workload) + function_points(workload, read_fn, copy_sym, read_note)
    rows = []
    reads = get(workload).atlas_reads
    with ReadLoop(workload, size, data_file) as loop:
        tr = _Trials(loop, reads)
        for p in points:
            if p.kind == "tracepoint":
                row = _tracepoint_row(p, b, tr)
            elif p.target.startswith("rep movsb") or p.target.startswith("f_op->"):
                why = p.note if p.target.startswith("rep movsb") else read_note
                row = {"presence": "no symbol: " + why, "args": None,
                       "attach": {t: {"available": False, "reason": why}
                                  for t in FUNCTION_TYPES}}  # fmt: skip
            else:
                row = _function_row(p, syms, b, tr)
            rows.append(_finish(p, row, workload))
        # The read-side tracepoints: every one this kernel has is screened at once by perf's
        # tracepoint counters (no BPF load each), and those that fire on this workload are
        # tried and counted like any other point.
        for p in _firing(read_side_tracepoints(), loop, reads):
            rows.append(_finish(p, _tracepoint_row(p, b, tr), workload))
    explain_silent(rows, points, _CallChecker())
    return {
        "workload": workload,
        "size": size,
        "reads_counted": reads,
        "read_function": {"name": read_fn, "note": read_note},
        "fs_type": fs_type or None,
        "points": rows,
    }


class _CallChecker:
    """Whether one kernel function's machine code calls another, read from the running
    kernel's text (/proc/kcore, or a matching vmlinux) where it is readable."""

    def __init__(self) -> None:
        self._text: Any = None
        self.reason = ""
        self.source = ""

    def __call__(self, caller: str, callee: str) -> bool | None:
        """A direct call or jump (e8/e9 rel32) to `callee`, or up to 16 bytes past its entry
        (FineIBT calls skip the ENDBR), anywhere in `caller`; None when unreadable."""
        from readbench.kernel.text import open_kernel_text

        ks = ksyms.Kallsyms.load()
        if self._text is None and not self.reason:
            self._text, self.reason = open_kernel_text(ks)
            self.source = "/proc/kcore" if self._text and self._text.source == "kcore" else (
                self._text.path if self._text else "")  # fmt: skip
        start, target = ks.by_name.get(caller), ks.by_name.get(callee)
        if self._text is None or start is None or target is None:
            return None
        i = ks.addrs.index(start)
        end = next((a for a in ks.addrs[i + 1 :] if a > start), start + 4096)
        code = self._text.read(start, min(end - start, 1 << 16))
        if code is None:
            return None
        for k in range(len(code) - 4):
            if code[k] in (0xE8, 0xE9):
                rel = int.from_bytes(code[k + 1 : k + 5], "little", signed=True)
                if 0 <= start + k + 5 + rel - target <= 16:
                    return True
        return False


def _finish(p: Point, row: dict[str, Any], workload: str) -> dict[str, Any]:
    """The row's count: its primary type's (`atlas.points.ORDER`); every type that attached
    counted the same reads, so `fires_by_attach` shows they agree (a zero is never one attach
    mechanism's artefact) and gives the control types their own count."""
    avail = available({"kind": p.kind, "attach": row["attach"]})
    by_attach: dict[str, float] = {}
    notes = []
    for t in avail:
        v = row["attach"][t]
        by_attach[t] = v.pop("per_read")
        notes.append(f"counted with {t}: {v.pop('count')} firings in {v.pop('read_calls')} "
                     "read calls")  # fmt: skip
        for k in ("via", "ops", "per_op"):
            v.pop(k, None)
    if not avail:
        notes.append("no attach type is permitted here, so nothing can count it: " + "; ".join(
            f"{t}: {a['reason']}" for t, a in row["attach"].items()
        ))  # fmt: skip
    fires = by_attach[avail[0]] if avail else None
    return {
        "target": p.target,
        "kind": p.kind,
        "group": p.group or None,
        "layer": p.layer,
        "fs_independent": p.fs_independent,
        "presence": row["presence"],
        "attach": row["attach"],
        "fires_per_read": fires,
        "fires_by_attach": by_attach or None,
        "fires_note": "; ".join(notes),
        "silent": fires == 0,
        "args": row["args"],
        "sees": sees(p, row["args"], workload),
        "is_copy_routine": is_copy_routine(p.target),
        "note": p.note,
        "overhead_ns": None,
        "overhead_ci95": None,
    }


def survey(workload: str, size: int, data_dir: Path | None = None) -> dict[str, Any]:
    """The atlas of `workload` at `size` bytes per read on this kernel, with its data file in
    `data_dir` (checked: a directory that would falsify the workload is refused, exit 2)."""
    from readbench.measure import datafiles, machine

    data_dir = data_dir or datafiles.default_data_dir()
    datafiles.check_workload_fs(data_dir, [workload])
    datafiles.check_data_dir(data_dir)
    path = datafiles.ensure(data_dir, workload)
    res = atlas(workload, size, path, datafiles.fs_type(data_dir))
    res["virtualization"] = machine.virtualization(sorted(cpu.kernel_flags()))
    return res


def main(argv: list[str] | None = None) -> int:
    """`python -m readbench.measure.survey --workload W --size N [--data-dir D]`: the atlas as
    one JSON object on stdout, without overheads (a run's report takes them from its claims)."""
    import argparse

    from readbench.measure.worker import json_pass_main

    p = argparse.ArgumentParser(prog="python -m readbench.measure.survey")
    p.add_argument("--workload", required=True)
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--data-dir", type=Path, default=None)
    return json_pass_main(p, lambda a: survey(a.workload, a.size, a.data_dir), argv, "survey")


if __name__ == "__main__":
    raise SystemExit(main())
