"""The atlas's counting program (bpf/atlas.bpf.c) attached to any one point with any one
attach type: `point:ATTACH:GROUP/TARGET` hooks (readbench.model.hookspec), the atlas's trials
and firing counts. One BPF object per attachment, loaded with only the program of that attach
type (the trampoline and tp_btf programs get their target before load). Links are fds of
this process, so they die with it.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
import struct
from typing import Any

from readbench.bpf import binding, build
from readbench.bpf.links import NO_TGID, Attachment
from readbench.bpf.refusals import refusal
from readbench.kernel.tracefs import ensure_tracefs

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
_CFG = "=IIqI"  # const volatile cfg in atlas.bpf.c: tgid, only_sys, nr, gated
_FIRED, _GATE = 0, 8  # offsets in .bss: struct cnt {u64 fired; u32 gate;}


class PointHook(Attachment):
    """The counting program attached to one point for process `tgid`; detach()/reattach()
    toggle it (the paired worker uses this for a point's overhead), fired() reads its count.
    `gated`: count only while the u32 at gate_address() is 1 (a read loop's timed window,
    readbench.measure.readloop.ReadLoop.set_gate). Raises binding.LibbpfError (with errno and the
    failing step) when the kernel refuses."""

    def __init__(
        self,
        attach: str,
        target: str,
        group: str = "",
        tgid: int | None = None,
        only_syscall: int | None = None,
        gated: bool = False,
        stats: bool = False,
    ):
        super().__init__()
        self.attach, self.target, self.group = attach, target, group
        self.tgid = os.getpid() if tgid is None else tgid
        self._bss: mmap.mmap | None = None
        self._obj = binding.Object(build.object_path("atlas"))
        try:
            prog_name = PROGRAM[attach]
            for p in self._obj.programs():
                p.set_autoload(p.name == prog_name)
            self.prog = self._obj.program(prog_name)
            if stats:
                self._stats_fd = binding.enable_stats()
            if attach in ("fentry", "fexit", "tpbtf", "fmod_ret"):
                self.prog.set_attach_target(target)
            # raw sys_enter/sys_exit fire for every syscall: count only `only_syscall` there
            side = {"sys_enter": 1, "sys_exit": 2}.get(target, 0) if only_syscall is not None else 0
            cfg = struct.pack(_CFG, self.tgid, side,
                              only_syscall if side else -1, int(gated))  # fmt: skip
            ro = self._obj.rodata()
            ro[: len(cfg)] = cfg
            self._obj.load()
            # The counter is read (and the gate written) through a mapping of the .bss map,
            # never a bpf() syscall: that would itself be counted by a probe on sys_enter.
            bss = self._obj.map(".bss")
            self._bss = mmap.mmap(bss.fd, mmap.PAGESIZE, mmap.MAP_SHARED,
                                  mmap.PROT_READ | mmap.PROT_WRITE)  # fmt: skip
            self.reattach()
        except BaseException:
            self.close()
            raise

    def _attach(self) -> list[binding.Link]:
        assert self._obj is not None
        if self.attach == "rawtp":
            link = self.prog.attach_raw_tracepoint(self.target)
        elif self.attach == "tp":
            ensure_tracefs()  # classic tracepoints are found by id under tracefs
            link = self.prog.attach_tracepoint(self.group, self.target)
        elif self.attach in ("kprobe", "kretprobe"):
            link = self.prog.attach_kprobe(self.target, retprobe=self.attach == "kretprobe")
        else:  # fentry, fexit, fmod_ret, tpbtf, lsm: the target was fixed at load
            link = self.prog.attach_trace(f"attach {self.attach} {self.target}")
        return [link]

    def fired(self) -> int:
        assert self._bss is not None
        return struct.unpack_from("=Q", self._bss, _FIRED)[0]

    def gate_address(self) -> int:
        """Address of the gate word (valid until close())."""
        assert self._bss is not None
        return ctypes.addressof(ctypes.c_char.from_buffer(self._bss, _GATE))

    def snapshot(self) -> dict[str, Any]:
        """The BPF-stats side pass's view (as AttachedHook.snapshot): the one program's
        run_cnt/run_time_ns (absolute, since load) and its firings (`fired`: a point may
        fire any number of times per read, so the side pass's count check does not apply)."""
        assert self._obj is not None
        info = self.prog.info()
        return {
            "hook": f"point:{self.attach}:{self.group}/{self.target}",
            "tgid": self.tgid,
            "stats_enabled": self._stats_fd >= 0,
            "fired": self.fired(),
            "programs": [{
                "name": info.name.decode(),
                "type": binding.PROG_TYPES.get(info.type, str(info.type)), "id": info.id,
                "role": "enter", "point": self.target, "run_cnt": info.run_cnt,
                "run_time_ns": info.run_time_ns, "recursion_misses": info.recursion_misses,
                "xlated_len": info.xlated_prog_len, "jited_len": info.jited_prog_len,
            }],
        }  # fmt: skip

    def _release(self) -> None:
        if self._bss is not None:
            # a ctypes view from gate_address() still alive holds it: the GC unmaps it then
            with contextlib.suppress(BufferError):
                self._bss.close()
            self._bss = None


def trial(attach: str, target: str, group: str = "") -> dict[str, Any]:
    """{available, reason}: load and attach for real (filter set to no process), detach."""
    if os.geteuid() != 0:
        return {"available": False, "reason": "not root: loading BPF programs needs root"}
    try:
        with PointHook(attach, target, group, tgid=NO_TGID):
            return {"available": True, "reason": f"loaded and attached {attach} on {target}"}
    except binding.LibbpfError as e:
        return {"available": False, "reason": refusal(attach, e, target)}
