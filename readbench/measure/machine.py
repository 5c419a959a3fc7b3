"""Machine probe: what this CPU and kernel are, which copy routine runs, what is permitted.

Everything here is read or tried, never assumed: perf hardware counters are tried with the
perf_event_open call the perf pass makes, BPF attach types by loading a trivial program of
each, O_DIRECT by reading a file.
The object is `readbench probe --json` and is stored in every run's manifest.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

from readbench.copy import cpuid
from readbench.kernel import copyroutine, cpu
from readbench.measure import datafiles
from readbench.model.guest import emulated_note


def cpu_info() -> dict[str, Any]:
    try:
        model, flags = cpu.cpuinfo()
    except OSError:
        model, flags = "unknown", []
    return {
        "model": model,
        "flags": flags,
        "copy_flags": {f: f in flags for f in cpu.COPY_FLAGS},
        # The kernel can clear bits (clearcpuid=, FAST_STRING off) that CPUID still reports.
        "cpuid": cpuid.cpuid_bits() or dict.fromkeys(cpu.CPUID_BITS),
        "hypervisor": "hypervisor" in flags,
        "count": os.cpu_count(),
        "llc_bytes": datafiles.llc_bytes(),
        "boost": _read("/sys/devices/system/cpu/cpufreq/boost"),
        "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
    }


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


# Set by `readbench guest` in the guest it boots: its description (JSON), so every probe,
# manifest and report made inside records how the guest ran (TCG: times are emulated).
GUEST_ENV = "READBENCH_GUEST"


def virtualization(flags: list[str]) -> dict[str, Any]:
    """Whether this machine is a virtual one and whether its CPU is emulated. Hardware
    times are what a KVM (or other hardware-assisted) guest measures; a TCG guest's times
    are emulated and must never be presented or compared as hardware times."""
    out: dict[str, Any] = {"hypervisor": "hypervisor" in flags, "guest": None,
                           "accel": None, "emulated": False}  # fmt: skip
    text = os.environ.get(GUEST_ENV)
    if text:
        try:
            g = json.loads(text)
        except json.JSONDecodeError:
            g = None
        if isinstance(g, dict):
            out.update(guest=g, accel=g.get("accel"), emulated=bool(g.get("emulated")))
    return out


EMULATED_NOTE = emulated_note("this machine measures")


def emulated(virt: dict[str, Any]) -> bool:
    """Whether a probe's `virtualization` says its times are emulated (a TCG guest)."""
    return bool(virt.get("emulated"))


def kernel_info() -> dict[str, Any]:
    return {
        "release": platform.release(),
        "version": platform.version(),
        "cmdline": _read("/proc/cmdline"),
        "tainted": _read("/proc/sys/kernel/tainted"),
        "lockdown": _read("/sys/kernel/security/lockdown"),
        "btf": Path("/sys/kernel/btf/vmlinux").exists(),
        "kcore_readable": os.access("/proc/kcore", os.R_OK),
        "perf_event_paranoid": _read("/proc/sys/kernel/perf_event_paranoid"),
        "kptr_restrict": _read("/proc/sys/kernel/kptr_restrict"),
    }


def _version(cmd: list[str]) -> str | None:
    """First line a tool prints for its version, or None when it is missing or fails."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (r.stdout or r.stderr).strip()
    return text.splitlines()[0] if text else None


def perf_info() -> dict[str, Any]:
    """The perf CLI (perf bench, perf record cross-checks), and whether a hardware counter
    opens through perf_event_open: the very call readbench's perf pass makes (tried, not
    guessed)."""
    from readbench.kernel import perf_event_open

    exe = shutil.which("perf")
    err = perf_event_open.hardware_counter_error()
    return {
        "cli": exe,
        "version": _version([exe, "--version"]) if exe else None,
        "cli_reason": "" if exe else "perf CLI not found (Debian: apt-get install linux-perf)",
        "hardware_counters": err is None,
        "reason": "a cycles counter opens (perf_event_open)" if err is None else err,
    }


def io_info(data_dir: Path | None) -> dict[str, Any]:
    d = data_dir or datafiles.default_data_dir()
    out: dict[str, Any] = {"data_dir": str(d), "fs_type": None, "o_direct": None, "dio_align": None}
    if d.exists():
        out["fs_type"] = datafiles.fs_type(d)
        align = datafiles.direct_io_alignment(d)
        out["o_direct"] = align is not None
        out["dio_align"] = align
    try:
        out["pipe_max_size"] = int(Path("/proc/sys/fs/pipe-max-size").read_text())
    except (OSError, ValueError):
        out["pipe_max_size"] = None
    return out


def probe(data_dir: Path | None = None) -> dict[str, Any]:
    from readbench.bpf import support

    cpu_ = cpu_info()
    kern = kernel_info()
    virt = virtualization(cpu_["flags"])
    # predict() with kallsyms, CPUID and (where /proc/kcore or a vmlinux is readable) text checks
    routine = copyroutine.identify(cpuid.cpuid_flags())
    return {
        "cpu": cpu_,
        "kernel": kern,
        "virtualization": virt,
        "copy_routine": routine,
        "perf": perf_info(),
        "attach_types": support.attach_type_support(),
        "io": io_info(data_dir),
        "root": os.geteuid() == 0,
        "python": platform.python_version(),
    }


def tool_versions(probe: dict[str, Any] | None = None) -> dict[str, str | None]:
    """Versions for the manifest; the probe's perf version is reused when given."""
    import pyperf

    import readbench
    from readbench.bpf import build

    perf = probe["perf"]["version"] if probe else _version(["perf", "--version"])
    return {
        "readbench": readbench.__version__,
        "pyperf": pyperf.__version__,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "perf": perf,
        # bpf.build knows where Debian puts bpftool (/usr/sbin, often not on PATH)
        **build.versions(),
    }
