"""Which BPF programs a hook needs, where they attach and what their config says."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache

from readbench.bpf.abi import (
    A_COUNT,
    A_HIST_LAT,
    A_HIST_SIZE,
    A_INSPECT,
    A_STASH,
    A_STASH_TS,
    K_COPY_PAGE_TO_ITER,
    K_COPY_TO_ITER,
    K_COPY_USER_OLD,
    K_FILEMAP_READ,
    K_PIPE_READ,
    K_REP_MOVS,
    K_SYSCALL,
    K_VFS_READ,
)
from readbench.errors import MissingCapability
from readbench.kernel import cpu, ksyms
from readbench.model.hookspec import PIPE_READ_NAMES, PRE64_ROUTINES, SYSCALL_NR, HookSpec
from readbench.model.workloads import get

FUNC_KIND = {
    "vfs_read": K_VFS_READ,
    "filemap_read": K_FILEMAP_READ,
    "copy_page_to_iter": K_COPY_PAGE_TO_ITER,
    "_copy_to_iter": K_COPY_TO_ITER,
    "anon_pipe_read": K_PIPE_READ,
    "pipe_read": K_PIPE_READ,
}
ASM_KIND = {"rep_movs_alternative": K_REP_MOVS, **dict.fromkeys(PRE64_ROUTINES, K_COPY_USER_OLD)}


@cache
def kernel_functions() -> frozenset[str]:
    """Text symbols (functions) of the running kernel."""
    try:
        return ksyms.function_names()
    except OSError:
        return frozenset()


@cache
def cpu_flags() -> frozenset[str]:
    try:
        return frozenset(cpu.kernel_flags())
    except OSError:
        return frozenset()


def resolve_target(target: str) -> str | None:
    """The symbol to hook on this kernel (pipe_read <-> anon_pipe_read), or None."""
    syms = kernel_functions()
    if target in PIPE_READ_NAMES:
        for name in (target, *PIPE_READ_NAMES):
            if name in syms:
                return name
        return None
    return target if target in syms else None


@dataclass
class Side:
    program: str
    role: str  # enter | exit
    how: str  # tp | rawtp | trace | kprobe | kretprobe
    point: str  # tracepoint name or kernel function


@dataclass
class HookPlan:
    sides: list[Side]
    kind: int
    nr: int
    enter_actions: int = 0
    exit_actions: int = 0
    exit_needs_stash: bool = False
    symbol: str | None = None
    notes: list[str] = field(default_factory=list)


def _pair(spec: HookSpec, symbol: str | None, sc: str) -> dict[str, Side]:
    a = spec.attach
    if a == "tp":
        return {
            "enter": Side("tp_enter", "enter", "tp", f"syscalls/sys_enter_{sc}"),
            "exit": Side("tp_exit", "exit", "tp", f"syscalls/sys_exit_{sc}"),
        }
    if a == "rawtp":
        return {
            "enter": Side("rawtp_enter", "enter", "rawtp", "sys_enter"),
            "exit": Side("rawtp_exit", "exit", "rawtp", "sys_exit"),
        }
    if a == "tpbtf":
        return {
            "enter": Side("tpbtf_enter", "enter", "trace", "sys_enter"),
            "exit": Side("tpbtf_exit", "exit", "trace", "sys_exit"),
        }
    assert symbol
    if a in ("fentry", "fexit"):
        return {
            "enter": Side("fentry_fn", "enter", "trace", symbol),
            "exit": Side("fexit_fn", "exit", "trace", symbol),
        }
    return {
        "enter": Side("kprobe_fn", "enter", "kprobe", symbol),
        "exit": Side("kretprobe_fn", "exit", "kretprobe", symbol),
    }


def plan_hook(spec: HookSpec, workload: str, tgid: int) -> HookPlan:
    # a workload without a syscall gets no syscall hook (hookspec.applicable): -1 matches none
    sc = get(workload).syscall
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
    pair = _pair(spec, symbol, sc or "")
    p = HookPlan(sides=[], kind=kind, nr=SYSCALL_NR[sc] if sc else -1, symbol=symbol)
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
