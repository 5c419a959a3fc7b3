"""Shared test fixtures.

Tests that need root or a kernel feature skip with a reason on machines without it.
CI sets READBENCH_STRICT=1: there a skip is a failure, so a missing install step or
capability cannot hide behind a green run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

STRICT = os.environ.get("READBENCH_STRICT") == "1"
# tests/inguest/ runs inside a guest booted by `readbench guest` (tests/guest/ starts it);
# on the host its kernels' features are absent by design, so it is not collected there.
if not os.environ.get("READBENCH_GUEST"):
    collect_ignore = ["inguest"]
# Skips that are expected even in CI (a different machine kind's feature); each must
# say why in its reason, starting with this prefix.
ALLOWED_IN_STRICT = "not-on-this-kind:"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    outcome = yield
    rep = outcome.get_result()
    if STRICT and rep.skipped and not hasattr(rep, "wasxfail"):
        reason = str(rep.longrepr[2]) if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        if ALLOWED_IN_STRICT not in reason:
            rep.outcome = "failed"
            rep.longrepr = f"skipped under READBENCH_STRICT=1 (CI): {reason}"


def require(condition: bool, reason: str) -> None:
    """Skip (or, in CI, fail) when a capability is missing."""
    if not condition:
        pytest.skip(reason)


@pytest.fixture
def root() -> None:
    require(os.geteuid() == 0, "needs root (BPF, perf kernel samples, drop caches)")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """A data directory on a real filesystem (O_DIRECT, page cache): not tmpfs."""
    default = Path.home() / ".cache" / "readbench" / "test-data"
    base = Path(os.environ.get("READBENCH_TEST_DATA", default))
    base.mkdir(parents=True, exist_ok=True)
    return base


def load_bench(name: str):  # type: ignore[no-untyped-def]
    """A module of bench/ (the independent reference programs' drivers), by file name."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
