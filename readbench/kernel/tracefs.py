"""tracefs, mounted only where it is needed: in a private mount namespace of the process
that attaches a classic tracepoint (libbpf finds its id under tracefs/events)."""

from __future__ import annotations

import ctypes
import functools
import os
from pathlib import Path

TRACEFS = Path("/sys/kernel/tracing")
DEBUGFS_TRACING = Path("/sys/kernel/debug/tracing")

CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18


def events_dir() -> Path | None:
    """Where tracepoint events are listed in this mount namespace, or None."""
    for d in (TRACEFS, DEBUGFS_TRACING):
        if (d / "events").is_dir():
            return d / "events"
    return None


def ensure_tracefs() -> str:
    """If tracefs is not mounted, mount it in a mount namespace of this process's own, so
    nothing outside the measuring process changes and the mount disappears with it (even on
    SIGKILL). Returns '' or a note on what was done."""
    if events_dir() is not None:
        return ""
    if os.geteuid() != 0:
        return "tracefs not mounted at /sys/kernel/tracing (needs root to mount)"
    libc = ctypes.CDLL(None, use_errno=True)
    # unshare(CLONE_NEWNS) gives the calling thread (the one that attaches) a private copy
    # of the mount table; MS_PRIVATE keeps our mount from propagating back to the host.
    if libc.unshare(CLONE_NEWNS) != 0 or libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None):
        e = ctypes.get_errno()
        return f"cannot make a private mount namespace for tracefs: errno {e} {os.strerror(e)}"
    rc = libc.mount(b"nodev", str(TRACEFS).encode(), b"tracefs", 0, None)
    if rc != 0:
        e = ctypes.get_errno()
        return f"mounting tracefs at {TRACEFS} failed: errno {e} {os.strerror(e)}"
    return f"mounted tracefs at {TRACEFS} (private to this process)"


@functools.cache
def traceable_functions() -> frozenset[str] | None:
    """Functions ftrace can patch (tracefs available_filter_functions): the ones with an
    __fentry__ call site. fentry/fexit trampolines need that site, and kprobes refuse the
    others unless the kernel has CONFIG_KPROBE_EVENTS_ON_NOTRACE. None when unreadable."""
    ensure_tracefs()
    ev = events_dir()
    if ev is None:
        return None
    try:
        text = (ev.parent / "available_filter_functions").read_text()
    except OSError:
        return None
    return frozenset(line.split()[0] for line in text.splitlines() if line.strip())
