"""Attach the atlas's counting program (bpf/src/atlas.bpf.c) to one point with one attach
type, for real: the kernel's verdict when it refuses, the firings per read() when it accepts.

One BPF object per trial, loaded with only the program of that attach type (the trampoline
and tp_btf programs get their target before load). Links are fds of this process.
"""

from __future__ import annotations

import mmap
import os
import struct
from typing import Any

from readbench.bpf import binding as lb
from readbench.bpf import build
from readbench.bpf.refusals import refusal
from readbench.kernel.tracefs import ensure_tracefs
from readbench.measure.readloop import ReadLoop
from readbench.model.hookspec import SYSCALL_NR
from readbench.model.workloads import SYSCALL_OF

# attach type -> program in atlas.bpf.c
PROGRAM = {
    "rawtp": "atlas_rawtp",
    "tp": "atlas_tp",
    "tpbtf": "atlas_tpbtf",
    "fentry": "atlas_fentry",
    "fexit": "atlas_fexit",
    "kprobe": "atlas_kprobe",
    "kretprobe": "atlas_kretprobe",
    "lsm": "atlas_lsm",
    "fmod_ret": "atlas_fmodret",
}
TRACEPOINT_TYPES = ("rawtp", "tpbtf", "tp")
FUNCTION_TYPES = ("fentry", "fexit", "kprobe", "kretprobe")
NO_TGID = 0xFFFFFFFF


class PointHook:
    """The counting program attached to one point for process `tgid`; detach()/reattach()
    toggle it (the paired worker uses this for a point's overhead), fired() reads its count.
    Raises lb.LibbpfError (with errno and the failing step) when the kernel refuses."""

    def __init__(
        self,
        attach: str,
        target: str,
        group: str = "",
        tgid: int | None = None,
        only_syscall: int | None = None,
    ):
        self.attach, self.target, self.group = attach, target, group
        self._links: list[lb.Link] = []
        self._obj = lb.Object(build.object_path("atlas"))
        try:
            prog_name = PROGRAM[attach]
            for p in self._obj.programs():
                p.set_autoload(p.name == prog_name)
            self.prog = self._obj.program(prog_name)
            if attach in ("fentry", "fexit", "tpbtf", "fmod_ret"):
                self.prog.set_attach_target(target)
            # raw sys_enter/sys_exit fire for every syscall: count only `only_syscall` there
            side = {"sys_enter": 1, "sys_exit": 2}.get(target, 0) if only_syscall is not None else 0
            cfg = struct.pack("=IIq", os.getpid() if tgid is None else tgid, side,
                              only_syscall if side else -1)  # fmt: skip
            ro = self._obj.rodata()
            ro[: len(cfg)] = cfg
            self._obj.load()
            # Read the counter through a mapping of the .bss map, not a bpf() lookup: that
            # syscall would itself be counted by a probe on sys_enter.
            bss = self._obj.map(".bss")
            self._bss = mmap.mmap(bss.fd, mmap.PAGESIZE, mmap.MAP_SHARED, mmap.PROT_READ)
            self.reattach()
        except BaseException:
            self.close()
            raise

    @property
    def attached(self) -> bool:
        return bool(self._links)

    def reattach(self) -> None:
        if self._links:
            return
        if self.attach == "rawtp":
            link = self.prog.attach_raw_tracepoint(self.target)
        elif self.attach == "tp":
            ensure_tracefs()  # classic tracepoints are found by id under tracefs
            link = self.prog.attach_tracepoint(self.group, self.target)
        elif self.attach in ("kprobe", "kretprobe"):
            link = self.prog.attach_kprobe(self.target, retprobe=self.attach == "kretprobe")
        else:  # fentry, fexit, fmod_ret, tpbtf, lsm: the target was fixed at load
            link = self.prog.attach_trace(f"attach {self.attach} {self.target}")
        self._links.append(link)

    def detach(self) -> None:
        for link in self._links:
            link.destroy()
        self._links = []

    def fired(self) -> int:
        return struct.unpack_from("=Q", self._bss, 0)[0]

    def close(self) -> None:
        self.detach()
        if getattr(self, "_bss", None) is not None:
            self._bss.close()
            self._bss = None  # type: ignore[assignment]
        if self._obj is not None:
            self._obj.close()
            self._obj = None  # type: ignore[assignment]

    def __enter__(self) -> PointHook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def try_and_count(
    attach: str, target: str, group: str, loop: ReadLoop, reads: int
) -> dict[str, Any]:
    """One load per attach type: try it for real and, where the kernel accepts it, count its
    firings over `reads` operations in the same attachment. {available, reason} plus
    {count, read_calls, per_read} when it attached."""
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
    """Attach the counter to the point, make `reads` operations, count. Per read() call:
    the syscalls the loop really made (a pipe op may take several). On the raw syscall
    and BTF syscall tracepoints only the read's own syscall is counted."""
    if warm:
        loop.run(min(reads, 100))  # first-touch work is not part of a steady read
    # sys_enter/sys_exit fire for every syscall: count only the read's own
    raw = attach in ("rawtp", "tpbtf") or (attach == "tp" and group == "raw_syscalls")
    nr = SYSCALL_NR[SYSCALL_OF[loop.workload]] if raw else None
    with PointHook(attach, target, group, only_syscall=nr) as h:
        before = h.fired()
        r = loop.run(reads)
        n = h.fired() - before
    return {"count": n, "read_calls": r.syscalls, "per_read": n / r.syscalls, "via": attach}
