"""Machine probe: what this CPU and kernel are, which copy routine runs, what is permitted.

Everything here is read or tried, never assumed: perf hardware counters are tried with a real
`perf stat`, BPF attach types by loading a trivial program of each, O_DIRECT by reading a file.
The object is `readbench probe --json` and is stored in every run's manifest.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from readbench import datafiles

COPY_FLAGS = ("erms", "fsrm", "rep_good", "fzrm", "fsrs", "fsrc")


def cpu_info() -> dict[str, Any]:
    model, flags = "unknown", []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, val = line.partition(":")
            key = key.strip()
            if key == "model name" and model == "unknown":
                model = val.strip()
            elif key == "flags" and not flags:
                flags = val.split()
    except OSError:
        pass
    return {
        "model": model,
        "flags": flags,
        "copy_flags": {f: f in flags for f in COPY_FLAGS},
        # The kernel can clear bits (clearcpuid=, FAST_STRING off) that CPUID still reports.
        "cpuid": cpuid_flags(),
        "hypervisor": "hypervisor" in flags,
        "count": os.cpu_count(),
        "llc_bytes": datafiles.llc_bytes(),
        "boost": _read("/sys/devices/system/cpu/cpufreq/boost"),
        "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
    }


def cpuid_flags() -> dict[str, bool | None]:
    """What CPUID itself reports (leaf 7): ERMS EBX[9], FSRM EDX[4]; FZRM/FSRS/FSRC in
    leaf 7.1 EAX[10..12]. A hypervisor or clearcpuid= can make these differ from the
    kernel's /proc/cpuinfo view."""
    from readbench._readloop import ffi, lib

    regs = ffi.new("uint32_t[4]")
    if lib.rb_cpuid(7, 0, regs) != 0:
        return {f: None for f in ("erms", "fsrm", "fzrm", "fsrs", "fsrc")}
    erms, fsrm = bool(regs[1] >> 9 & 1), bool(regs[3] >> 4 & 1)
    lib.rb_cpuid(7, 1, regs)
    eax = regs[0]
    return {
        "erms": erms,
        "fsrm": fsrm,
        "fzrm": bool(eax >> 10 & 1),
        "fsrs": bool(eax >> 11 & 1),
        "fsrc": bool(eax >> 12 & 1),
    }


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


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


def perf_info() -> dict[str, Any]:
    """Is the perf CLI here, and do hardware counters count (tried, not guessed)?"""
    exe = shutil.which("perf")
    out: dict[str, Any] = {"cli": exe, "version": None, "hardware_counters": False, "reason": ""}
    if not exe:
        out["reason"] = "perf CLI not found (Debian: apt-get install linux-perf)"
        return out
    try:
        v = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10)
        out["version"] = v.stdout.strip() or None
        r = subprocess.run(
            [exe, "stat", "-x,", "-e", "instructions,cycles", "--", "true"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        out["reason"] = f"perf failed to run: {e}"
        return out
    counted = []
    for line in r.stderr.splitlines():
        fields = line.split(",")
        if (len(fields) > 2 and fields[2] in ("instructions", "cycles")) or any(
            f.startswith(("instructions", "cycles")) for f in fields[2:3]
        ):
            counted.append(fields[0])
    ok = bool(counted) and all(re.fullmatch(r"\d+", c) for c in counted)
    out["hardware_counters"] = ok
    out["reason"] = (
        "instructions and cycles count"
        if ok
        else f"perf stat -e instructions,cycles: {', '.join(counted) or r.stderr.strip()[:200]}"
    )
    return out


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
    from readbench import copyroutine, hooks

    cpu = cpu_info()
    kern = kernel_info()
    # predict() with kallsyms, CPUID and (where /proc/kcore or a vmlinux is readable) text checks
    routine = copyroutine.probe()
    return {
        "cpu": cpu,
        "kernel": kern,
        "copy_routine": routine,
        "perf": perf_info(),
        "attach_types": hooks.probe_attach_types(),
        "io": io_info(data_dir),
        "root": os.geteuid() == 0,
        "python": platform.python_version(),
    }


def tool_versions() -> dict[str, str | None]:
    import pyperf

    import readbench

    def ver(cmd: list[str]) -> str | None:
        if not shutil.which(cmd[0]):
            return None
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return (r.stdout or r.stderr).strip().splitlines()[0] if (r.stdout or r.stderr) else None

    return {
        "readbench": readbench.__version__,
        "pyperf": pyperf.__version__,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "perf": ver(["perf", "--version"]),
        "clang": ver(["clang", "--version"]),
        "bpftool": ver(["bpftool", "--version"]),
    }
