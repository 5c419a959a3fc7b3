"""Device wait, measured: bpf/devwait.bpf.c on the block tracepoints, for the bios the
measuring process queues (block_bio_queue, block_split) and their requests (block_rq_issue
to block_rq_complete); and the reader's own time off the CPU, and waiting for one, from the
scheduler's tracepoints. A separate pass of its own (measure/perf_profile.py), never while
timing.

    with DeviceWait() as dw:
        dw.on(); loop.run(n); dw.off()
        dw.read() -> {bios, splits, requests, bytes, sum_ns, max_ns, busy_ns, switches,
                      off_ns, runnable_ns, ...}
"""

from __future__ import annotations

import mmap
import os
import struct
from typing import Any

from readbench.bpf import abi, binding, build
from readbench.bpf.refusals import refusal
from readbench.errors import MissingCapability

HEADER = build.SRC_DIR / "devwait.h"
CFG_FIELDS = abi.struct_fields(HEADER, "dw_cfg")
OUT_FIELDS = abi.struct_fields(HEADER, "dw_out")
CFG_FORMAT = abi.struct_format(CFG_FIELDS)
OUT_FORMAT = abi.struct_format(OUT_FIELDS)
_ON = next(i for i, (_, name) in enumerate(OUT_FIELDS) if name == "on") * 8

# program -> raw tracepoint it attaches to
PROGRAMS = {
    "dw_bio_queue": "block_bio_queue",
    "dw_split": "block_split",
    "dw_bio_complete": "block_bio_complete",
    "dw_rq_issue": "block_rq_issue",
    "dw_rq_complete": "block_rq_complete",
    "dw_rq_requeue": "block_rq_requeue",
    "dw_switch": "sched_switch",
    "dw_wakeup": "sched_wakeup",
}
SOURCE = (
    "block_rq_issue -> block_rq_complete of the requests carrying this process's bios "
    "(block_bio_queue, block_split); the reader off the CPU from sched_switch to sched_switch, "
    "runnable from sched_wakeup (or a preemption); raw tracepoints"
)


class DeviceWait:
    """The programs loaded and attached for process `tgid` (default: this one). Raises
    MissingCapability with the kernel's reason when it refuses."""

    def __init__(self, tgid: int | None = None) -> None:
        if os.geteuid() != 0:
            raise MissingCapability("measuring device wait attaches BPF programs: run as root")
        self._links: list[binding.Link] = []
        self._bss: mmap.mmap | None = None
        self._obj = binding.Object(build.object_path("devwait"))
        try:
            cfg = struct.pack(CFG_FORMAT, os.getpid() if tgid is None else tgid, 0)
            ro = self._obj.rodata()
            ro[: len(cfg)] = cfg
            try:
                self._obj.load()
                for prog, tp in PROGRAMS.items():
                    self._links.append(self._obj.program(prog).attach_raw_tracepoint(tp))
            except binding.LibbpfError as e:
                raise MissingCapability(f"device wait: {refusal('rawtp', e)}") from e
            # .bss through an mmap: reading it is no syscall, and `on` is written in place
            bss = self._obj.map(".bss")
            self._bss = mmap.mmap(bss.fd, mmap.PAGESIZE, mmap.MAP_SHARED,
                                  mmap.PROT_READ | mmap.PROT_WRITE)  # fmt: skip
        except BaseException:
            self.close()
            raise

    def on(self) -> None:
        assert self._bss is not None
        struct.pack_into("=Q", self._bss, _ON, 1)

    def off(self) -> None:
        assert self._bss is not None
        struct.pack_into("=Q", self._bss, _ON, 0)

    def read(self) -> dict[str, int]:
        """The counters, and `missed`: firings the kernel skipped (a program already running
        on that CPU: a completion interrupting its own program), which undercount."""
        assert self._bss is not None
        values = struct.unpack_from(OUT_FORMAT, self._bss, 0)
        out = {name: int(v) for (_, name), v in zip(OUT_FIELDS, values, strict=True)}
        out["missed"] = sum(int(self._obj.program(p).info().recursion_misses) for p in PROGRAMS)
        return out

    def close(self) -> None:
        for link in self._links:
            link.destroy()
        self._links = []
        if self._bss is not None:
            self._bss.close()
            self._bss = None
        self._obj.close()

    def __enter__(self) -> DeviceWait:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
