"""What a kernel refusal means: errno and the step that failed, in words a user can act on."""

from __future__ import annotations

import errno as errno_mod
import os
from pathlib import Path

from readbench.bpf import binding
from readbench.kernel.ksyms import Kallsyms
from readbench.kernel.text import open_kernel_text
from readbench.kernel.tracefs import TRACEFS, traceable_functions

CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 21, 38, 39


def _holds_bpf_caps() -> bool:
    """CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN) in this process's effective set."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            eff = int(line.split()[1], 16)
            return bool(eff >> CAP_SYS_ADMIN & 1) or (
                bool(eff >> CAP_BPF & 1) and bool(eff >> CAP_PERFMON & 1)
            )
    return False


def _meaning(attach: str, err: int, what: str) -> str:
    if err == errno_mod.EPERM:
        if attach in ("fentry", "fexit", "fmod_ret"):
            return (
                "the kernel refused the trampoline (BPF_PROG_TYPE_TRACING) program: "
                "kernel lockdown, an LSM policy, or a kernel/hypervisor that forbids "
                "ftrace direct calls"
            )
        if _holds_bpf_caps():  # then the capabilities are not the reason: say so
            return (
                "operation not permitted although this process holds CAP_BPF and "
                "CAP_PERFMON: kernel lockdown or an LSM policy forbids this program type"
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


def notrace_reason(target: str) -> str | None:
    """Why a function cannot take a trampoline or a kprobe, from evidence: it is not among
    the functions ftrace can patch (no __fentry__ call site: notrace, or assembly), with its
    first instruction bytes where the kernel text is readable. None when it is traceable or
    nothing can be read."""
    funcs = traceable_functions()
    if funcs is None or target in funcs:
        return None
    why = (
        f"{target} is notrace in this kernel: it is not in tracefs available_filter_functions "
        "(no __fentry__ call site at its entry)"
    )
    ks = Kallsyms.load()
    addr = ks.by_name.get(target)
    text, _ = open_kernel_text(ks) if addr else (None, "")
    head = text.read(addr, 8) if text is not None and addr else None
    if head is not None:
        why += (
            f"; its first bytes are {head.hex(' ')}, not the 5-byte nop (0f 1f 44 00 00) "
            f"ftrace patches ({text.source})"
        )
    return why


def _notrace_meaning(attach: str, err: int, target: str | None) -> str | None:
    if target is None:
        return None
    if attach in ("fentry", "fexit", "fmod_ret") and err == errno_mod.EBUSY:
        why = notrace_reason(target)
        return why and f"{why}: a BPF trampoline patches that call site, so attaching fails"
    if attach in ("kprobe", "kretprobe") and err == errno_mod.EINVAL:
        why = notrace_reason(target)
        return why and (
            f"{why}: the kernel refuses to probe notrace functions (trace_kprobe 'Could not "
            "probe notrace function'; only CONFIG_KPROBE_EVENTS_ON_NOTRACE=y allows it)"
        )
    return None


def refusal(attach: str, e: binding.LibbpfError, target: str | None = None) -> str:
    """The kernel's refusal in words: errno, the step that failed, what it means (with
    evidence read from this kernel where the errno alone is ambiguous), libbpf's own line."""
    # libbpf's own first "failed" lines name the step; its generic advice does not help.
    lines = [ln.removeprefix("libbpf: ").strip() for ln in e.log]
    tail = [ln for ln in lines if "failed" in ln and "failed to load object" not in ln][:2]
    log = f"; libbpf: {' | '.join(tail)}" if tail else ""
    meaning = _notrace_meaning(attach, e.errno, target) or _meaning(attach, e.errno, e.what)
    return (
        f"{attach} refused by kernel: errno {e.errno} {e.errname} ({os.strerror(e.errno)}) "
        f"at {e.what} — {meaning}{log}"
    )
