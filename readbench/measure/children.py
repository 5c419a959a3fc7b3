"""The runner's children: one process group at a time, and signals that end the run.

An interrupt must leave no worker behind, since a worker holds BPF links. Two races made
that untrue: a signal landing inside Popen (the child exists, but its pid is not yet ours
to kill), and returning once the group leader was reaped while its workers, SIGKILLed at
the same moment, were still exiting.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from readbench.errors import MeasurementError

# Signals that arrived while a child was being started; None when none is being started.
_held: list[int] | None = None


class Interrupted(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def signals_raise() -> Iterator[None]:
    """SIGTERM and SIGINT raise Interrupted wherever the main thread is, except while a
    child is being started (held_signals), when they are raised as soon as it is ours."""

    def handler(signum: int, _frame: Any) -> None:
        if _held is not None:
            _held.append(signum)
            return
        raise Interrupted(signum)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextmanager
def held_signals() -> Iterator[None]:
    global _held
    _held = []
    try:
        yield
    finally:
        pending, _held = _held, None
        if pending:
            raise Interrupted(pending[0])


def live_members(pgid: int) -> list[int]:
    """Processes of group `pgid` that have not yet exited. A zombie has closed its files,
    so its BPF links are gone: it does not count."""
    pids = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_text()
        except OSError:
            continue
        state, _ppid, pgrp = stat[stat.rindex(")") + 2 :].split()[:3]
        if int(pgrp) == pgid and state not in "ZX":
            pids.append(int(p.name))
    return pids


def kill_group(pgid: int, timeout: float = 10.0) -> list[int]:
    """SIGKILL the whole group and wait until none of it is left running; returns the pids
    still running after `timeout` (a process stuck in the kernel), for the caller to name."""
    with suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while (live := live_members(pgid)) and time.monotonic() < deadline:
        time.sleep(0.01)
    return live


class ChildRunner:
    """Runs one child at a time in its own process group, so an interrupt kills all of it
    (pyperf's main process and its workers, hence their BPF links) at once."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None

    def run(self, cmd: list[str], timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        with held_signals():
            self.proc = p = subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise MeasurementError(f"timed out after {timeout} s: {' '.join(cmd[:6])}") from None
        self.proc = None
        return subprocess.CompletedProcess(cmd, p.returncode, out, err)

    def kill(self) -> None:
        p = self.proc
        self.proc = None
        if p is None:
            return
        # The group outlives its leader: pyperf's workers are in it, so kill and wait on it
        # even when the leader has already exited.
        left = kill_group(p.pid)
        p.wait()
        if left:
            print(
                f"readbench: warning: processes {left} of the run's worker group did not exit "
                "within 10 s of SIGKILL; their BPF links stay until they do",
                file=sys.stderr,
            )
