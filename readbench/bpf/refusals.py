"""What a kernel refusal means: errno and the step that failed, in words a user can act on."""

from __future__ import annotations

import errno as errno_mod
import os
from pathlib import Path

from readbench.bpf import binding as lb
from readbench.kernel.tracefs import TRACEFS

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


def refusal(attach: str, e: lb.LibbpfError) -> str:
    # libbpf's own first "failed" lines name the step; its generic advice does not help.
    lines = [ln.removeprefix("libbpf: ").strip() for ln in e.log]
    tail = [ln for ln in lines if "failed" in ln and "failed to load object" not in ln][:2]
    log = f"; libbpf: {' | '.join(tail)}" if tail else ""
    return (
        f"{attach} refused by kernel: errno {e.errno} {e.errname} ({os.strerror(e.errno)}) "
        f"at {e.what} — {_meaning(attach, e.errno, e.what)}{log}"
    )
