"""`readbench guest` refuses bad input before it fetches or boots anything, and no guest
outlives the command that started it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.guest.conftest import guest


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cpu=-erms", "--", "probe"], "--cpu '-erms': expected a QEMU CPU model"),
        (["--cpu", "max,erms;x", "--", "probe"], "is not a flag edit"),
        (["--"], "give the command to run after --"),
        (["--", "guest", "--", "probe"], "a guest cannot start another guest"),
        (["--", "frobnicate"], "not a readbench command"),
        (["--kernel", "/nonexistent/vmlinuz", "--", "probe"], "no such kernel image"),
        (["--kernel", "not-a-kernel", "--", "probe"], "not a kernel image path, an alias"),
        (["--accel", "hvf", "--", "probe"], "--accel 'hvf'"),
        (["--append", "lsm=selinux", "--", "probe"], "set by readbench guest"),
    ],
)
def test_bad_input_exits_2_naming_the_rule(args: list[str], message: str) -> None:
    p = guest(*args, timeout=120)
    assert p.returncode == 2, p.stderr
    assert message in p.stderr, p.stderr


def test_running_kernel_without_an_image_is_a_missing_capability() -> None:
    if os.access(f"/boot/vmlinuz-{os.uname().release}", os.R_OK):
        pytest.skip("not-on-this-kind: this machine has its running kernel's image in /boot")
    p = guest("--kernel", "running", "--", "probe", timeout=120)
    assert p.returncode == 3 and "is not readable here" in p.stderr, p.stderr


def test_unknown_debian_package_is_bad_input(guest_host: None) -> None:
    p = guest("--kernel", "linux-image-0.0.0-nosuch-amd64", "--", "probe", timeout=600)
    assert p.returncode == 2 and "apt knows no such package" in p.stderr, p.stderr


_CHILD = """
import sys, time
from readbench.guest.launch import GuestProcess
g = GuestProcess(["sleep", "300"], None, None, lambda line: None)
print(g.proc.pid, flush=True)
time.sleep(300)
"""


def test_the_watchdog_kills_the_guest_when_its_owner_is_sigkilled() -> None:
    """SIGKILL leaves no cleanup to the owner: the watchdog it started (PR_SET_PDEATHSIG)
    kills the guest's whole process group."""
    owner = subprocess.Popen([sys.executable, "-c", _CHILD], stdout=subprocess.PIPE, text=True,
                             cwd=Path(__file__).resolve().parents[2])  # fmt: skip
    assert owner.stdout is not None
    child = int(owner.stdout.readline())
    os.kill(child, 0)  # alive
    owner.send_signal(signal.SIGKILL)  # at once: also before the watchdog is fully up
    owner.wait()
    for _ in range(50):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the guest process {child} outlived its SIGKILLed owner")
