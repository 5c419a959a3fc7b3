"""Hook names: `ATTACH:TARGET[:BODY]` (design §4), the targets on each workload's read path,
and which hooks make sense for which workload. Pure code: the report and compare read hook
names through this module without loading anything into a kernel."""

from __future__ import annotations

from dataclasses import dataclass

from readbench.errors import BadInput
from readbench.model.workloads import SYSCALL_OF

ATTACH_TYPES = ("tp", "rawtp", "tpbtf", "fentry", "fexit", "kprobe", "kretprobe")
BODIES = ("empty", "count", "hist", "inspect")
SYSCALL_POINTS = ("tp", "rawtp", "tpbtf")  # attach types that hook the syscall boundary

# x86-64 syscall numbers of the workloads' syscalls (arch/x86/entry/syscalls/syscall_64.tbl)
SYSCALL_NR = {"read": 0, "pread64": 17}

PIPE_READ_NAMES = ("anon_pipe_read", "pipe_read")  # renamed in 6.15
# The pre-6.4 assembly copy routines (kernel-copy-paths.md).
PRE64_ROUTINES = ("copy_user_enhanced_fast_string", "copy_user_generic_string",
                  "copy_user_generic_unrolled")  # fmt: skip
# C functions on the read path (BTF: fentry/fexit and kprobes).
FUNC_TARGETS = (
    "vfs_read",
    "filemap_read",
    "copy_page_to_iter",
    "_copy_to_iter",
    *PIPE_READ_NAMES,
)
# Assembly routines: no BTF, so kprobe only.
ASM_TARGETS = ("rep_movs_alternative", *PRE64_ROUTINES)
TRAMPOLINE_TARGETS = FUNC_TARGETS
KPROBE_TARGETS = (*FUNC_TARGETS, *ASM_TARGETS)

# Which kernel functions each workload's read goes through (others never fire).
_COPY = ("copy_page_to_iter", "_copy_to_iter", *ASM_TARGETS)
PATH_OF = {
    "cached": ("vfs_read", "filemap_read", *_COPY),
    "cached-stream": ("vfs_read", "filemap_read", *_COPY),
    "uncached": ("vfs_read", "filemap_read", *_COPY),
    "direct": ("vfs_read",),  # O_DIRECT: DMA into the buffer, no copy routine
    "pipe": ("vfs_read", *PIPE_READ_NAMES, *_COPY),
}


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
        if target in ASM_TARGETS:
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


def applicable(spec: HookSpec, workload: str) -> str | None:
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
