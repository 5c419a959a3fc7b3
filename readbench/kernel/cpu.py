"""The CPU as the kernel sees it (/proc/cpuinfo, after clearcpuid=). CPUID's own view, which a
hypervisor or clearcpuid= can make differ, is readbench.copy.cpuid's (the instruction lives in
the compiled copy replicas); the copy routine follows the kernel's view."""

from __future__ import annotations

import os
from pathlib import Path

from readbench.model.cpuflags import COPY_FLAGS, CPUID_BITS

__all__ = ["COPY_FLAGS", "CPUID_BITS", "cpuinfo", "kernel_flags"]


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
