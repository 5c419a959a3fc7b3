"""BPF hooks on the read path: names, catalogue, availability, attach/detach, snapshots.

A hook is `ATTACH:TARGET[:BODY]` (design §4), e.g. `rawtp:sys_enter`,
`tp:syscalls/sys_enter_pread64:count`, `fexit:_copy_to_iter:hist`. The programs live in
bpf/readhooks.bpf.c (one per mechanism and side); this module decides which of them a
hook needs, configures their read-only globals (tgid, syscall id, body), loads them
with libbpf and keeps the links as fds of this process only (never pinned: SIGKILL
detaches everything).

Bodies and the programs they use ("named side" = the side the hook's name points at):
  empty    the named side only: filter (syscall id, tgid) + return 0
  count    the named side bumps a per-CPU counter
  hist     enter side: log2 of the requested length. Named exit side: an enter
           companion records length + time, the exit records log2 latency (ns)
  inspect  at exit, bpf_probe_read_user of the first <= 64 bytes delivered, FNV-1a
           hash into a map. Named enter side: the enter stashes the destination, a
           matching exit program inspects. Named exit side: the exit alone where it can
           see the buffer (raw/BTF sys_exit via regs, fexit via its arguments);
           otherwise (classic sys_exit_*, kretprobe) with an enter companion.
"""

from __future__ import annotations

import ctypes
import errno as errno_mod
import os
import struct
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from readbench import bpf_build, copyroutine
from readbench import libbpf as lb
from readbench.driver import SYSCALL_OF
from readbench.errors import BadInput, MissingCapability

ATTACH_TYPES = ("tp", "rawtp", "tpbtf", "fentry", "fexit", "kprobe", "kretprobe")
BODIES = ("empty", "count", "hist", "inspect")

# x86-64 syscall numbers of the workloads' syscalls (arch/x86/entry/syscalls/syscall_64.tbl)
SYSCALL_NR = {"read": 0, "pread64": 17}

# Mirrors bpf/readhooks.h (tests/test_bpf_build.py checks they agree).
A_COUNT, A_HIST_SIZE, A_STASH, A_STASH_TS, A_HIST_LAT, A_INSPECT = 1, 2, 4, 8, 16, 32
K_SYSCALL, K_VFS_READ, K_FILEMAP_READ, K_COPY_PAGE_TO_ITER = 0, 1, 2, 3
K_COPY_TO_ITER, K_PIPE_READ, K_REP_MOVS, K_COPY_USER_OLD = 4, 5, 6, 7
COUNT_ENTER, COUNT_EXIT = 0, 1
I_EVENTS, I_BYTES, I_SKIPPED, I_FAULTS, I_NO_STASH = 0, 1, 2, 3, 4
INSPECT_MAX = 64
FNV_OFFSET, FNV_PRIME = 0xCBF29CE484222325, 0x100000001B3
CFG_FORMAT = "=Ii4I"  # struct rb_cfg

PIPE_READ_NAMES = ("anon_pipe_read", "pipe_read")  # renamed in 6.15
COPY_USER_OLD = copyroutine.PRE64_ROUTINES  # the pre-6.4 assembly copy routines
FUNC_KIND = {
    "vfs_read": K_VFS_READ,
    "filemap_read": K_FILEMAP_READ,
    "copy_page_to_iter": K_COPY_PAGE_TO_ITER,
    "_copy_to_iter": K_COPY_TO_ITER,
    "anon_pipe_read": K_PIPE_READ,
    "pipe_read": K_PIPE_READ,
}
# Assembly routines: no BTF, so kprobe only.
ASM_KIND = {"rep_movs_alternative": K_REP_MOVS, **dict.fromkeys(COPY_USER_OLD, K_COPY_USER_OLD)}
TRAMPOLINE_TARGETS = tuple(FUNC_KIND)
KPROBE_TARGETS = (*FUNC_KIND, *ASM_KIND)

# Which kernel functions each workload's read goes through (others never fire).
_COPY = ("copy_page_to_iter", "_copy_to_iter", *ASM_KIND)
PATH_OF = {
    "cached": ("vfs_read", "filemap_read", *_COPY),
    "cached-stream": ("vfs_read", "filemap_read", *_COPY),
    "uncached": ("vfs_read", "filemap_read", *_COPY),
    "direct": ("vfs_read",),  # O_DIRECT: DMA into the buffer, no copy routine
    "pipe": ("vfs_read", *PIPE_READ_NAMES, *_COPY),
}

# Probing must not catch a real process: tgids never exceed PID_MAX_LIMIT (4M).
NO_TGID = 0xFFFFFFFF

TRACEFS = Path("/sys/kernel/tracing")


@dataclass(frozen=True)
class HookSpec:
    attach: str  # "" for none
    target: str
    body: str

    @property
    def is_none(self) -> bool:
        return self.attach == ""

    @property
    def name(self) -> str:
        return "none" if self.is_none else f"{self.attach}:{self.target}:{self.body}"

    @property
    def side(self) -> str:
        """'enter' or 'exit': which side of the call the name points at."""
        if self.attach in ("fexit", "kretprobe"):
            return "exit"
        if self.attach in ("rawtp", "tpbtf"):
            return "exit" if self.target == "sys_exit" else "enter"
        if self.attach == "tp":
            return "exit" if "/sys_exit_" in self.target else "enter"
        return "enter"

    def __str__(self) -> str:
        return self.name


NONE = HookSpec("", "", "")


def _bad(text: str, rule: str) -> BadInput:
    return BadInput(f"hook {text!r}: {rule}")


def parse(text: str) -> HookSpec:
    """'none' or 'ATTACH:TARGET[:BODY]' -> HookSpec; BadInput names the input and the rule."""
    t = text.strip()
    if t == "none":
        return NONE
    parts = t.split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise _bad(text, "expected 'none' or ATTACH:TARGET[:BODY], e.g. rawtp:sys_enter:count")
    attach, target = parts[0], parts[1]
    body = parts[2] if len(parts) == 3 else "empty"
    if attach not in ATTACH_TYPES:
        raise _bad(text, f"unknown attach type {attach!r}; one of {', '.join(ATTACH_TYPES)}")
    if body not in BODIES:
        raise _bad(text, f"unknown body {body!r}; one of {', '.join(BODIES)}")
    if attach == "tp":
        ok = [f"syscalls/sys_{d}_{s}" for d in ("enter", "exit") for s in SYSCALL_NR]
        if target not in ok:
            raise _bad(text, f"classic tracepoint target must be one of {', '.join(ok)}")
    elif attach in ("rawtp", "tpbtf"):
        if target not in ("sys_enter", "sys_exit"):
            raise _bad(text, f"{attach} target must be sys_enter or sys_exit")
    elif attach in ("fentry", "fexit"):
        if target in ASM_KIND:
            raise _bad(
                text,
                f"{target} is an assembly routine without BTF: fentry/fexit cannot attach "
                f"to it; use kprobe:{target} or kretprobe:{target}",
            )
        if target not in TRAMPOLINE_TARGETS:
            raise _bad(text, f"{attach} target must be one of {', '.join(TRAMPOLINE_TARGETS)}")
    elif target not in KPROBE_TARGETS:
        raise _bad(text, f"{attach} target must be one of {', '.join(KPROBE_TARGETS)}")
    return HookSpec(attach, target, body)


# ---- the running kernel ----------------------------------------------------------


@cache
def _kallsyms() -> frozenset[str]:
    """Text symbols (functions) of the running kernel."""
    try:
        entries = copyroutine.running_kallsyms()
    except OSError:
        return frozenset()
    return frozenset(n for _, t, n in entries if t in "tT")


@cache
def _cpu_flags() -> frozenset[str]:
    try:
        return frozenset(copyroutine.cpu_flags())
    except OSError:
        return frozenset()


def resolve_target(target: str) -> str | None:
    """The symbol to hook on this kernel (pipe_read <-> anon_pipe_read), or None."""
    syms = _kallsyms()
    if target in PIPE_READ_NAMES:
        for name in (target, *PIPE_READ_NAMES):
            if name in syms:
                return name
        return None
    return target if target in syms else None


CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18


def ensure_tracefs() -> str:
    """Classic tracepoints are found by id under tracefs. If it is not mounted, mount it in a
    mount namespace of this process's own, so nothing outside the measuring process changes
    and the mount disappears with it (even on SIGKILL). Returns '' or a note on what was done."""
    if (TRACEFS / "events").is_dir() or Path("/sys/kernel/debug/tracing/events").is_dir():
        return ""
    if os.geteuid() != 0:
        return "tracefs not mounted at /sys/kernel/tracing (needs root to mount)"
    libc = ctypes.CDLL(None, use_errno=True)
    # unshare(CLONE_NEWNS) gives the calling thread (the one that attaches) a private copy
    # of the mount table; MS_PRIVATE keeps our mount from propagating back to the host.
    if libc.unshare(CLONE_NEWNS) != 0 or libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None):
        e = ctypes.get_errno()
        return f"cannot make a private mount namespace for tracefs: errno {e} {os.strerror(e)}"
    rc = libc.mount(b"nodev", str(TRACEFS).encode(), b"tracefs", 0, None)
    if rc != 0:
        e = ctypes.get_errno()
        return f"mounting tracefs at {TRACEFS} failed: errno {e} {os.strerror(e)}"
    return f"mounted tracefs at {TRACEFS} (private to this process)"


# ---- plan: which programs a hook needs --------------------------------------------


@dataclass
class _Side:
    program: str
    role: str  # enter | exit
    how: str  # tp | rawtp | trace | kprobe | kretprobe
    point: str  # tracepoint name or kernel function


@dataclass
class _Plan:
    sides: list[_Side]
    kind: int
    nr: int
    enter_actions: int = 0
    exit_actions: int = 0
    exit_needs_stash: bool = False
    symbol: str | None = None
    notes: list[str] = field(default_factory=list)


def _pair(spec: HookSpec, symbol: str | None, sc: str) -> dict[str, _Side]:
    a = spec.attach
    if a == "tp":
        return {
            "enter": _Side("tp_enter", "enter", "tp", f"syscalls/sys_enter_{sc}"),
            "exit": _Side("tp_exit", "exit", "tp", f"syscalls/sys_exit_{sc}"),
        }
    if a == "rawtp":
        return {
            "enter": _Side("rawtp_enter", "enter", "rawtp", "sys_enter"),
            "exit": _Side("rawtp_exit", "exit", "rawtp", "sys_exit"),
        }
    if a == "tpbtf":
        return {
            "enter": _Side("tpbtf_enter", "enter", "trace", "sys_enter"),
            "exit": _Side("tpbtf_exit", "exit", "trace", "sys_exit"),
        }
    assert symbol
    if a in ("fentry", "fexit"):
        return {
            "enter": _Side("fentry_fn", "enter", "trace", symbol),
            "exit": _Side("fexit_fn", "exit", "trace", symbol),
        }
    return {
        "enter": _Side("kprobe_fn", "enter", "kprobe", symbol),
        "exit": _Side("kretprobe_fn", "exit", "kretprobe", symbol),
    }


def companion_type(spec: HookSpec) -> str | None:
    """The other attach type a hook's body also needs (fentry <-> fexit), if any."""
    if spec.is_none:
        return None
    need_other = (spec.body == "inspect" and spec.side == "enter") or (
        spec.side == "exit"
        and (spec.body == "hist" or (spec.body == "inspect" and spec.attach in ("tp", "kretprobe")))
    )
    if not need_other:
        return None
    return {"fentry": "fexit", "fexit": "fentry", "kprobe": "kretprobe", "kretprobe": "kprobe"}.get(
        spec.attach, spec.attach
    )


NOT_APPLICABLE = "not applicable: "


def _applicable(spec: HookSpec, workload: str) -> str | None:
    """Why `spec` makes no sense for `workload` (wrong syscall, not on its path), or None.

    Reasons start with NOT_APPLICABLE, so a report can tell a meaningless cell (the
    matrix crossed a pread64 tracepoint with a read() workload) from a kernel refusal.
    """
    if workload not in SYSCALL_OF:
        raise BadInput(f"workload {workload!r}: unknown; one of {', '.join(SYSCALL_OF)}")
    sc = SYSCALL_OF[workload]
    if spec.attach == "tp":
        traced = spec.target.rsplit("_", 1)[1]
        if traced != sc:
            return (
                f"{NOT_APPLICABLE}{spec.name} traces {traced}() but workload {workload} "
                f"issues {sc}(): use tp:syscalls/sys_{spec.side}_{sc}"
            )
    elif spec.attach not in ("rawtp", "tpbtf") and spec.target not in PATH_OF[workload]:
        return (
            f"{NOT_APPLICABLE}{spec.target} is not on the {workload} read path "
            "(it would never fire)"
        )
    return None


def _plan(spec: HookSpec, workload: str, tgid: int) -> _Plan:
    sc = SYSCALL_OF[workload]
    symbol = None
    kind = K_SYSCALL
    if spec.attach not in ("tp", "rawtp", "tpbtf"):
        symbol = resolve_target(spec.target)
        if symbol is None:
            raise MissingCapability(
                f"{spec.name}: kernel {os.uname().release} has no function {spec.target} "
                "in /proc/kallsyms (renamed, inlined or not built in)"
            )
        kind = FUNC_KIND.get(symbol, ASM_KIND.get(symbol, K_SYSCALL))
    pair = _pair(spec, symbol, sc)
    p = _Plan(sides=[], kind=kind, nr=SYSCALL_NR[sc], symbol=symbol)
    named = spec.side
    use_enter = named == "enter"
    use_exit = named == "exit"
    b = spec.body
    if b == "count":
        if named == "enter":
            p.enter_actions |= A_COUNT
        else:
            p.exit_actions |= A_COUNT
    elif b == "hist":
        if named == "enter":
            p.enter_actions |= A_HIST_SIZE
        else:
            use_enter = True
            p.enter_actions |= A_HIST_SIZE | A_STASH | A_STASH_TS
            p.exit_actions |= A_HIST_LAT
            p.exit_needs_stash = True
    elif b == "inspect":
        use_exit = True
        p.exit_actions |= A_INSPECT
        if named == "enter" or spec.attach in ("tp", "kretprobe"):
            use_enter = True
            p.enter_actions |= A_STASH
            p.exit_needs_stash = True
    # Exit first: an exit never meets a stash entry its enter did not write.
    if use_exit:
        p.sides.append(pair["exit"])
    if use_enter:
        p.sides.append(pair["enter"])
    return p


# ---- errors and their meaning ------------------------------------------------------


def _meaning(attach: str, err: int, what: str) -> str:
    if err == errno_mod.EPERM:
        if attach in ("fentry", "fexit"):
            return (
                "the kernel refused the trampoline (BPF_PROG_TYPE_TRACING) program: "
                "kernel lockdown, an LSM policy, or a kernel/hypervisor that forbids "
                "ftrace direct calls"
            )
        return "operation not permitted: needs CAP_BPF+CAP_PERFMON (or root), or lockdown/LSM"
    if err == errno_mod.ENOENT:
        if attach in ("kprobe", "kretprobe"):
            pmu = Path("/sys/bus/event_source/devices/kprobe").exists()
            legacy = (TRACEFS / "kprobe_events").exists()
            if not pmu and not legacy:
                return (
                    "no kprobe PMU (/sys/bus/event_source/devices/kprobe) and no "
                    "kprobe_events in tracefs: kernel built without CONFIG_KPROBES"
                )
            return "kprobes exist but this symbol cannot be probed (blacklisted or notrace)"
        if attach == "tp":
            return "tracepoint not in tracefs (CONFIG_FTRACE_SYSCALLS off, or tracefs missing)"
        return "target not found (no such tracepoint or function in the kernel's BTF)"
    if err == errno_mod.ESRCH:
        return "function not found in the kernel's BTF"
    if err in (errno_mod.EOPNOTSUPP, errno_mod.ENOTSUP, 524):  # 524 = ENOTSUPP (kernel)
        return "this kernel does not support the attach type for that target"
    if err == errno_mod.EINVAL:
        return "invalid argument: kernel rejected the program or attach parameters"
    if err == errno_mod.EACCES:
        return "verifier rejected the program (see libbpf log)"
    return os.strerror(err)


def _refusal(attach: str, e: lb.LibbpfError) -> str:
    # libbpf's own first "failed" lines name the step; its generic advice does not help.
    lines = [ln.removeprefix("libbpf: ").strip() for ln in e.log]
    tail = [ln for ln in lines if "failed" in ln and "failed to load object" not in ln][:2]
    log = f"; libbpf: {' | '.join(tail)}" if tail else ""
    return (
        f"{attach} refused by kernel: errno {e.errno} {e.errname} ({os.strerror(e.errno)}) "
        f"at {e.what} — {_meaning(attach, e.errno, e.what)}{log}"
    )


# ---- load / attach ---------------------------------------------------------------


def _object_path() -> Path:
    return bpf_build.object_path("readhooks")


def _pack_cfg(tgid: int, p: _Plan) -> bytes:
    return struct.pack(
        CFG_FORMAT,
        tgid,
        p.nr,
        p.kind,
        p.enter_actions,
        p.exit_actions,
        int(p.exit_needs_stash),
    )


def _load(p: _Plan, tgid: int) -> lb.Object:
    try:
        obj = lb.Object(_object_path())
    except OSError as e:
        raise MissingCapability(f"cannot load libbpf.so.1 or the BPF object: {e}") from e
    try:
        wanted = {s.program for s in p.sides}
        for prog in obj.programs():
            prog.set_autoload(prog.name in wanted)
        for s in p.sides:
            if s.program in ("fentry_fn", "fexit_fn"):
                obj.program(s.program).set_attach_target(s.point)
        ro = obj.rodata()
        cfg = _pack_cfg(tgid, p)
        if len(ro) != len(cfg):
            raise RuntimeError(  # a bug, not a machine limit: exit 1
                f"BPF object .rodata is {len(ro)} bytes, expected struct rb_cfg of {len(cfg)}: "
                "bpf/readhooks.bpf.c and readbench/hooks.py disagree"
            )
        ctypes.memmove(ro, cfg, len(cfg))
        obj.load()
    except BaseException:
        obj.close()
        raise
    return obj


def _attach_side(obj: lb.Object, s: _Side) -> lb.Link:
    prog = obj.program(s.program)
    if s.how == "tp":
        cat, name = s.point.split("/")
        return prog.attach_tracepoint(cat, name)
    if s.how == "rawtp":
        return prog.attach_raw_tracepoint(s.point)
    if s.how == "trace":
        kind = {"tpbtf_enter": "tp_btf", "tpbtf_exit": "tp_btf"}.get(s.program, s.program[:-3])
        return prog.attach_trace(f"attach {kind} {s.point}")
    return prog.attach_kprobe(s.point, retprobe=s.how == "kretprobe")


class AttachedHook:
    """Programs of one hook, loaded and attached for one process. Close to detach."""

    def __init__(
        self, spec: HookSpec, workload: str, tgid: int, stats: bool, floor: bool = False
    ) -> None:
        self.spec = spec
        self.floor = floor
        self.workload = workload
        self.tgid = tgid
        self._obj: lb.Object | None = None
        self._links: list[lb.Link] = []
        self._stats_fd = -1
        self._plan: _Plan | None = None
        self.notes: list[str] = []
        if spec.is_none:
            return
        why = _applicable(spec, workload)
        if why:
            raise BadInput(why)
        if spec.attach == "tp":
            note = ensure_tracefs()
            if note:
                self.notes.append(note)
        self._plan = _plan(spec, workload, tgid)
        if floor:
            self._floor()
        attach_type = spec.attach
        try:
            if stats:
                self._stats_fd = lb.enable_stats()
            self._obj = _load(self._plan, self.tgid)
            for s in self._plan.sides:
                attach_type = _side_attach_type(spec.attach, s)
                self._links.append(_attach_side(self._obj, s))
        except lb.LibbpfError as e:
            self.close()
            raise MissingCapability(f"{spec.name}: {_refusal(attach_type, e)}") from e
        except BaseException:
            self.close()
            raise
        self._ncpu = lb.num_possible_cpus()
        self._maps = {
            n: self._obj.map(n) for n in ("counts", "hist_size", "hist_lat", "istats", "hashes")
        }

    def _floor(self) -> None:
        """Same programs and attach points, but the first filter never matches: syscall
        programs get an impossible syscall id (they return after one load and compare),
        function programs an impossible tgid (one helper call and compare)."""
        assert self._plan is not None
        if self._plan.kind == K_SYSCALL:
            self._plan.nr = -2
        else:
            self.tgid = NO_TGID
        self.notes.append("floor variant: the filter never matches")

    # -- maps --
    def _percpu(self, name: str) -> list[int]:
        m = self._maps[name]
        stride = (m.value_size + 7) // 8 * 8
        out = []
        for k in range(m.max_entries):
            raw = m.lookup(struct.pack("=I", k), stride * self._ncpu) or b""
            out.append(sum(struct.unpack_from("=Q", raw, c * stride)[0] for c in range(self._ncpu)))
        return out

    @staticmethod
    def _hist(buckets: list[int]) -> list[dict[str, int]]:
        return [
            {"bucket": b, "lo": 0 if b == 0 else 1 << b, "hi": (1 << (b + 1)) - 1, "count": n}
            for b, n in enumerate(buckets)
            if n
        ]

    def snapshot(self) -> dict[str, Any]:
        """JSON-able: body maps + per-program run_cnt/run_time_ns (absolute, since load)."""
        snap: dict[str, Any] = {
            "hook": self.spec.name,
            "workload": self.workload,
            "tgid": self.tgid,
            "stats_enabled": self._stats_fd >= 0,
            "floor": self.floor,
            "notes": list(self.notes),
        }
        if self.spec.is_none or self._obj is None or self._plan is None:
            snap["programs"] = []
            return snap
        p = self._plan
        counts = self._percpu("counts")
        istats = self._percpu("istats")
        snap.update(
            target=p.symbol or (p.sides[0].point if p.sides else None),
            body=self.spec.body,
            attached=[
                {"program": s.program, "role": s.role, "how": s.how, "point": s.point}
                for s in p.sides
            ],
            counts={"enter": counts[COUNT_ENTER], "exit": counts[COUNT_EXIT]},
            count=counts[COUNT_ENTER if self.spec.side == "enter" else COUNT_EXIT]
            if self.spec.body == "count"
            else None,
            hist_size=self._hist(self._percpu("hist_size")),
            hist_lat_ns=self._hist(self._percpu("hist_lat")),
        )
        hashes = {}
        hm = self._maps["hashes"]
        for key in list(hm.keys()):
            v = hm.lookup(key, 8)
            if v is not None:
                hashes[f"{struct.unpack('=Q', key)[0]:016x}"] = struct.unpack("=Q", v)[0]
        snap["inspect"] = {
            "events": istats[I_EVENTS],
            "bytes_seen": istats[I_BYTES],
            "skipped": istats[I_SKIPPED],
            "faults": istats[I_FAULTS],
            "no_stash": istats[I_NO_STASH],
            "hashes": hashes,
        }
        progs = []
        for s in p.sides:
            info = self._obj.program(s.program).info()
            progs.append(
                {
                    "name": info.name.decode(),
                    "type": lb.PROG_TYPES.get(info.type, str(info.type)),
                    "id": info.id,
                    "role": s.role,
                    "point": s.point,
                    "run_cnt": info.run_cnt,
                    "run_time_ns": info.run_time_ns,
                    "recursion_misses": info.recursion_misses,
                    "xlated_len": info.xlated_prog_len,
                    "jited_len": info.jited_prog_len,
                }
            )
        snap["programs"] = progs
        return snap

    def program_ids(self) -> list[int]:
        if self._obj is None or self._plan is None:
            return []
        return [self._obj.program(s.program).info().id for s in self._plan.sides]

    def close(self) -> None:
        for link in reversed(self._links):
            link.destroy()
        self._links = []
        if self._obj is not None:
            self._obj.close()
            self._obj = None
        if self._stats_fd >= 0:
            os.close(self._stats_fd)
            self._stats_fd = -1

    def __enter__(self) -> AttachedHook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def _side_attach_type(attach: str, s: _Side) -> str:
    """Attach type of one side (a companion of fentry is fexit, etc.)."""
    if attach in ("fentry", "fexit"):
        return "fentry" if s.role == "enter" else "fexit"
    if attach in ("kprobe", "kretprobe"):
        return "kprobe" if s.role == "enter" else "kretprobe"
    return attach


def attach(
    spec: HookSpec | str, *, tgid: int, workload: str, stats: bool = False, floor: bool = False
) -> AttachedHook:
    """Load and attach `spec` for process `tgid` running `workload`.

    BadInput if the hook does not apply to the workload; MissingCapability (with errno and
    meaning) if the kernel refuses; `stats=True` holds a BPF_ENABLE_STATS fd while attached.
    `floor=True` attaches the same programs with a filter that never matches: with stats
    on, its run_time_ns per run is what BPF stats report for a program doing next to
    nothing (the clock reads' share), to subtract from the real hook's per-run time.
    """
    if isinstance(spec, str):
        spec = parse(spec)
    return AttachedHook(spec, workload, tgid, stats, floor)


def verify(spec: HookSpec | str, workload: str) -> list[dict[str, Any]]:
    """Load the hook's programs through the verifier without attaching anything.

    Shows that a body is accepted where attaching is refused (kprobes without
    CONFIG_KPROBES load, then fail at attach). MissingCapability if loading is refused.
    """
    if isinstance(spec, str):
        spec = parse(spec)
    if spec.is_none:
        return []
    why = _applicable(spec, workload)
    if why:
        raise BadInput(why)
    p = _plan(spec, workload, NO_TGID)
    try:
        obj = _load(p, NO_TGID)
    except lb.LibbpfError as e:
        raise MissingCapability(f"{spec.name}: {_refusal(spec.attach, e)}") from e
    try:
        out = []
        for s in p.sides:
            info = obj.program(s.program).info()
            out.append(
                {
                    "name": s.program,
                    "role": s.role,
                    "type": lb.PROG_TYPES.get(info.type, str(info.type)),
                    "xlated_len": info.xlated_prog_len,
                    "verified_insns": info.verified_insns,
                }
            )
        return out
    finally:
        obj.close()


# ---- availability ------------------------------------------------------------------

_PROBE_TARGET = {
    "tp": "syscalls/sys_enter_pread64",
    "rawtp": "sys_enter",
    "tpbtf": "sys_enter",
    "fentry": "vfs_read",
    "fexit": "vfs_read",
    "kprobe": "vfs_read",
    "kretprobe": "vfs_read",
}


@cache
def _trial(attach: str, target: str) -> tuple[bool, str]:
    """Load + attach an empty program of `attach` on `target`, detach at once."""
    if os.geteuid() != 0:
        # Not a kernel verdict: say so rather than guess.
        return False, "not root: loading BPF programs needs root (CAP_BPF + CAP_PERFMON)"
    spec = HookSpec(attach, target, "empty")
    workload = next(w for w in SYSCALL_OF if _applicable(spec, w) is None)
    try:
        with AttachedHook(spec, workload, NO_TGID, stats=False) as h:
            pts = ", ".join(f"{s.program}@{s.point}" for s in h._plan.sides)  # type: ignore[union-attr]
            return True, f"loaded and attached {pts}"
    except MissingCapability as e:
        return False, str(e)


def probe_attach_types() -> dict[str, dict[str, Any]]:
    """Try each attach type on this kernel with an empty program (cached per process)."""
    out: dict[str, dict[str, Any]] = {}
    for a in ATTACH_TYPES:
        target = _PROBE_TARGET[a]
        try:
            ok, reason = _trial(a, target)
        except Exception as e:  # a broken build must show, not crash the probe
            ok, reason = False, f"{type(e).__name__}: {e}"
        out[a] = {"available": ok, "reason": reason, "target": target}
    return out


def availability(spec: HookSpec | str, workload: str) -> tuple[bool, str]:
    """(True, how) or (False, why) for `spec` on `workload` on this kernel."""
    if isinstance(spec, str):
        spec = parse(spec)
    if spec.is_none:
        return True, "no hook"
    why = _applicable(spec, workload)
    if why:
        return False, why
    if spec.attach not in ("tp", "rawtp", "tpbtf"):
        symbol = resolve_target(spec.target)
        if symbol is None:
            return False, (
                f"kernel {os.uname().release} has no function {spec.target} in /proc/kallsyms"
            )
        if symbol == "rep_movs_alternative" and "fsrm" in _cpu_flags():
            return False, (
                "CPU has FSRM: copy_user_generic() inlines rep movsb and never calls "
                "rep_movs_alternative, so a probe there would see no reads"
            )
        target = symbol
    else:
        target = spec.target
    types = [spec.attach]
    other = companion_type(spec)
    if other and other != spec.attach:
        types.append(other)
    for a in types:
        ok, reason = _trial(a, target)
        if not ok:
            return False, reason
    return True, reason


def default_hooks(workloads: list[str]) -> list[str]:
    """'none' + every available attach type with `empty` and `inspect` bodies, with
    targets that every listed workload passes (its syscall; vfs_read for functions)."""
    out = ["none"]
    syscalls = sorted({SYSCALL_OF[w] for w in workloads if w in SYSCALL_OF})
    probe = probe_attach_types()
    for a in ATTACH_TYPES:
        if not probe[a]["available"]:
            continue
        if a == "tp":
            targets = [f"syscalls/sys_enter_{sc}" for sc in syscalls]
        elif a in ("rawtp", "tpbtf"):
            targets = ["sys_enter"]
        else:
            targets = ["vfs_read"]
        for t in targets:
            for body in ("empty", "inspect"):
                name = f"{a}:{t}:{body}"
                if any(availability(name, w)[0] for w in workloads):
                    out.append(name)
    return out


def catalogue() -> list[dict[str, Any]]:
    """Every hook point this suite knows with availability here (`readbench hooks`)."""
    rows: list[dict[str, Any]] = []
    for a in ATTACH_TYPES:
        if a == "tp":
            targets = [f"syscalls/sys_{d}_{s}" for s in SYSCALL_NR for d in ("enter", "exit")]
        elif a in ("rawtp", "tpbtf"):
            targets = ["sys_enter", "sys_exit"]
        elif a in ("fentry", "fexit"):
            targets = [t for t in TRAMPOLINE_TARGETS if t != "pipe_read"]
        else:
            targets = [t for t in KPROBE_TARGETS if t != "pipe_read"]
        for t in targets:
            spec = HookSpec(a, t, "empty")
            workloads = [w for w in SYSCALL_OF if _applicable(spec, w) is None]
            if a in ("tp", "rawtp", "tpbtf"):
                symbol: str | None = t
            else:
                symbol = resolve_target(t)
            if not workloads:
                ok, reason = False, "on no workload's read path"
            else:
                ok, reason = availability(spec, workloads[0])
            rows.append(
                {
                    "hook": f"{a}:{t}",
                    "attach": a,
                    "target": t,
                    "symbol": symbol,
                    "workloads": workloads,
                    "available": ok,
                    "reason": reason,
                }
            )
    return rows


def fnv1a64(data: bytes) -> int:
    """The hash the inspect body computes (for checking it from user space)."""
    h = FNV_OFFSET
    for b in data:
        h ^= b
        h = (h * FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return h
