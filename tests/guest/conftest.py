"""Shared by the guest lane: run `readbench guest …` as a user would, from the repository."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]


def guest(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    """`readbench guest ARGS…` (ARGS holds its own `--` and inner command)."""
    return subprocess.run(
        [sys.executable, "-m", "readbench", "guest", *args],
        capture_output=True, text=True, check=False, cwd=ROOT, timeout=timeout,
    )  # fmt: skip


def show(p: subprocess.CompletedProcess[str]) -> str:
    return f"exit {p.returncode}\n--- stdout\n{p.stdout[-4000:]}\n--- stderr\n{p.stderr[-6000:]}"


@pytest.fixture(scope="session")
def guest_host() -> None:
    """A machine that can boot guests: root, and the tools `readbench guest` names."""
    require(os.geteuid() == 0, "the guest lane needs root (BPF in the guest, apt-get)")
    from readbench.errors import MissingCapability
    from readbench.guest.launch import check_tools

    try:
        check_tools()
    except MissingCapability as e:
        require(False, str(e))
