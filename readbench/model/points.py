"""The points on a workload's read path, in the order a read() passes them (pure).

Functions are named as on 6.x kernels; the running kernel decides what exists (kallsyms:
a symbol to hook; BTF: a prototype to read arguments from), and a name it lacks is shown
as inlined, renamed or absent rather than dropped. Tracepoints come in two kinds: the
syscall ones (every workload) and the read-side groups (filemap, readahead, iomap, block,
ext4), which the atlas discovers in tracefs and keeps where they fire.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from readbench.model import layers
from readbench.model.hookspec import FUNC_TARGETS, PRE64_ROUTINES
from readbench.model.workloads import get

READ_SIDE_GROUPS = ("filemap", "readahead", "io_uring", "iomap", "block", "ext4")
# The groups the coverage matrix counts on every read kind (besides the syscall ones).
COVERAGE_GROUPS = ("filemap", "readahead", "io_uring")


@dataclass(frozen=True)
class Point:
    target: str  # bare function or tracepoint name
    kind: str  # function | tracepoint
    fs_independent: bool
    group: str = ""  # tracepoint group in tracefs (syscalls, raw_syscalls, filemap, ...)
    note: str = ""
    # The point that calls this function on this path (in the kernel source): a function
    # that never fires is explained from its caller's count and, where the kernel text is
    # readable, from whether the caller's code holds a call to it at all.
    caller: str = ""
    # When the source calls it only under a runtime condition, that condition (a point that
    # attaches but never fires is checked against it).
    only_when: str = ""
    # The row whose count stands for the caller's, when the caller is no row of its own
    # (the syscall function: its tracepoint counts it).
    caller_counted_by: str = ""
    # The layer where the target's name cannot say (a read function the file did not reveal).
    layer_hint: str = ""

    @property
    def layer(self) -> str:
        """The read-path layer (readbench.model.layers): by the function's name, or by the
        tracepoint's group and name."""
        if self.kind == "tracepoint":
            return layers.tracepoint_layer(self.group, self.target)
        found = layers.function_layer(self.target)
        return self.layer_hint if found == layers.OTHER and self.layer_hint else found

    @property
    def key(self) -> str:
        return f"{self.group}/{self.target}" if self.group else self.target


def syscall_points(workload: str) -> list[Point]:
    """The raw syscall tracepoints (every workload: they count 0 where a read is no syscall)
    and the classic ones of the workload's own syscall."""
    sc = get(workload).syscall
    raw = [
        Point("sys_enter", "tracepoint", True, "raw_syscalls",
              "every syscall of every process: filter on the syscall id and the process"),
        Point("sys_exit", "tracepoint", True, "raw_syscalls"),
    ]  # fmt: skip
    if sc is None:
        return raw
    return [
        raw[0],
        Point(f"sys_enter_{sc}", "tracepoint", True, "syscalls",
              f"only {sc}(): the syscall tracepoint slow path for every syscall once enabled"),
        Point(f"sys_exit_{sc}", "tracepoint", True, "syscalls"),
        raw[1],
    ]  # fmt: skip


def function_points(
    workload: str, read_fn: str, copy_routine: str | None, read_note: str = ""
) -> list[Point]:
    """The path's kernel functions, from the workload's record (readbench.model.workloads).
    `read_fn`: the function the data file's (or pipe's) f_op points at for this read
    (readbench.bpf.fileops reads it from the open file); `copy_routine`: the routine's symbol,
    or None when the copy is an inlined `rep movsb` (then no symbol exists to hook)."""
    w = get(workload)
    entry = [Point(s.target, "function", True, note=s.note, caller=s.caller,
                   caller_counted_by=s.caller_counted_by) for s in w.entry]  # fmt: skip
    if w.fs_op is None:
        return entry
    via = w.fs_caller
    pipe = w.data is None
    notify = [
        Point("fsnotify_access", "function", True,
              note="an inline wrapper of __fsnotify_parent in most builds", caller=via),
        Point("__fsnotify_parent", "function", True, caller=via,
              only_when="the file, its parent directory or its mount has an fsnotify watch "
              "(inotify, fanotify): fsnotify_access() returns early otherwise"),
    ] if via in ("vfs_read", "vfs_readv") else []  # fmt: skip
    atime = Point(
        "touch_atime", "function", True,
        caller=read_fn if pipe else "filemap_read",
        only_when="the open is not O_NOATIME, the inode not NOATIME and the file not an "
        "anonymous pipe (6.15+): file_accessed() skips it then; relatime mounts still call it",
    )  # fmt: skip
    kernel = w.copy == "kernel"
    copy = [
        Point("copy_page_to_iter", "function", True,
              caller=read_fn if pipe else "filemap_read",
              note="into a registered (kernel-mapped) buffer: a memcpy, not copy_to_user"
              if kernel else ""),
        Point("_copy_to_iter", "function", True, caller="copy_page_to_iter"),
    ] if w.copy else []  # fmt: skip
    routine = [
        Point(copy_routine or "rep movsb (inlined)", "function", True,
              note="assembly: no BTF, kprobe only; length in rcx" if copy_routine else
              "FSRM: copy_user_generic() inlines rep movsb into _copy_to_iter: no symbol",
              caller="_copy_to_iter"),
    ] if w.copy == "user" else []  # fmt: skip
    read = Point(read_fn, "function", pipe, note=read_note, caller=via,
                 layer_hint=layers.PIPE if pipe else layers.FS)  # fmt: skip
    if pipe:
        return [*entry, *notify, read, atime, *copy, *routine]
    if w.fs_op == "splice_read":
        return [*entry, read,
                Point("filemap_splice_read", "function", True,
                      caller=read_fn, note="6.5+: page references into the pipe, no copy"),
                Point("filemap_get_pages", "function", True,
                      caller="filemap_splice_read")]  # fmt: skip
    if not w.page_cache:
        return [*entry, read,
                Point("iomap_dio_rw", "function", False,
                      note="O_DIRECT through iomap (ext4, xfs): DMA into the user pages, no copy",
                      caller=read_fn)]  # fmt: skip
    cache = [
        Point("filemap_read", "function", True, caller=read_fn),
        Point("filemap_get_pages", "function", True, caller="filemap_read"),
    ]
    return [*entry, *notify, read, *cache, atime, *copy, *routine]


def sees(
    point: Point, args: list[dict[str, str]] | None, workload: str | None = None
) -> dict[str, Any]:
    """What the arguments give a program access to, from their C types (and, for the
    syscall tracepoints, from the registers the pt_regs argument holds: for `workload`'s
    syscall, whose first argument may be no file's fd and second no buffer)."""
    types = " ".join(a["type"] for a in args or [])
    names = {a["name"] for a in args or []}
    exit_side = point.target.startswith("sys_exit")
    if point.group in ("raw_syscalls", "syscalls"):
        w = get(workload) if workload else None
        fd = w is None or (w.fd_arg and bool(w.syscalls))
        buf = w is None or (w.buffer_arg and bool(w.syscalls))
        return {
            "file": "fd number only (the struct file via current->files, a BTF walk)"
            if fd
            else False,
            "user_buffer": buf,
            "data": "after the copy, in the user buffer (exit side)"
            if exit_side and buf
            else False,
            "folio": False,
            "byte_count": True,
            "offset": point.target.endswith("pread64"),
            "data_before_user_space": False,
        }
    folio = "struct page *" in types or "folio" in types
    # A folio argument is not the bytes read: a tracepoint's folio is one being added or
    # read, before its I/O fills it; a function's is its source only where it copies from
    # it, or, for an output batch, once the function has filled it (DATA_AT_EXIT).
    at_exit = DATA_AT_EXIT.get(point.target)
    data_kernel = point.kind == "function" and (folio or point.target == "_copy_to_iter")
    data: str | bool = "kernel side, before the copy" if data_kernel else False
    if data_kernel and at_exit:
        data = f"kernel side, before the copy: at exit only (fexit), once it has filled {at_exit}"
    # a page fault's arguments reach the file too: vmf->vma->vm_file, vma->vm_file
    file = next((t for t in ("struct file *", "struct kiocb *", "struct io_kiocb *",
                             "struct address_space *", "struct dentry *", "struct path *",
                             "struct inode *", "struct vm_fault *", "struct vm_area_struct *")
                 if t in types), None)  # fmt: skip
    return {
        "file": file or False,
        "user_buffer": "iov_iter" in types or "buf" in names,
        "data": data,
        "data_at": ("exit" if at_exit else "entry") if data_kernel else None,
        "folio": folio,
        "byte_count": any(n in names for n in ("count", "bytes", "len")) or "iov_iter" in types,
        "offset": "loff_t" in types or any(n in names for n in ("pos", "ppos", "offset", "index")),
        "data_before_user_space": data_kernel,
    }


def is_copy_routine(name: str) -> bool:
    return name == "rep_movs_alternative" or name in PRE64_ROUTINES


# Attach types in the order a point is counted and measured by (its primary type first):
# the cheapest mechanism that sees the point's arguments.
ORDER = {
    "tracepoint": ("rawtp", "tpbtf", "tp"),
    "function": ("fentry", "kprobe", "fexit", "kretprobe", "lsm", "fmod_ret"),
}
# Where no cost was measured: the dispatch cost order the kernel's selftests/bpf trigger
# benchmarks publish for x86 (raw_tp ≈ fentry < tp_btf, fexit, fmod_ret < classic tp <
# kprobe < kretprobe), so a tie between points goes to the cheaper mechanism.
DISPATCH_RANK = {"rawtp": 0, "fentry": 0, "tpbtf": 1, "fexit": 1, "fmod_ret": 1, "lsm": 1,
                 "tp": 2, "kprobe": 3, "kretprobe": 4}  # fmt: skip
# What each need can be served with: only an LSM program or fmod_ret can change a read's
# outcome; any tracing type can observe or read the data (but see DATA_AT_EXIT).
CAN = {
    "observe": None,  # every type
    "data": None,
    "control": ("lsm", "fmod_ret"),
}
# Functions whose data-bearing argument is an output the function fills: at entry it is
# empty (filemap_read hands filemap_get_pages an initialised, empty batch), so only a
# program run at exit with the arguments (fexit; a kretprobe has lost them) sees the data.
DATA_AT_EXIT = {"filemap_get_pages": "fbatch"}


def available(row: dict[str, Any], need: str | None = None) -> list[str]:
    """The attach types the kernel permits at `row`, primary first; only those that can
    serve `need` when one is given."""
    ok = [a for a in ORDER[row["kind"]] if (row["attach"].get(a) or {}).get("available")]
    allowed = CAN.get(need or "observe")
    if need == "data" and (row.get("sees") or {}).get("data_at") == "exit":
        allowed = ("fexit",)
    return [a for a in ok if allowed is None or a in allowed]


def hooks_for(row: dict[str, Any]) -> dict[str, str | None]:
    """body -> hook name for the paired worker (None: no such program at this point), for the
    row's primary attach type."""
    t, g = row["target"], row.get("group")
    avail = [a for a in available(row) if a not in CAN["control"]]
    if not avail:
        return {}
    a = avail[0]
    if g == "raw_syscalls":
        return {"empty": f"{a}:{t}:empty", "inspect": f"{a}:{t}:inspect"}
    if g == "syscalls":
        return {"empty": f"tp:syscalls/{t}:empty", "inspect": f"tp:syscalls/{t}:inspect"}
    if row["kind"] == "function" and t in FUNC_TARGETS:
        return {"empty": f"{a}:{t}:empty", "inspect": f"{a}:{t}:inspect"}
    return {"empty": f"point:{a}:{g or ''}/{t}", "inspect": None}


def control_hooks(row: dict[str, Any]) -> dict[str, str]:
    """attach type -> the counting program's hook there, for the types that can change a
    read's outcome (their cost is what the control need ranks by)."""
    out = {}
    for a in available(row, "control"):
        target = "file_permission" if a == "lsm" else row["target"]
        out[a] = f"point:{a}:/{target}"
    return out


class CallCheck(Protocol):
    """Whether `caller`'s machine code calls `callee` (None: the text is unreadable), with
    where the text came from (`source`) or why it could not be read (`reason`)."""

    source: str
    reason: str

    def __call__(self, caller: str, callee: str) -> bool | None: ...


def explain_silent(rows: list[dict[str, Any]], points: list[Point], calls: CallCheck) -> None:
    """Every point that attaches but fired 0 times says why, from evidence: its caller's
    count, and (where the kernel text is readable) whether the caller's code calls it at
    all. Mutates the rows' `fires_note` and marks them `silent` (never recommended)."""
    by_target = {r["target"]: r for r in rows}
    callers = {p.target: p for p in points}
    for r in rows:
        if r.get("fires_per_read") != 0:
            continue
        p = callers.get(r["target"])
        r["silent"] = True
        evidence = [r["fires_note"]]
        if p is None or not p.caller:
            evidence.append("this workload's reads never reach it on this kernel")
        else:
            up = by_target.get(p.caller) or by_target.get(p.caller_counted_by)
            up_fires = up.get("fires_per_read") if up else None
            if up_fires is None:
                evidence.append(f"its caller {p.caller} could not be counted here")
            elif up_fires == 0:
                evidence.append(
                    f"its caller {p.caller} fires 0 per read too: the path does not reach "
                    "this far (see the caller's row)"
                )
            else:
                evidence.append(f"its caller {p.caller} fires {up_fires:.2f} per read")
                call = calls(p.caller, r["target"])
                if call is None:
                    evidence.append(
                        f"whether {p.caller}'s code calls it could not be checked "
                        f"({calls.reason or 'its code was not readable'})"
                    )
                elif call:
                    evidence.append(
                        f"{p.caller}'s code ({calls.source}) calls it directly, yet the call did "
                        "not run on these reads: a runtime condition skips it"
                        + (f" (the source calls it only when {p.only_when})" if p.only_when else "")
                    )
                else:
                    evidence.append(
                        f"{p.caller}'s code ({calls.source}) holds no direct call to it: it is "
                        f"inlined into {p.caller} or reached another way on this kernel (the "
                        "out-of-line copy in kallsyms serves other callers)"
                    )
        if p is not None and p.only_when and "runtime condition" not in evidence[-1]:
            evidence.append(f"the source calls it only when {p.only_when}")
        r["fires_note"] = "; ".join(evidence)
