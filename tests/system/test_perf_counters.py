"""Counters scoped to the timed loop: hardware path, forced software path, unsupported events."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from readbench.kernel import perf_event_open as pe
from readbench.measure.readloop import ReadLoop
from tests.conftest import require


@pytest.fixture(scope="module")
def data_file() -> Path:
    from readbench.measure.datafiles import default_data_dir

    base = Path(os.environ.get("READBENCH_TEST_DATA", default_data_dir()))
    base.mkdir(parents=True, exist_ok=True)
    p = base / "perf-counters-256K.bin"
    if not p.exists() or p.stat().st_size != 1 << 18:
        p.write_bytes(os.urandom(1 << 18))
    return p


def _per_op(groups: list[pe.CounterGroup], loop: ReadLoop, loops: int) -> dict[str, float]:
    r = loop.run(loops, ctl_fds=[g.leader for g in groups if g.leader >= 0])
    for g in groups:
        g.read()
    rep = pe.counter_report(groups, r.ops)
    return {c["name"]: c["per_op"] for c in rep if c["supported"]}


def test_counters_are_scoped_to_the_loop(root: None, data_file: Path) -> None:
    """Per-op counts agree between a 16-op and a 16384-op batch. Enabling from Python
    around run() instead adds ~7000 instructions per call (measured here: 16-op batches
    then show ~3300 instructions/op against ~1440), which this test would catch."""

    def per_op(loop: ReadLoop, loops: int) -> float:
        # One group: with two, the second group's enable ioctl is inside the first's window.
        groups = pe.open_counters()
        hw = groups[0].leader >= 0
        for g in groups[1:] if hw else groups[:1]:
            g.close()
        groups = groups[:1] if hw else groups[1:]
        try:
            return _per_op(groups, loop, loops)["instructions" if hw else "task-clock"]
        finally:
            for g in groups:
                g.close()

    # task-clock (no PMU) carries ~3 us of enable/disable time per batch: longer short batch.
    n_short = 16 if pe.hardware_counters_available() and not pe.force_software() else 256
    with ReadLoop("cached", 64, data_file) as loop:
        loop.run(1000)
        short = min(per_op(loop, n_short) for _ in range(7))
        long = min(per_op(loop, 16384) for _ in range(3))
    assert short == pytest.approx(long, rel=0.2), (n_short, short, long)


def test_hardware_counters_here(root: None, data_file: Path) -> None:
    require(pe.hardware_counters_available(), "not-on-this-kind: no hardware PMU (VM without vPMU)")
    require(
        not pe.force_software(),
        "not-on-this-kind: READBENCH_COUNTERS=software forces the no-PMU path",
    )
    from readbench.measure import perf_profile as perfpass

    with ReadLoop("cached", 4096, data_file) as loop:
        res = perfpass.count(loop, 0.2)
    by = {c["name"]: c for c in res["counters"]}
    assert res["hardware_counters"] is True
    for n in ("cycles", "instructions", "task-clock", "page-faults", "context-switches"):
        assert n in by
    for n in ("cycles", "instructions"):
        c = by[n]
        assert c["kind"] == "hardware" and c["supported"] and c["value"] > 0
        assert c["per_op"] == pytest.approx(c["value"] / res["ops"])
    assert by["task-clock"]["kind"] == "software" and by["task-clock"]["unit"] == "ns"
    assert 0 < res["derived"]["ipc"] < 10


def test_forced_software_path(root: None, data_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """READBENCH_COUNTERS=software: the no-PMU path, run for real on any machine."""
    from readbench.measure import perf_profile as perfpass

    monkeypatch.setenv("READBENCH_COUNTERS", "software")
    with ReadLoop("cached", 65536, data_file) as loop:
        res = perfpass.measure(loop, workload="cached", size=65536, seconds=0.6)
    hw = [c for c in res["counters"] if c["kind"] == "hardware"]
    sw = {c["name"]: c for c in res["counters"] if c["kind"] == "software"}
    assert hw and all(not c["supported"] and c["value"] is None for c in hw)
    assert all("READBENCH_COUNTERS=software" in c["reason"] for c in hw)
    assert sw["task-clock"]["supported"] and sw["task-clock"]["value"] > 0
    assert sw["page-faults"]["supported"] and sw["page-faults"]["value"] is not None
    assert res["hardware_counters"] is False
    assert res["sampling"]["event"] == "cpu-clock" and res["sampling"]["kind"] == "software"
    assert res["copy_fraction"] is not None and res["copy_fraction"] > 0.3


def test_unsupported_event_is_not_zero(root: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # A hardware config no PMU implements: reported unsupported with a reason, no value.
    monkeypatch.setitem(pe.HW_EVENTS, "no-such-event", 0x7FFF_FFFF)
    g = pe.CounterGroup("hardware")
    g.open(["no-such-event"])
    try:
        rep = pe.counter_report([g], 100)
    finally:
        g.close()
    assert rep[0]["supported"] is False and rep[0]["value"] is None and rep[0]["per_op"] is None
    assert rep[0]["reason"]


def test_never_scheduled_counter_is_unsupported() -> None:
    g = pe.CounterGroup("hardware")
    g.counters = [pe.Counter("cycles", "hardware", True, value=0, enabled_ns=10, running_ns=0)]
    rep = pe.counter_report([g], 10)
    assert rep[0]["supported"] is False and rep[0]["value"] is None
    assert "never scheduled" in rep[0]["reason"]


def test_multiplexed_counter_is_scaled_and_flagged() -> None:
    g = pe.CounterGroup("hardware")
    g.counters = [pe.Counter("cycles", "hardware", True, value=500, enabled_ns=10, running_ns=5)]
    rep = pe.counter_report([g], 10)
    assert rep[0]["value"] == 1000 and rep[0]["multiplexed"] is True
    assert rep[0]["per_op"] == pytest.approx(100)


def test_ring_wraparound() -> None:
    buf = bytes(range(16))
    assert pe._ring_read(buf, 14, 4) == bytes([14, 15, 0, 1])
    assert pe._ring_read(buf, 2, 3) == bytes([2, 3, 4])


def test_attr_layout() -> None:
    import ctypes

    assert ctypes.sizeof(pe.PerfEventAttr) == 112
    assert pe.PerfEventAttr.sample_period.offset == 16
    assert pe.PerfEventAttr.flags.offset == 40
