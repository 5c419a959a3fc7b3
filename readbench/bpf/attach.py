"""Load a hook's programs with libbpf, attach them for one process, read their maps and
BPF stats, detach. Links are fds of the calling process only (never pinned): a crash or
SIGKILL detaches everything."""

from __future__ import annotations

import ctypes
import struct
from pathlib import Path
from typing import Any

from readbench.bpf import binding, build
from readbench.bpf.abi import (
    CFG_FORMAT,
    COUNT_ENTER,
    COUNT_EXIT,
    I_BYTES,
    I_EVENTS,
    I_FAULTS,
    I_NO_STASH,
    I_SKIPPED,
    K_SYSCALL,
)
from readbench.bpf.hookplan import HookPlan, Side, plan_hook
from readbench.bpf.links import NO_TGID, Attachment
from readbench.bpf.refusals import refusal
from readbench.errors import BadInput, MissingCapability
from readbench.kernel.tracefs import ensure_tracefs
from readbench.model.hookspec import HookSpec, applicable, parse


def _object_path() -> Path:
    return build.object_path("readhooks")


def _pack_cfg(tgid: int, p: HookPlan) -> bytes:
    return struct.pack(
        CFG_FORMAT,
        tgid,
        p.nr,
        p.kind,
        p.enter_actions,
        p.exit_actions,
        int(p.exit_needs_stash),
    )


def _load(p: HookPlan, tgid: int) -> binding.Object:
    try:
        obj = binding.Object(_object_path())
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
                "bpf/readhooks.bpf.c and readbench/bpf/abi.py disagree"
            )
        ctypes.memmove(ro, cfg, len(cfg))
        obj.load()
    except BaseException:
        obj.close()
        raise
    return obj


def _attach_side(obj: binding.Object, s: Side) -> binding.Link:
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


class AttachedHook(Attachment):
    """Programs of one hook, loaded and attached for one process. Close to detach."""

    def __init__(
        self, spec: HookSpec, workload: str, tgid: int, stats: bool, floor: bool = False
    ) -> None:
        super().__init__()
        self.spec = spec
        self.floor = floor
        self.workload = workload
        self.tgid = tgid
        self._plan: HookPlan | None = None
        self.notes: list[str] = []
        if spec.is_none:
            return
        why = applicable(spec, workload)
        if why:
            raise BadInput(why)
        if spec.attach == "tp":
            note = ensure_tracefs()
            if note:
                self.notes.append(note)
        self._plan = plan_hook(spec, workload, tgid)
        if floor:
            self._floor()
        attach_type = spec.attach
        try:
            if stats:
                self._stats_fd = binding.enable_stats()
            self._obj = _load(self._plan, self.tgid)
            self.reattach()
        except binding.LibbpfError as e:
            self.close()
            target = self._plan.symbol
            raise MissingCapability(f"{spec.name}: {refusal(attach_type, e, target)}") from e
        except BaseException:
            self.close()
            raise
        self._ncpu = binding.num_possible_cpus()
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
                    "type": binding.PROG_TYPES.get(info.type, str(info.type)),
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

    def _attach(self) -> list[binding.Link]:
        """Every side of the plan (exit first: an exit never meets a missing stash entry)."""
        assert self._obj is not None and self._plan is not None
        links: list[binding.Link] = []
        for s in self._plan.sides:
            try:
                links.append(_attach_side(self._obj, s))
            except binding.LibbpfError as e:
                for link in reversed(links):
                    link.destroy()
                attach_type = _side_attach_type(self.spec.attach, s)
                why = refusal(attach_type, e, self._plan.symbol)
                raise MissingCapability(f"{self.spec.name}: {why}") from e
        return links

    def program_ids(self) -> list[int]:
        if self._obj is None or self._plan is None:
            return []
        return [self._obj.program(s.program).info().id for s in self._plan.sides]


def _side_attach_type(attach: str, s: Side) -> str:
    """Attach type of one side (a companion of fentry is fexit, etc.)."""
    if attach in ("fentry", "fexit"):
        return "fentry" if s.role == "enter" else "fexit"
    if attach in ("kprobe", "kretprobe"):
        return "kprobe" if s.role == "enter" else "kretprobe"
    return attach


def attach_hook(
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
    why = applicable(spec, workload)
    if why:
        raise BadInput(why)
    p = plan_hook(spec, workload, NO_TGID)
    try:
        obj = _load(p, NO_TGID)
    except binding.LibbpfError as e:
        raise MissingCapability(f"{spec.name}: {refusal(spec.attach, e)}") from e
    try:
        out = []
        for s in p.sides:
            info = obj.program(s.program).info()
            out.append(
                {
                    "name": s.program,
                    "role": s.role,
                    "type": binding.PROG_TYPES.get(info.type, str(info.type)),
                    "xlated_len": info.xlated_prog_len,
                    "verified_insns": info.verified_insns,
                }
            )
        return out
    finally:
        obj.close()
