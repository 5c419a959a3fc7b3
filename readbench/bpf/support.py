"""What this kernel permits: every attach type tried for real with an empty program,
per-hook availability with the kernel's reason, the default hook set and the catalogue."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from readbench.bpf.attach import AttachedHook
from readbench.bpf.hookplan import cpu_flags, resolve_target
from readbench.bpf.links import NO_TGID
from readbench.errors import MissingCapability
from readbench.model.hookspec import (
    ATTACH_TYPES,
    KPROBE_TARGETS,
    SYSCALL_NR,
    TRAMPOLINE_TARGETS,
    HookSpec,
    applicable,
    companion_type,
    parse,
)
from readbench.model.workloads import SYSCALL_OF

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
    workload = next(w for w in SYSCALL_OF if applicable(spec, w) is None)
    try:
        with AttachedHook(spec, workload, NO_TGID, stats=False) as h:
            pts = ", ".join(f"{s.program}@{s.point}" for s in h._plan.sides)  # type: ignore[union-attr]
            return True, f"loaded and attached {pts}"
    except MissingCapability as e:
        return False, str(e)


@cache
def _point_trial(attach: str, target: str, group: str) -> tuple[bool, str]:
    """The atlas's counting program on any point (a `point:` hook), tried for real."""
    from readbench.bpf.points import trial

    v = trial(attach, target, group)
    return bool(v["available"]), str(v["reason"])


def attach_type_support() -> dict[str, dict[str, Any]]:
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
    why = applicable(spec, workload)
    if why:
        return False, why
    if spec.point:
        return _point_trial(spec.attach, spec.bare_target, spec.group)
    if spec.attach not in ("tp", "rawtp", "tpbtf"):
        symbol = resolve_target(spec.target)
        if symbol is None:
            return False, (
                f"kernel {os.uname().release} has no function {spec.target} in /proc/kallsyms"
            )
        if symbol == "rep_movs_alternative" and "fsrm" in cpu_flags():
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
    probe = attach_type_support()
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
            workloads = [w for w in SYSCALL_OF if applicable(spec, w) is None]
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
