"""The CPU as CPUID reports it to user space: the copy-relevant bits of leaf 7. The kernel's
view (/proc/cpuinfo) is readbench.kernel.cpu's; a hypervisor or clearcpuid= can make the two
differ. The cpuid instruction lives in the compiled copy replicas (copy_replicas.c)."""

from __future__ import annotations

import platform


def cpuid_bits() -> dict[str, bool] | None:
    """The copy-relevant bits as CPUID itself reports them to user space: leaf 7 ERMS EBX[9],
    FSRM EDX[4]; leaf 7.1 FZRM/FSRS/FSRC EAX[10..12]. None if unreadable."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return None
    try:
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
