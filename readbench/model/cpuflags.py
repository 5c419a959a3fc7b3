"""The CPU flags readbench reads and shows (pure): those that steer the kernel's
copy-to-user routine (kernel-copy-paths.md), the ones CPUID reports to user space, and those a
report shows beside them (the noise level's)."""

from __future__ import annotations

COPY_FLAGS = ("erms", "fsrm", "rep_good", "fzrm", "fsrs", "fsrc")
CPUID_BITS = ("erms", "fsrm", "fzrm", "fsrs", "fsrc")
KEY_FLAGS = (*COPY_FLAGS, "smap", "hypervisor")
