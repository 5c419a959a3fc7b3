"""The runner's child process groups: an interrupt leaves nothing of them running."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from readbench.measure import children


def test_a_signal_while_a_child_starts_is_raised_once_the_child_is_ours() -> None:
    with children.signals_raise():
        with pytest.raises(children.Interrupted) as e, children.held_signals():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # the handler has run by now, and raised nothing here
            reached = True
        assert reached and e.value.signum == signal.SIGTERM
        # outside the hold a signal raises at once
        with pytest.raises(children.Interrupted):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)


def test_kill_returns_only_when_the_whole_group_has_exited() -> None:
    # the leader's two children stand in for pyperf's workers: same group, not its leader
    child = children.ChildRunner()
    t = threading.Thread(
        target=child.run, args=(["sh", "-c", "sleep 60 & sleep 60 & wait"],), daemon=True
    )
    t.start()
    deadline = time.monotonic() + 10
    while (child.proc is None or len(children.live_members(child.proc.pid)) < 3) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.01)
    assert child.proc is not None
    pgid = child.proc.pid
    assert len(children.live_members(pgid)) == 3
    child.kill()
    assert children.live_members(pgid) == []
    t.join(5)
    assert not t.is_alive()


def test_live_members_skips_zombies() -> None:
    pid = os.fork()
    if pid == 0:
        os.setpgid(0, 0)
        os._exit(0)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        time.sleep(0.01)
    try:
        assert children.live_members(pid) == []
    finally:
        os.waitpid(pid, 0)
