"""The CPU as the kernel sees it (/proc/cpuinfo, after clearcpuid=) and as CPUID reports it
to user space. A hypervisor or clearcpuid= can make the two differ; the copy routine follows
the kernel's view."""

from __future__ import annotations

import os
import platform
from pathlib import Path

# CPU features that steer the kernel's copy-to-user routine (kernel-copy-paths.md).
COPY_FLAGS = ("erms", "fsrm", "rep_good", "fzrm", "fsrs", "fsrc")
CPUID_BITS = ("erms", "fsrm", "fzrm", "fsrs", "fsrc")


def cpuinfo(path: str | os.PathLike[str] = "/proc/cpuinfo") -> tuple[str, list[str]]:
    """(model name, flags) of the first CPU."""
    model, flags = "unknown", []
    for line in Path(path).read_text().splitlines():
        key, _, val = line.partition(":")
        key = key.strip()
        if key == "model name" and model == "unknown":
            model = val.strip()
        elif key == "flags" and not flags:
            flags = val.split()
        if flags and model != "unknown":
            break
    return model, flags


def kernel_flags(path: str | os.PathLike[str] = "/proc/cpuinfo") -> set[str]:
    """Flags of the first CPU in /proc/cpuinfo (the kernel's view)."""
    return set(cpuinfo(path)[1])


def cpuid_bits() -> dict[str, bool] | None:
    """The copy-relevant bits as CPUID itself reports them to user space: leaf 7 ERMS EBX[9],
    FSRM EDX[4]; leaf 7.1 FZRM/FSRS/FSRC EAX[10..12]. None if unreadable."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return None
    try:  # the cpuid instruction lives in the compiled copy replicas
        from readbench.copy._replicas import ffi, lib
    except ImportError:
        return None
    regs = ffi.new("uint32_t[4]")
    if lib.cr_cpuid(0, 0, regs) != 0 or regs[0] < 7:
        return None
    lib.cr_cpuid(7, 0, regs)
    erms, fsrm = bool(regs[1] & (1 << 9)), bool(regs[3] & (1 << 4))
    eax = regs[0] if lib.cr_cpuid(7, 1, regs) == 0 else 0
    return {
        "erms": erms,
        "fsrm": fsrm,
        "fzrm": bool(eax & (1 << 10)),
        "fsrs": bool(eax & (1 << 11)),
        "fsrc": bool(eax & (1 << 12)),
    }


def cpuid_flags() -> set[str] | None:
    """ERMS / FSRM as CPUID leaf 7 reports them to user space; None if unreadable."""
    bits = cpuid_bits()
    return None if bits is None else {f for f in ("erms", "fsrm") if bits[f]}
