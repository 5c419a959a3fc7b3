"""The hook-point atlas of one workload and size: every point on its read path with what
the kernel permits there (tried for real), how often it fires per read() (counted for real,
never estimated), the arguments a program receives (BTF) and what they give access to.

    atlas(workload, size, data_file) -> {"workload", "size", "points": [...]}
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from readbench.atlas import probe
from readbench.atlas.points import (
    READ_SIDE_GROUPS,
    Point,
    function_points,
    is_copy_routine,
    syscall_points,
)
from readbench.kernel import btf, copyroutine, ksyms
from readbench.kernel.tracefs import ensure_tracefs, events_dir
from readbench.measure.readloop import ReadLoop

READS = {"cached": 2000, "cached-stream": 2000, "pipe": 2000, "uncached": 200, "direct": 200}


def sees(point: Point, args: list[dict[str, str]] | None) -> dict[str, Any]:
    """What the arguments give a program access to, from their C types (and, for the
    syscall tracepoints, from the registers the pt_regs argument holds)."""
    types = " ".join(a["type"] for a in args or [])
    names = {a["name"] for a in args or []}
    exit_side = point.target.startswith("sys_exit")
    if point.group in ("raw_syscalls", "syscalls"):
        return {
            "file": "fd number only (the struct file via current->files, a BTF walk)",
            "user_buffer": True,
            "data": "after the copy, in the user buffer (exit side)" if exit_side else False,
            "folio": False,
            "byte_count": True,
            "offset": point.target.endswith("pread64"),
            "data_before_user_space": False,
        }
    data_kernel = any(t in types for t in ("struct page *", "struct folio *", "folio_batch"))
    data_kernel = data_kernel or point.target == "_copy_to_iter"  # `addr`: the kernel source
    file = next((t for t in ("struct file *", "struct kiocb *", "struct address_space *",
                             "struct dentry *", "struct path *", "struct inode *") if t in types),
                None)  # fmt: skip
    return {
        "file": file or False,
        "user_buffer": "iov_iter" in types or "buf" in names,
        "data": "kernel side, before the copy" if data_kernel else False,
        "folio": "struct page *" in types or "folio" in types,
        "byte_count": any(n in names for n in ("count", "bytes", "len")) or "iov_iter" in types,
        "offset": "loff_t" in types or any(n in names for n in ("pos", "ppos", "offset", "index")),
        "data_before_user_space": data_kernel,
    }


def _function_row(p: Point, syms: frozenset[str], b: btf.Btf | None) -> dict[str, Any]:
    exists = p.target in syms
    args = b.function(p.target) if b else None
    presence = "present" if exists else (
        "inlined or absent: no symbol in /proc/kallsyms" + ("" if args is None else
        " (BTF still lists a prototype: a trampoline cannot reach an inlined copy)"))  # fmt: skip
    attach: dict[str, Any] = {}
    if not exists:
        attach = {t: {"available": False, "reason": presence} for t in probe.FUNCTION_TYPES}
    else:
        for t in probe.FUNCTION_TYPES:
            if t in ("fentry", "fexit") and args is None:
                attach[t] = {"available": False, "reason": "no BTF prototype: a trampoline "
                             "needs one (assembly routines have none)"}  # fmt: skip
            else:
                attach[t] = probe.trial(t, p.target)
    if p.target == "security_file_permission":
        attach["lsm"] = probe.trial("lsm", "file_permission")
    return {"presence": presence, "args": args, "attach": attach}


def _tracepoint_row(p: Point, b: btf.Btf | None) -> dict[str, Any]:
    args = b.tracepoint(p.target) if b else None
    args = [{"name": a["name"] or f"arg{i}", "type": a["type"]} for i, a in enumerate(args or [])]
    attach = {"rawtp": probe.trial("rawtp", p.target)}
    attach["tpbtf"] = probe.trial("tpbtf", p.target)
    attach["tp"] = probe.trial("tp", p.target, p.group)
    return {"presence": "present", "args": args, "attach": attach}


def read_side_tracepoints() -> list[Point]:
    """Every tracepoint of the read-side groups this kernel has (tracefs, mounted privately)."""
    ensure_tracefs()
    ev = events_dir()
    if ev is None:
        return []
    out = []
    for g in READ_SIDE_GROUPS:
        d = ev / g
        if d.is_dir():
            layer = {"filemap": "page-cache lookup", "readahead": "page-cache lookup",
                     "iomap": "block and device wait", "block": "block and device wait",
                     "ext4": "filesystem read_iter"}[g]  # fmt: skip
            out += [Point(e.name, "tracepoint", layer, g != "ext4", g)
                    for e in sorted(d.iterdir()) if (e / "format").exists()]  # fmt: skip
    return out


def atlas(workload: str, size: int, data_file: Path | None, fs_type: str) -> dict[str, Any]:
    if os.geteuid() != 0:
        from readbench.errors import MissingCapability

        raise MissingCapability("readbench atlas tries and counts BPF attachments: run as root")
    b = btf.running()
    syms = ksyms.function_names()
    routine = copyroutine.probe()
    copy_sym = None if routine.get("inline") else routine.get("symbol")
    fs_iter = (
        f"{fs_type}_file_read_iter" if fs_type not in ("", "unknown") else "generic_file_read_iter"
    )
    points = syscall_points(workload) + function_points(workload, fs_iter, copy_sym)
    rows = []
    reads = READS[workload]
    with ReadLoop(workload, size, data_file) as loop:
        for p in points:
            if p.kind == "tracepoint":
                row = _tracepoint_row(p, b)
            elif p.target.startswith("rep movsb"):
                row = {"presence": "inlined: no symbol", "args": None,
                       "attach": {t: {"available": False, "reason": p.note}
                                  for t in probe.FUNCTION_TYPES}}  # fmt: skip
            else:
                row = _function_row(p, syms, b)
            rows.append(_finish(p, row, loop, reads))
        # The read-side tracepoints: counted, kept where they fire for this workload.
        for p in read_side_tracepoints():
            try:
                c = probe.fires_per_read("rawtp", p.target, p.group, loop, reads)
            except Exception:
                c = None
            if c and c["count"] > 0:
                rows.append(_finish(p, _tracepoint_row(p, b), loop, reads))
    return {"workload": workload, "size": size, "reads_counted": reads, "points": rows}


def _finish(p: Point, row: dict[str, Any], loop: ReadLoop, reads: int) -> dict[str, Any]:
    order = ("rawtp", "tpbtf", "tp") if p.kind == "tracepoint" else (
        "fentry", "kprobe", "fexit", "kretprobe", "lsm")  # fmt: skip
    via = next((t for t in order if row["attach"].get(t, {}).get("available")), None)
    fires: float | None = None
    fires_reason = ""
    if via is None:
        fires_reason = "no attach type is permitted here, so nothing can count it: " + "; ".join(
            f"{t}: {a['reason']}" for t, a in row["attach"].items()
        )
    else:
        target = "file_permission" if via == "lsm" else p.target
        c = probe.fires_per_read(via, target, p.group, loop, reads)
        fires = c["per_read"]
        fires_reason = f"counted with {via}: {c['count']} firings in {c['read_calls']} read calls"
    return {
        "target": p.target,
        "kind": p.kind,
        "group": p.group or None,
        "layer": p.layer,
        "fs_independent": p.fs_independent,
        "presence": row["presence"],
        "attach": row["attach"],
        "fires_per_read": fires,
        "fires_note": fires_reason,
        "args": row["args"],
        "sees": sees(p, row["args"]),
        "is_copy_routine": is_copy_routine(p.target),
        "note": p.note,
        "overhead_ns": None,
        "overhead_ci95": None,
    }
