"""The workloads (design §3): their names, their ids in workloads/readloop.h (`enum
rb_workload`; tests/unit/test_c_abi.py checks the two agree), and the syscall one operation
issues, from which hooks pick their tracepoint. Pure code."""

from __future__ import annotations

WORKLOADS: dict[str, int] = {
    "cached": 0,
    "cached-stream": 1,
    "uncached": 2,
    "direct": 3,
    "pipe": 4,
}

SYSCALL_OF: dict[str, str] = {
    "cached": "pread64",
    "cached-stream": "read",
    "uncached": "pread64",
    "direct": "pread64",
    "pipe": "read",
}

# Workloads whose meaning depends on the page cache being bypassable: their data directory
# must be on a filesystem that evicts (uncached) or does real direct I/O (direct).
NEEDS_EVICTION = ("uncached",)
NEEDS_DIRECT_IO = ("direct",)
