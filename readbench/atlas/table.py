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
    CAN,
    READ_SIDE_GROUPS,
    Point,
    available,
    explain_silent,
    function_points,
    is_copy_routine,
    syscall_points,
)
from readbench.errors import MissingCapability
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
        if p.target == "security_file_permission":
            attach["lsm"] = probe.trial("lsm", "file_permission")
    else:
        for t in probe.FUNCTION_TYPES:
            if t in ("fentry", "fexit") and args is None:
                attach[t] = {"available": False, "reason": "no BTF prototype: a trampoline "
                             "needs one (assembly routines have none)"}  # fmt: skip
            else:
                attach[t] = probe.trial(t, p.target)
    if p.target.startswith("security_") and exists:
        # The two attach types that can change a read's outcome: an LSM program on the hook,
        # and fmod_ret on the security_* function (the kernel allows it on security_*).
        attach["lsm"] = probe.trial("lsm", "file_permission")
        attach["fmod_ret"] = (
            probe.trial("fmod_ret", p.target) if args is not None else
            {"available": False, "reason": "no BTF prototype: a trampoline needs one"})  # fmt: skip
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
            out += [Point(e.name, "tracepoint", g != "ext4", g)
                    for e in sorted(d.iterdir()) if (e / "format").exists()]  # fmt: skip
    return out


def _read_function(workload: str, data_file: Path | None) -> tuple[str, str]:
    """(function, note): the data file's (or a pipe's) f_op->read_iter, read from the open
    file by BPF (readbench.bpf.fileops); a placeholder name and the reason when it cannot be
    read, so the row says so instead of guessing."""
    from readbench.bpf.fileops import file_operations

    try:
        ops = file_operations(None if workload == "pipe" else data_file)
    except (MissingCapability, OSError) as e:
        return "f_op->read_iter (unknown)", f"not read from the file: {e}"
    fn = ops.get("read_iter") or ops.get("read")
    if not fn:
        return "f_op->read_iter (none)", f"{ops['fs_type']}: the file has no read function"
    via = "read_iter" if ops.get("read_iter") else "read"
    return fn, f"this file's f_op->{via} ({ops['fs_type']}), read from the open file by BPF"


def atlas(workload: str, size: int, data_file: Path | None, fs_type: str = "") -> dict[str, Any]:
    if os.geteuid() != 0:
        raise MissingCapability("readbench atlas tries and counts BPF attachments: run as root")
    b = btf.running()
    syms = ksyms.function_names()
    routine = copyroutine.probe()
    copy_sym = None if routine.get("inline") else routine.get("symbol")
    read_fn, read_note = _read_function(workload, data_file)
    points = syscall_points(workload) + function_points(workload, read_fn, copy_sym, read_note)
    rows = []
    reads = READS[workload]
    with ReadLoop(workload, size, data_file) as loop:
        for p in points:
            if p.kind == "tracepoint":
                row = _tracepoint_row(p, b)
            elif p.target.startswith("rep movsb") or p.target.startswith("f_op->"):
                why = p.note if p.target.startswith("rep movsb") else read_note
                row = {"presence": "no symbol: " + why, "args": None,
                       "attach": {t: {"available": False, "reason": why}
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


# The attach types that can change a read's outcome (deny it, or make it return something
# else): counted on their own wherever they attach, since the control need ranks by them.
CONTROL_TYPES = CAN["control"]


def _finish(p: Point, row: dict[str, Any], loop: ReadLoop, reads: int) -> dict[str, Any]:
    avail = available({"kind": p.kind, "attach": row["attach"]})
    fires: float | None = None
    by_attach: dict[str, float] = {}
    notes = []
    if not avail:
        notes.append("no attach type is permitted here, so nothing can count it: " + "; ".join(
            f"{t}: {a['reason']}" for t, a in row["attach"].items()
        ))  # fmt: skip
    else:
        # The first permitted type counts the point; the control types count on their own; a
        # point the first type found silent is counted once more by another type, so a zero
        # is never one attach mechanism's artefact.
        count = [avail[0], *(t for t in avail[1:] if t in CONTROL_TYPES)]
        for t in avail[1:]:
            if t not in count:
                count.append(t)
                break
        for i, via in enumerate(count):
            if i > 0 and via not in CONTROL_TYPES and by_attach[avail[0]] != 0:
                continue
            target = "file_permission" if via == "lsm" else p.target
            c = probe.fires_per_read(via, target, p.group, loop, reads)
            by_attach[via] = c["per_read"]
            notes.append(
                f"counted with {via}: {c['count']} firings in {c['read_calls']} read calls"
            )
        fires = by_attach[avail[0]]
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
        "sees": sees(p, row["args"]),
        "is_copy_routine": is_copy_routine(p.target),
        "note": p.note,
        "overhead_ns": None,
        "overhead_ci95": None,
    }
