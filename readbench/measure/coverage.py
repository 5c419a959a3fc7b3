"""The coverage matrix (`readbench atlas --coverage`): for every atlas point (the syscall
tracepoints of every read kind's syscall and the raw ones, every tracepoint of the filemap,
readahead and io_uring groups, and the path functions of every read kind where they attach)
and every read kind of the run, the measured fires per operation.

Each point is attached once (the raw syscall tracepoints once per kind: their syscall filter
is a load-time constant) and counted on each kind's own read loop, gated to that loop's
timed window, so an eviction or a pipe drain between segments is never counted as a read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from readbench.bpf.points import FUNCTION_TYPES, PointHook
from readbench.errors import MeasurementError, MissingCapability
from readbench.kernel import cpu
from readbench.measure.readloop import ReadLoop
from readbench.measure.survey import (
    _function_row,
    _read_function,
    _tracepoint_row,
    fires_per_read,
    kernel_view,
    read_side_tracepoints,
)
from readbench.model.hookspec import SYSCALL_NR
from readbench.model.points import (
    COVERAGE_GROUPS,
    ORDER,
    Point,
    available,
    function_points,
    sees,
    syscall_points,
)
from readbench.model.workloads import get

# Operations counted per kind: the kind's own atlas count, at most 1000 (a coverage run
# counts ~50 points on ~12 kinds).
MAX_OPS = 1000


def _points(kinds: list[str], read_fns: dict[str, tuple[str, str]], copy_sym: str | None):
    """The union of the kinds' points, in path order, each once (first kind's wording)."""
    out: dict[str, Point] = {}
    raw = syscall_points("mmap-cached")  # sys_enter and sys_exit only
    for p in (raw[0], raw[1]):
        out[p.key] = p
    for w in kinds:
        for p in syscall_points(w):
            if p.group == "syscalls":
                out.setdefault(p.key, p)
    for p in read_side_tracepoints(COVERAGE_GROUPS):
        out.setdefault(p.key, p)
    for w in kinds:
        fn, note = read_fns[w]
        for p in function_points(w, fn, copy_sym, note):
            out.setdefault(p.key, p)
    return list(out.values())


def _count(
    p: Point, via: str, loops: dict[str, ReadLoop], kinds: list[str]
) -> dict[str, float | None]:
    """Fires per op of point `p` on every kind, attached by `via`."""
    target = "file_permission" if via == "lsm" else p.target
    fires: dict[str, float | None] = {}
    per_kind_filter = p.group == "raw_syscalls"
    hook = None
    try:
        for w in kinds:
            loop = loops[w]
            reads = min(get(w).atlas_reads, MAX_OPS)
            if per_kind_filter:
                c = fires_per_read(via, target, p.group, loop, reads)
                fires[w] = c["per_op"]
                continue
            if hook is None:
                hook = PointHook(via, target, p.group, gated=True)
            loop.run(min(reads, 100))  # warm, ungated
            loop.set_gate(hook.gate_address())
            try:
                before = hook.fired()
                r = loop.run(reads)
                fires[w] = (hook.fired() - before) / r.ops
            finally:
                loop.set_gate(None)
    finally:
        if hook is not None:
            hook.close()
    return fires


def coverage(
    kinds: list[str],
    size: int,
    files: dict[str, Path | None],
    fs_type: str = "",
    aligns: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The coverage matrix of read kinds `kinds` at `size` bytes per op; `files`: each kind's
    data file (None: a pipe). A kind the kernel refuses (io_uring disabled) stays a column,
    with the kernel's reason and no counts."""
    b, syms, copy_sym = kernel_view(
        "readbench atlas --coverage counts BPF attachments: run as root"
    )
    aligns = aligns or {}
    loops: dict[str, ReadLoop] = {}
    cols: list[dict[str, Any]] = []
    try:
        for w in kinds:
            rec = get(w)
            col: dict[str, Any] = {
                "workload": w, "kind": rec.kind, "op": rec.op, "size": size,
                "syscalls": list(rec.syscalls), "fd_arg": rec.fd_arg and bool(rec.syscalls),
                "buffered": rec.data is not None and not rec.needs_direct_io, "refused": None,
            }  # fmt: skip
            try:
                loop = ReadLoop(w, size, files.get(w), io_align=aligns.get(w, 0))
            except MissingCapability as e:
                col["refused"] = str(e)
            else:
                try:
                    loop.run(1)  # a kind whose reads fail here (RWF_NOWAIT on tmpfs) is a column
                    loops[w] = loop  # with the reason, not the end of the matrix
                except MeasurementError as e:
                    loop.close()
                    col["refused"] = f"its reads fail on this filesystem: {e}"
            col["ops_counted"] = min(rec.atlas_reads, MAX_OPS) if w in loops else 0
            cols.append(col)
        live = [w for w in kinds if w in loops]
        read_fns = {w: _read_function(w, files.get(w)) for w in kinds}
        rows = []
        for p in _points(kinds, read_fns, copy_sym):
            if p.kind == "tracepoint":
                row = _tracepoint_row(p, b)
            elif p.target.startswith(("rep movsb", "f_op->")) or not p.target:
                why = p.note or "no symbol"
                row = {"presence": "no symbol: " + why, "args": None,
                       "attach": {t: {"available": False, "reason": why}
                                  for t in FUNCTION_TYPES}}  # fmt: skip
            else:
                row = _function_row(p, syms, b)
            avail = [a for a in available({"kind": p.kind, "attach": row["attach"]})
                     if a in ORDER[p.kind][:4]]  # fmt: skip
            via = avail[0] if avail else None
            fires: dict[str, float | None] = dict.fromkeys(kinds)
            note = ""
            if via is None:
                note = "no attach type is permitted here, so nothing can count it: " + "; ".join(
                    f"{t}: {a['reason']}" for t, a in row["attach"].items()
                )
            else:
                fires.update(_count(p, via, loops, live))
            rows.append({
                "key": p.key, "target": p.target, "group": p.group or None, "kind": p.kind,
                "layer": p.layer, "fs_independent": p.fs_independent,
                "presence": row["presence"], "attach": row["attach"], "via": via,
                "args": row["args"], "sees": sees(p, row["args"]), "fires_per_op": fires,
                "fires_note": note, "note": p.note,
            })  # fmt: skip
    finally:
        for loop in loops.values():
            loop.close()
    return {
        "size": size,
        "fs_type": fs_type or None,
        "kernel": os.uname().release,
        "kinds": cols,
        "syscall_nr": {sc: SYSCALL_NR[sc] for c in cols for sc in c["syscalls"]},
        "points": rows,
    }


def coverage_kinds(text: str | None, data_dir: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The read kinds of a coverage run: those asked for (BadInput on a bad one or one the data
    directory cannot serve), or every registry kind the directory allows, with the others
    listed and why."""
    from readbench.errors import BadInput
    from readbench.measure import datafiles
    from readbench.model.matrix import check_workload, parse_list
    from readbench.model.workloads import REGISTRY

    if text is not None:
        kinds = [check_workload(w) for w in parse_list(text, "--workloads")]
        datafiles.check_workload_fs(data_dir, kinds)
        return kinds, []
    kinds, left = [], []
    for w in REGISTRY:
        try:
            datafiles.check_workload_fs(data_dir, [w.name])
        except BadInput as e:
            left.append({"workload": w.name, "reason": str(e)})
            continue
        kinds.append(w.name)
    return kinds, left


def survey(
    kinds_text: str | None, size: int, data_dir: Path | None = None
) -> tuple[dict[str, Any], dict[str, Path | None]]:
    """The coverage matrix of the read kinds asked for (or every one `data_dir` allows) at
    `size` bytes per op, and each kind's data file. BadInput for a size a kind's rules refuse
    or a directory that would falsify a kind."""
    from readbench.errors import BadInput
    from readbench.measure import datafiles, machine

    data_dir = data_dir or datafiles.default_data_dir()
    kinds, left = coverage_kinds(kinds_text, data_dir)
    for w in kinds:
        why = get(w).cell_rule(size, 0)
        if why:
            raise BadInput(f"--size {size} for read kind {w}: {why}")
    datafiles.check_data_dir(data_dir)
    files = {w: datafiles.ensure(data_dir, w) for w in kinds}
    aligns = {}
    if any(get(w).needs_direct_io for w in kinds):
        a = datafiles.direct_io_alignment(data_dir)
        if a is None:
            raise BadInput(f"--data-dir {data_dir}: O_DIRECT is refused there (read kind direct)")
        aligns = {w: a for w in kinds if get(w).needs_direct_io}
    cov = coverage(kinds, size, files, datafiles.fs_type(data_dir), aligns)
    cov["not_measured"] = left
    cov["virtualization"] = machine.virtualization(sorted(cpu.kernel_flags()))
    return cov, files


def main(argv: list[str] | None = None) -> int:
    """`python -m readbench.measure.coverage --size N [--workloads W,…] [--data-dir D]`: the
    coverage matrix as one JSON object on stdout, without overheads."""
    import argparse

    from readbench.measure.worker import json_pass_main

    p = argparse.ArgumentParser(prog="python -m readbench.measure.coverage")
    p.add_argument("--workloads", default=None)
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--data-dir", type=Path, default=None)
    return json_pass_main(p, lambda a: survey(a.workloads, a.size, a.data_dir)[0], argv, "coverage")


if __name__ == "__main__":
    raise SystemExit(main())
