"""The points on a workload's read path, in the order a read() passes them (pure).

Functions are named as on 6.x kernels; the running kernel decides what exists (kallsyms:
a symbol to hook; BTF: a prototype to read arguments from), and a name it lacks is shown
as inlined, renamed or absent rather than dropped. Tracepoints come in two kinds: the
syscall ones (every workload) and the read-side groups (filemap, readahead, iomap, block,
ext4), which the atlas discovers in tracefs and keeps where they fire.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from readbench.model.hookspec import FUNC_TARGETS, PIPE_READ_NAMES, PRE64_ROUTINES
from readbench.model.workloads import SYSCALL_OF

READ_SIDE_GROUPS = ("filemap", "readahead", "iomap", "block", "ext4")


@dataclass(frozen=True)
class Point:
    target: str  # bare function or tracepoint name
    kind: str  # function | tracepoint
    layer: str
    fs_independent: bool
    group: str = ""  # tracepoint group in tracefs (syscalls, raw_syscalls, filemap, ...)
    note: str = ""

    @property
    def key(self) -> str:
        return f"{self.group}/{self.target}" if self.group else self.target


def syscall_points(workload: str) -> list[Point]:
    sc = SYSCALL_OF[workload]
    return [
        Point("sys_enter", "tracepoint", "syscall entry and exit", True, "raw_syscalls",
              "every syscall of every process: filter on the syscall id and the process"),
        Point(f"sys_enter_{sc}", "tracepoint", "syscall entry and exit", True, "syscalls",
              f"only {sc}(): the syscall tracepoint slow path for every syscall once enabled"),
        Point(f"sys_exit_{sc}", "tracepoint", "syscall entry and exit", True, "syscalls"),
        Point("sys_exit", "tracepoint", "syscall entry and exit", True, "raw_syscalls"),
    ]  # fmt: skip


def function_points(workload: str, fs_read_iter: str, copy_routine: str | None) -> list[Point]:
    """The path's kernel functions. `fs_read_iter`: the data file's filesystem read_iter
    (e.g. ext4_file_read_iter); `copy_routine`: the routine's symbol, or None when the copy
    is an inlined `rep movsb` (then no symbol exists to hook)."""
    sc = SYSCALL_OF[workload]
    vfs = [
        Point("ksys_pread64" if sc == "pread64" else "ksys_read", "function",
              "fd lookup and VFS", True, note="fd -> struct file (fdget) and the position"),
        Point("vfs_read", "function", "fd lookup and VFS", True),
        Point("rw_verify_area", "function", "fd lookup and VFS", True),
        Point("security_file_permission", "function", "fd lookup and VFS", True,
              note="the LSM hook point; BPF LSM attaches as lsm/file_permission"),
    ]  # fmt: skip
    notify = [
        Point("fsnotify_access", "function", "fd lookup and VFS", True,
              note="an inline wrapper of __fsnotify_parent in most builds"),
        Point("__fsnotify_parent", "function", "fd lookup and VFS", True),
        Point("touch_atime", "function", "fd lookup and VFS", True),
    ]  # fmt: skip
    copy = [
        Point("copy_page_to_iter", "function", "copy to user", True),
        Point("_copy_to_iter", "function", "copy to user", True),
    ]
    routine = [
        Point(copy_routine or "rep movsb (inlined)", "function", "copy to user", True,
              note="assembly: no BTF, kprobe only; length in rcx" if copy_routine else
              "FSRM: copy_user_generic() inlines rep movsb into _copy_to_iter: no symbol"),
    ]  # fmt: skip
    if workload == "pipe":
        pipe = [Point(n, "function", "pipe", False, note="pipe_read was renamed in 6.15")
                for n in PIPE_READ_NAMES]  # fmt: skip
        return vfs + notify + pipe + copy + routine
    fs = [Point(fs_read_iter, "function", "filesystem read_iter", False)]
    if workload == "direct":
        return vfs + fs + [
            Point("iomap_dio_rw", "function", "block and device wait", False,
                  note="O_DIRECT through iomap (ext4, xfs): DMA into the user pages, no copy"),
        ]  # fmt: skip
    cache = [
        Point("filemap_read", "function", "page-cache lookup", True),
        Point("filemap_get_pages", "function", "page-cache lookup", True),
    ]
    return vfs + notify + fs + cache + copy + routine


def is_copy_routine(name: str) -> bool:
    return name == "rep_movs_alternative" or name in PRE64_ROUTINES


def hooks_for(row: dict[str, Any]) -> dict[str, str | None]:
    """body -> hook name for the paired worker (None: no such program at this point)."""
    t, g = row["target"], row.get("group")
    avail = [a for a, v in row["attach"].items() if v.get("available")]
    if not avail:
        return {}
    if g == "raw_syscalls":
        a = "rawtp" if "rawtp" in avail else "tpbtf"
        return {"empty": f"{a}:{t}:empty", "inspect": f"{a}:{t}:inspect"}
    if g == "syscalls":
        return {"empty": f"tp:syscalls/{t}:empty", "inspect": f"tp:syscalls/{t}:inspect"}
    if row["kind"] == "function" and t in FUNC_TARGETS:
        a = next(x for x in ("fentry", "fexit", "kprobe", "kretprobe") if x in avail)
        return {"empty": f"{a}:{t}:empty", "inspect": f"{a}:{t}:inspect"}
    a = avail[0]
    return {"empty": f"point:{a}:{g or ''}/{t}", "inspect": None}
