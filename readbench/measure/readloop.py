"""Python side of the C read loops (workloads/readloop.c): open a cell, run batches."""

from __future__ import annotations

import errno as errno_mod
import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from readbench.errors import MeasurementError, MissingCapability
from readbench.measure._readloop import ffi, lib
from readbench.model.workloads import SYSCALL_OF, WORKLOADS  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class BatchResult:
    ns: int  # elapsed inside the timed loop(s) only
    ops: int
    syscalls: int  # read syscalls made; > ops only for pipe top-ups, 0 for mmap
    bytes: int
    evictions: int  # untimed page-cache evictions (uncached, mmap-fault)
    eagains: int = 0  # RWF_NOWAIT reads that returned EAGAIN (the batch then failed)
    drains: int = 0  # untimed pipe drains between timed segments (splice)
    major_faults: int = 0  # inside the timed window(s)
    minor_faults: int = 0

    @property
    def calls(self) -> int:
        """The read calls of the batch, or its ops where a read is no call (mmap)."""
        return self.syscalls or self.ops

    @property
    def ns_per_op(self) -> float:
        return self.ns / self.ops if self.ops else float("nan")


class ReadLoop:
    """One open cell: a data file (or pipe + writer process) and a prefaulted user buffer.

    `run(loops)` is what a pyperf value times; it raises MeasurementError on any
    failed or short read rather than returning a timing over less work.
    """

    def __init__(
        self,
        workload: str,
        size: int,
        path: str | os.PathLike[str] | None = None,
        buf_offset: int = 0,
        io_align: int = 0,
    ) -> None:
        self._ctx = None
        if workload not in WORKLOADS:
            raise ValueError(f"unknown workload {workload!r}")
        self.workload = workload
        self.size = size
        err = ffi.new("char[512]")
        out = ffi.new("struct rb_ctx **")
        cpath = os.fsencode(path) if path is not None else ffi.NULL
        rc = lib.rb_open(WORKLOADS[workload], cpath, size, buf_offset, io_align, out, err, 512)
        if rc != 0:
            msg = ffi.string(err).decode(errors="replace")
            if rc <= -lib.RB_REFUSED:
                raise MissingCapability(f"workload {workload}: {msg}")
            raise MeasurementError(msg)
        self._ctx = out[0]
        self._err = err
        self._res = ffi.new("struct rb_result *")

    def run(self, loops: int, ctl_fds: Sequence[int] = ()) -> BatchResult:
        if self._ctx is None:
            raise RuntimeError("ReadLoop is closed")
        fds = ffi.new("int[]", list(ctl_fds)) if ctl_fds else ffi.NULL
        rc = lib.rb_run(self._ctx, loops, fds, len(ctl_fds), self._res, self._err, 512)
        if rc != 0:
            msg = ffi.string(self._err).decode(errors="replace")
            raise MeasurementError(f"{msg} [{errno_mod.errorcode.get(-rc, rc)}]")
        r = self._res
        return BatchResult(int(r.ns), int(r.ops), int(r.syscalls), int(r.bytes),
                           int(r.evictions), int(r.eagains), int(r.drains),
                           int(r.major_faults), int(r.minor_faults))  # fmt: skip

    def set_gate(self, address: int | None) -> None:
        """Point the C loop at a u32 it sets to 1 inside timed loops (0 outside): the atlas's
        counting program counts only then. None: no gate."""
        lib.rb_set_gate(self._ctx, ffi.cast("uint32_t *", address) if address else ffi.NULL)

    def calibrate(self, target_ns: float) -> int:
        """Loops whose batch takes about `target_ns`, from untimed trial batches growing ×4
        until one lasts min(target/4, 20 ms) — long enough to scale from, short enough
        not to waste a side pass."""
        trial_ns = min(target_ns / 4, 20e6)
        loops = 1
        while True:
            r = self.run(loops)
            if r.ns >= trial_ns or loops >= 1 << 26:
                return max(1, int(loops * target_ns / max(r.ns, 1)))
            loops *= 4

    def set_spin(self, iters: int) -> None:
        """Inject `iters` turns of an empty loop after every op of later runs (0 = none)."""
        lib.rb_set_spin(self._ctx, iters)

    def spin_for(self, extra_ns: float, loops: int) -> int:
        """Turns of the injected delay that add about `extra_ns` to each op of this loop:
        spin_iters_for's rate, corrected once by what it added here, side by side. After a
        syscall the spin runs slower than in a tight loop (an Intel Xeon VM: +25 % asked,
        +31..38 % got)."""
        iters = spin_iters_for(extra_ns)
        if iters == 0:
            return 0
        off, on = [], []
        for _ in range(3):
            self.set_spin(0)
            off.append(self.run(loops).ns / loops)
            self.set_spin(iters)
            on.append(self.run(loops).ns / loops)
        self.set_spin(0)
        added = statistics.median(on) - statistics.median(off)
        return max(1, round(iters * extra_ns / added)) if added > 0 else iters

    def buffer(self) -> bytes:
        """Bytes currently in the user buffer (what the last read delivered)."""
        return bytes(ffi.buffer(lib.rb_buffer(self._ctx), self.size))

    def buffer_address(self) -> int:
        return int(ffi.cast("uintptr_t", lib.rb_buffer(self._ctx)))

    def close(self) -> None:
        if self._ctx is not None:
            lib.rb_close(self._ctx)
            self._ctx = None

    def __enter__(self) -> ReadLoop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def io_uring_refusal() -> str | None:
    """The kernel's reason when this process may not create an io_uring, else None."""
    err = ffi.new("char[512]")
    rc = lib.rb_io_uring_probe(err, 512)
    return ffi.string(err).decode(errors="replace") if rc != 0 else None


def spin_iters_for(ns: float) -> int:
    """Turns of the injected-delay loop that take about `ns`, measured on this CPU now."""
    # The median batch, not the fastest: the paired design reads the median op, and on a
    # shared host the fastest batch runs up to 2x faster than the typical one (seen on an
    # EPYC VM: 0.35 against 0.8 ns a turn), which made the delay up to 2x what was asked.
    iters, reps = 100_000, 20
    typical = statistics.median(int(lib.rb_spin_ns(iters, reps)) for _ in range(9))
    return max(0, round(ns * iters * reps / max(typical, 1)))


def null_syscall_ns(seconds: float = 0.05) -> float:
    """ns per call of a syscall that does nothing (entry and exit only): the fastest of five
    batches, the least disturbed."""
    loops = 1000
    while lib.rb_null_syscall_ns(loops) < seconds * 1e9 / 5:
        loops *= 4
    return min(lib.rb_null_syscall_ns(loops) for _ in range(5)) / loops


def dio_alignment(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(memory, offset) alignment for O_DIRECT from statx STATX_DIOALIGN; (0, 0) if unreported."""
    mem = ffi.new("uint32_t *")
    off = ffi.new("uint32_t *")
    rc = lib.rb_dio_align(os.fsencode(path), mem, off)
    if rc < 0:
        raise OSError(-rc, os.strerror(-rc), str(path))
    return int(mem[0]), int(off[0])


def resident_pages(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(resident, total) page-cache pages of a file, by mincore()."""
    total = ffi.new("int64_t *")
    rc = lib.rb_resident_pages(os.fsencode(path), total)
    if rc < 0:
        raise OSError(-rc, os.strerror(-rc), str(path))
    return int(rc), int(total[0])
