"""perf_event_open from Python (ctypes): counting groups and an mmap sampling ring.

Why in-process rather than the `perf` CLI or the python-perf bindings: the C read loop
takes group-leader fds (`ReadLoop.run(loops, ctl_fds)`) and enables them right before
and disables them right after its timed loop, so events we open on our own thread
count and sample exactly that loop, with no Python and no tool start-up inside the
window. `perf record --control` would need a fifo round trip per batch and still see
the Python between ack and loop; Debian's 6.1 python-perf has no counter read and is
on no registry. ctypes needs nothing built or installed.
"""

from __future__ import annotations

import ctypes
import errno as errno_mod
import mmap
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

# linux/perf_event.h
PERF_TYPE_HARDWARE = 0
PERF_TYPE_SOFTWARE = 1

HW_EVENTS = {
    "cycles": 0,
    "instructions": 1,
    "cache-references": 2,
    "cache-misses": 3,
    "branch-instructions": 4,
    "branch-misses": 5,
}
SW_EVENTS = {
    "cpu-clock": 0,
    "task-clock": 1,
    "page-faults": 2,
    "context-switches": 3,
    "cpu-migrations": 4,
}

PERF_FORMAT_TOTAL_TIME_ENABLED = 1 << 0
PERF_FORMAT_TOTAL_TIME_RUNNING = 1 << 1
PERF_FORMAT_ID = 1 << 2
PERF_FORMAT_GROUP = 1 << 3

PERF_SAMPLE_IP = 1 << 0
PERF_SAMPLE_CALLCHAIN = 1 << 5

# attr.flags bit positions
F_DISABLED = 1 << 0
F_EXCLUDE_KERNEL = 1 << 5
F_EXCLUDE_CALLCHAIN_USER = 1 << 22

# Context markers inside a callchain (linux/perf_event.h, enum perf_callchain_context):
# every value at or above PERF_CONTEXT_MAX (-4095 as u64) is a marker, never an address.
PERF_CONTEXT_MAX = (1 << 64) - 4095

PERF_EVENT_IOC_ID = 0x80082407  # enable/disable happen in the C loop (readloop.c)

PERF_RECORD_LOST = 2
PERF_RECORD_THROTTLE = 5
PERF_RECORD_SAMPLE = 9
PERF_RECORD_MISC_CPUMODE_MASK = 7
PERF_RECORD_MISC_KERNEL = 1

_NR_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241}


class PerfEventAttr(ctypes.Structure):
    # PERF_ATTR_SIZE_VER5 (112 bytes); the kernel zero-fills newer fields.
    _fields_ = [
        ("type", ctypes.c_uint32),
        ("size", ctypes.c_uint32),
        ("config", ctypes.c_uint64),
        ("sample_period", ctypes.c_uint64),
        ("sample_type", ctypes.c_uint64),
        ("read_format", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
        ("wakeup_events", ctypes.c_uint32),
        ("bp_type", ctypes.c_uint32),
        ("config1", ctypes.c_uint64),
        ("config2", ctypes.c_uint64),
        ("branch_sample_type", ctypes.c_uint64),
        ("sample_regs_user", ctypes.c_uint64),
        ("sample_stack_user", ctypes.c_uint32),
        ("clockid", ctypes.c_int32),
        ("sample_regs_intr", ctypes.c_uint64),
        ("aux_watermark", ctypes.c_uint32),
        ("sample_max_stack", ctypes.c_uint16),
        ("reserved_2", ctypes.c_uint16),
    ]


assert ctypes.sizeof(PerfEventAttr) == 112

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class PerfOpenError(OSError):
    pass


def perf_event_open(attr: PerfEventAttr, pid: int = 0, cpu: int = -1, group_fd: int = -1) -> int:
    import platform

    nr = _NR_PERF_EVENT_OPEN.get(platform.machine())
    if nr is None:
        raise PerfOpenError(
            errno_mod.ENOSYS, f"perf_event_open: no syscall number for {platform.machine()}"
        )
    attr.size = ctypes.sizeof(PerfEventAttr)
    fd = _libc.syscall(
        ctypes.c_long(nr),
        ctypes.byref(attr),
        ctypes.c_int(pid),
        ctypes.c_int(cpu),
        ctypes.c_int(group_fd),
        ctypes.c_ulong(0x8),  # PERF_FLAG_FD_CLOEXEC
    )
    if fd < 0:
        e = ctypes.get_errno()
        raise PerfOpenError(e, os.strerror(e))
    return int(fd)


def event_id(fd: int) -> int:
    import fcntl

    buf = bytearray(8)
    fcntl.ioctl(fd, PERF_EVENT_IOC_ID, buf)
    return int(struct.unpack("<Q", buf)[0])


def paranoid() -> int | None:
    try:
        return int(Path("/proc/sys/kernel/perf_event_paranoid").read_text())
    except (OSError, ValueError):
        return None


def explain(e: OSError, what: str) -> str:
    """A reason string that says how to get the capability."""
    name = errno_mod.errorcode.get(e.errno or 0, str(e.errno))
    if e.errno in (errno_mod.EACCES, errno_mod.EPERM):
        return (
            f"{what}: {name} (perf_event_paranoid={paranoid()}; run as root / CAP_PERFMON "
            "or set kernel.perf_event_paranoid<=1 for kernel events)"
        )
    if e.errno in (errno_mod.ENOENT, errno_mod.EOPNOTSUPP, errno_mod.ENODEV):
        return f"{what}: {name} (event not provided by this PMU; e.g. a VM without vPMU)"
    return f"{what}: {name} {e.strerror}"


def force_software() -> bool:
    """READBENCH_COUNTERS=software skips hardware events (tests the no-PMU path)."""
    return os.environ.get("READBENCH_COUNTERS", "").lower() == "software"


# --- counting -------------------------------------------------------------------------


@dataclass
class Counter:
    name: str
    kind: str  # hardware | software
    supported: bool
    reason: str = ""
    fd: int = -1
    id: int = -1
    value: int | None = None
    enabled_ns: int = 0
    running_ns: int = 0


@dataclass
class CounterGroup:
    """One perf group (hardware or software) on the calling thread; leader fd goes to ctl_fds."""

    kind: str
    counters: list[Counter] = field(default_factory=list)
    leader: int = -1
    exclude_kernel: bool = False

    def open(self, names: list[str]) -> None:
        table = HW_EVENTS if self.kind == "hardware" else SW_EVENTS
        ptype = PERF_TYPE_HARDWARE if self.kind == "hardware" else PERF_TYPE_SOFTWARE
        for name in names:
            c = Counter(name, self.kind, False)
            self.counters.append(c)
            attr = PerfEventAttr()
            attr.type = ptype
            attr.config = table[name]
            attr.read_format = (
                PERF_FORMAT_GROUP
                | PERF_FORMAT_ID
                | PERF_FORMAT_TOTAL_TIME_ENABLED
                | PERF_FORMAT_TOTAL_TIME_RUNNING
            )
            base = F_DISABLED if self.leader < 0 else 0
            for excl in (self.exclude_kernel, True):
                attr.flags = base | (F_EXCLUDE_KERNEL if excl else 0)
                try:
                    c.fd = perf_event_open(attr, 0, -1, self.leader)
                    # A group has one scope: once kernel is excluded it stays excluded.
                    self.exclude_kernel = excl
                    break
                except OSError as e:
                    c.reason = explain(e, name)
                    if e.errno not in (errno_mod.EACCES, errno_mod.EPERM) or excl:
                        break
                    if self.leader >= 0:
                        break  # members must match the leader's scope
            if c.fd < 0:
                continue
            c.supported, c.reason = True, ""
            c.id = event_id(c.fd)
            if self.leader < 0:
                self.leader = c.fd

    def read(self) -> None:
        if self.leader < 0:
            return
        n = sum(1 for c in self.counters if c.supported)
        raw = os.read(self.leader, 8 * (3 + 2 * n))
        nr, enabled, running = struct.unpack_from("<QQQ", raw, 0)
        by_id = {}
        for i in range(nr):
            v, i_d = struct.unpack_from("<QQ", raw, 24 + 16 * i)
            by_id[i_d] = v
        for c in self.counters:
            if c.supported:
                c.value = by_id.get(c.id)
                c.enabled_ns, c.running_ns = int(enabled), int(running)

    def close(self) -> None:
        for c in self.counters:
            if c.fd >= 0:
                os.close(c.fd)
                c.fd = -1
        self.leader = -1


HW_COUNTERS = ["cycles", "instructions", "cache-misses", "branch-misses"]
SW_COUNTERS = ["task-clock", "page-faults", "context-switches"]


def open_counters() -> list[CounterGroup]:
    """Hardware group (unless forced off) and software group on the calling thread."""
    groups = []
    hw = CounterGroup("hardware")
    if force_software():
        hw.counters = [
            Counter(n, "hardware", False, "skipped: READBENCH_COUNTERS=software")
            for n in HW_COUNTERS
        ]
    else:
        hw.open(HW_COUNTERS)
    groups.append(hw)
    sw = CounterGroup("software")
    sw.open(SW_COUNTERS)
    groups.append(sw)
    return groups


def counter_report(groups: list[CounterGroup], ops: int) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for g in groups:
        for c in g.counters:
            d: dict[str, object] = {"name": c.name, "kind": c.kind, "supported": c.supported}
            if not c.supported:
                d.update(value=None, per_op=None, reason=c.reason)
            elif c.running_ns == 0 or c.value is None:
                # Opened but never on the PMU (all slots busy): not a zero, no value.
                d.update(
                    supported=False,
                    value=None,
                    per_op=None,
                    reason=f"{c.name}: opened but never scheduled on the PMU (time_running=0)",
                )
            else:
                scale = c.enabled_ns / c.running_ns if c.running_ns else 1.0
                value = c.value * scale
                d.update(
                    value=round(value) if scale != 1.0 else c.value,
                    per_op=value / ops if ops else None,
                    scope="user" if g.exclude_kernel else "user+kernel",
                    multiplexed=c.running_ns < c.enabled_ns,
                    enabled_ns=c.enabled_ns,
                    running_ns=c.running_ns,
                )
                if c.name == "task-clock":
                    d["unit"] = "ns"
            out.append(d)
    return out


# --- sampling -------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    ip: int
    kernel: bool
    # The kernel call chain, innermost first (chain[0] is the sampled ip), context markers
    # removed; empty for a user-mode sample or when the sampler records no chains.
    chain: tuple[int, ...] = ()


class Sampler:
    """One sampling event on the calling thread with an mmap ring, drained between batches."""

    def __init__(self, pages: int = 128) -> None:
        self.fd = -1
        self.event = ""
        self.kind = ""
        self.period = 0
        self.lost = 0
        self.throttled = 0
        self.reason = ""
        self.callchain = False
        self._pages = pages
        self._mm: mmap.mmap | None = None
        self._page = mmap.PAGESIZE

    def open(self, rate_hz: int = 10000, callchain: bool = False) -> bool:
        """cycles where the PMU allows (and not forced off), else cpu-clock. Kernel must be
        included: a copy_to_user profile without kernel samples is meaningless.

        callchain: also record each sample's kernel call chain (PERF_SAMPLE_CALLCHAIN, user
        part excluded: the user side is one C loop and libc's wrapper)."""
        reasons = []
        # Stay under the kernel's sample-rate cap, or it throttles (and says so).
        cap = max_sample_rate()
        if cap:
            rate_hz = max(100, min(rate_hz, cap // 2))
        candidates: list[tuple[str, str, int, int, int]] = []
        if not force_software():
            hz = _cpu_hz()
            candidates.append(("cycles", "hardware", PERF_TYPE_HARDWARE, 0, int(hz / rate_hz)))
        else:
            reasons.append("cycles: skipped: READBENCH_COUNTERS=software")
        candidates.append(("cpu-clock", "software", PERF_TYPE_SOFTWARE, 0, int(1e9 / rate_hz)))
        for name, kind, ptype, cfg, period in candidates:
            attr = PerfEventAttr()
            attr.type, attr.config = ptype, cfg
            attr.sample_period = period
            attr.sample_type = PERF_SAMPLE_IP | (PERF_SAMPLE_CALLCHAIN if callchain else 0)
            attr.flags = F_DISABLED | (F_EXCLUDE_CALLCHAIN_USER if callchain else 0)
            attr.wakeup_events = 0
            try:
                self.fd = perf_event_open(attr, 0, -1, -1)
            except OSError as e:
                reasons.append(explain(e, name))
                continue
            self.event, self.kind, self.period = name, kind, period
            self.callchain = callchain
            size = (1 + self._pages) * self._page
            self._mm = mmap.mmap(self.fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            self.reason = "; ".join(reasons)
            return True
        self.reason = "; ".join(reasons)
        return False

    def drain(self) -> Iterator[Sample]:
        """Parse records between data_tail and data_head; call only while disabled."""
        mm = self._mm
        assert mm is not None
        head = struct.unpack_from("<Q", mm, 1024)[0]
        tail = struct.unpack_from("<Q", mm, 1032)[0]
        data_off = self._page
        data_size = self._pages * self._page
        buf = bytes(mm[data_off : data_off + data_size])
        pos = tail
        while pos < head:
            off = pos % data_size
            hdr = _ring_read(buf, off, 8)
            rtype, misc, size = struct.unpack("<IHH", hdr)
            if size < 8:
                break
            body = _ring_read(buf, (off + 8) % data_size, size - 8)
            if rtype == PERF_RECORD_SAMPLE:
                (ip,) = struct.unpack_from("<Q", body, 0)
                mode = misc & PERF_RECORD_MISC_CPUMODE_MASK
                chain: tuple[int, ...] = ()
                if self.callchain:
                    (nr,) = struct.unpack_from("<Q", body, 8)
                    ips = struct.unpack_from(f"<{nr}Q", body, 16)
                    chain = tuple(a for a in ips if a < PERF_CONTEXT_MAX)
                yield Sample(ip, mode == PERF_RECORD_MISC_KERNEL, chain)
            elif rtype == PERF_RECORD_LOST:
                self.lost += struct.unpack_from("<QQ", body, 0)[1]
            elif rtype == PERF_RECORD_THROTTLE:
                self.throttled += 1
            pos += size
        struct.pack_into("<Q", mm, 1032, head)

    def close(self) -> None:
        if self._mm is not None:
            self._mm.close()
            self._mm = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _ring_read(buf: bytes, off: int, n: int) -> bytes:
    end = off + n
    if end <= len(buf):
        return buf[off:end]
    return buf[off:] + buf[: end - len(buf)]


def _cpu_hz() -> float:
    """Nominal clock for a cycles period (only sets the sample rate, never a result)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return float(line.split(":")[1]) * 1e6
    except (OSError, ValueError):
        pass
    return 3e9


def max_sample_rate() -> int | None:
    try:
        return int(Path("/proc/sys/kernel/perf_event_max_sample_rate").read_text())
    except (OSError, ValueError):
        return None


def max_stack() -> int | None:
    """kernel.perf_event_max_stack: the deepest call chain a sample records."""
    try:
        return int(Path("/proc/sys/kernel/perf_event_max_stack").read_text())
    except (OSError, ValueError):
        return None


def hardware_counter_error() -> str | None:
    """None when a cycles counter opens on this thread, else why not (errno and meaning)."""
    attr = PerfEventAttr()
    attr.type, attr.config = PERF_TYPE_HARDWARE, 0
    attr.flags = F_DISABLED | F_EXCLUDE_KERNEL
    try:
        fd = perf_event_open(attr)
    except OSError as e:
        name = errno_mod.errorcode.get(e.errno or 0, "?")
        return f"perf_event_open(cycles): errno {e.errno} {name} ({e.strerror})"
    os.close(fd)
    return None


def hardware_counters_available() -> bool:
    """True when a cycles counter opens on this thread (the probe's perf.hardware_counters)."""
    return hardware_counter_error() is None


# --- tracepoint counting ---------------------------------------------------------------

PERF_TYPE_TRACEPOINT = 2


class TracepointCounters:
    """How often each of many tracepoints fires in the calling thread, counted by the
    kernel's perf tracepoint events: one group, its leader handed to the C loop as a ctl fd,
    so the count covers the timed loop and nothing else, and no BPF program is loaded. The
    atlas screens a kernel's hundreds of read-side tracepoints this way before it tries and
    counts the ones that fire with BPF."""

    def __init__(self, ids: dict[str, int]) -> None:
        self.fds: dict[str, int] = {}
        self.ids: dict[int, str] = {}
        self.refused: dict[str, str] = {}
        self.leader = -1
        for name, tp_id in ids.items():
            attr = PerfEventAttr()
            attr.type, attr.config = PERF_TYPE_TRACEPOINT, tp_id
            attr.read_format = PERF_FORMAT_GROUP | PERF_FORMAT_ID
            attr.flags = F_DISABLED if self.leader < 0 else 0
            try:
                fd = perf_event_open(attr, 0, -1, self.leader)
            except OSError as e:
                self.refused[name] = explain(e, f"tracepoint {name}")
                continue
            self.fds[name] = fd
            self.ids[event_id(fd)] = name
            if self.leader < 0:
                self.leader = fd

    def read(self) -> dict[str, int]:
        if self.leader < 0:
            return {}
        raw = os.read(self.leader, 8 * (1 + 2 * len(self.fds)))
        (nr,) = struct.unpack_from("<Q", raw, 0)
        out = {}
        for i in range(nr):
            v, i_d = struct.unpack_from("<QQ", raw, 8 + 16 * i)
            out[self.ids[i_d]] = int(v)
        return out

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds, self.leader = {}, -1

    def __enter__(self) -> TracepointCounters:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
