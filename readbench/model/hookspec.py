"""Hook names: `ATTACH:TARGET[:BODY]` (design §4), the targets on each workload's read path,
and which hooks make sense for which workload. Pure code: the report and compare read hook
names through this module without loading anything into a kernel."""

from __future__ import annotations

import re
from dataclasses import dataclass

from readbench.errors import BadInput
from readbench.model.workloads import BY_NAME, SYSCALL_NR

ATTACH_TYPES = ("tp", "rawtp", "tpbtf", "fentry", "fexit", "kprobe", "kretprobe")
BODIES = ("empty", "count", "hist", "inspect")
SYSCALL_POINTS = ("tp", "rawtp", "tpbtf")  # attach types that hook the syscall boundary

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

# Which kernel functions each workload's read goes through (others never fire): the
# registry's `path` (readbench.model.workloads).
PATH_OF = {name: w.path for name, w in BY_NAME.items()}
# Attach types of the atlas's counting program, named as `point:ATTACH:GROUP/TARGET` hooks
# (any tracepoint or function; one tgid filter and one atomic add: about an empty body).
POINT_ATTACH = ("rawtp", "tpbtf", "tp", "fentry", "fexit", "kprobe", "kretprobe", "lsm",
                "fmod_ret")  # fmt: skip
_POINT_NAME = re.compile(r"^[A-Za-z0-9_.]+$")


@dataclass(frozen=True)
class HookSpec:
    attach: str  # "" for none
    target: str  # a point hook: GROUP/TARGET (GROUP empty for a function)
    body: str  # a point hook: "count" (the atlas's counting program)
    point: bool = False  # the atlas's counting program (`point:ATTACH:GROUP/TARGET`)

    @property
    def is_none(self) -> bool:
        return self.attach == ""

    @property
    def name(self) -> str:
        if self.point:
            return f"point:{self.attach}:{self.target}"
        return "none" if self.is_none else f"{self.attach}:{self.target}:{self.body}"

    @property
    def group(self) -> str:
        """A point hook's tracepoint group ('' for a function)."""
        return self.target.rpartition("/")[0] if self.point else ""

    @property
    def bare_target(self) -> str:
        return self.target.rpartition("/")[2]

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
    if t.startswith("point:"):
        return _parse_point(text, t)
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


def _parse_point(text: str, t: str) -> HookSpec:
    parts = t.split(":", 2)
    if len(parts) != 3 or "/" not in parts[2]:
        raise _bad(text, "expected point:ATTACH:GROUP/TARGET, e.g. point:rawtp:filemap/"
                   "mm_filemap_get_pages or point:fentry:/vfs_read")  # fmt: skip
    attach = parts[1]
    group, _, target = parts[2].rpartition("/")
    if attach not in POINT_ATTACH:
        raise _bad(text, f"unknown attach type {attach!r}; one of {', '.join(POINT_ATTACH)}")
    if not _POINT_NAME.match(target) or (group and not _POINT_NAME.match(group)):
        raise _bad(text, "GROUP and TARGET must be tracepoint or function names")
    tracepoint = attach in ("rawtp", "tpbtf", "tp")
    if tracepoint != bool(group) and attach != "tp":
        raise _bad(text, f"{attach} takes {'GROUP/TRACEPOINT' if tracepoint else '/FUNCTION'}")
    if attach == "tp" and not group:
        raise _bad(text, "a classic tracepoint needs its group: point:tp:GROUP/TRACEPOINT")
    return HookSpec(attach, f"{group}/{target}", "count", point=True)


def companion_type(spec: HookSpec) -> str | None:
    """The other attach type a hook's body also needs (fentry <-> fexit), if any."""
    if spec.is_none or spec.point:
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
    if workload not in BY_NAME:
        raise BadInput(f"workload {workload!r}: unknown; one of {', '.join(BY_NAME)}")
    w = BY_NAME[workload]
    sc = w.syscall
    if spec.point:
        return None  # any point: the atlas's coverage counts whether it fires
    if spec.attach in SYSCALL_POINTS and sc is None:
        return (f"{NOT_APPLICABLE}workload {workload} makes no syscall per read ({w.op}): "
                "a syscall tracepoint never fires for it")  # fmt: skip
    if spec.attach in SYSCALL_POINTS and spec.body in ("inspect", "hist") and not w.buffer_arg:
        return (f"{NOT_APPLICABLE}the {spec.body} body reads the buffer and length in "
                f"{sc}()'s second and third arguments, and {sc}() has no plain buffer there "
                f"(workload {workload}: {w.op})")  # fmt: skip
    if spec.attach == "tp":
        traced = spec.target.split("/sys_", 1)[1].split("_", 1)[1]  # enter_X / exit_X -> X
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
