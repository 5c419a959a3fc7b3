"""User-space replicas of the kernel's copy strategies, and the perf bench cross-check."""
