"""Counters scoped to the timed loop: hardware path, forced software path, unsupported events."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from readbench.kernel import perf_event_open
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


def _per_op(
    groups: list[perf_event_open.CounterGroup], loop: ReadLoop, loops: int
) -> dict[str, float]:
    r = loop.run(loops, ctl_fds=[g.leader for g in groups if g.leader >= 0])
    for g in groups:
        g.read()
    rep = perf_event_open.counter_report(groups, r.ops)
    return {c["name"]: c["per_op"] for c in rep if c["supported"]}


_IOC_ENABLE, _IOC_DISABLE = 0x2400, 0x2401  # PERF_EVENT_IOC_{ENABLE,DISABLE}


def _task_clock_excess(loop: ReadLoop, loops: int, from_python: bool) -> tuple[int, float]:
    """task-clock minus the loop's own clock for one batch, and their ratio. Both time the
    same batch, so machine speed and noise cancel; preemption only lowers task-clock."""
    g = perf_event_open.CounterGroup("software")
    g.open(["task-clock"])
    try:
        if from_python:  # the defect this guards against: the window opened around run()
            fcntl.ioctl(g.leader, _IOC_ENABLE, 0)
            r = loop.run(loops)
            fcntl.ioctl(g.leader, _IOC_DISABLE, 0)
        else:
            r = loop.run(loops, ctl_fds=[g.leader])
        g.read()
        tc = g.counters[0].value
        assert tc is not None
        return tc - r.ns, tc / r.ns
    finally:
        g.close()


def test_counters_are_scoped_to_the_loop(root: None, data_file: Path) -> None:
    """The counter window is the C loop: per batch, task-clock exceeds the loop's own clock
    only by the enable/disable ioctls. Measured here: ~1.4 us in C against ~4.7 us when the
    window is opened from Python around run(), which runs side by side as the control."""
    with ReadLoop("cached", 64, data_file) as loop:
        loop.run(1000)
        c_scope, py_scope = [], []
        for _ in range(15):  # interleaved, so drift hits both alike
            c_scope.append(_task_clock_excess(loop, 16, False)[0])
            py_scope.append(_task_clock_excess(loop, 16, True)[0])
        long_ratio = max(_task_clock_excess(loop, 2048, False)[1] for _ in range(20))
    # Noise only adds to an excess, so the least of each is its floor.
    assert min(c_scope) < 0.6 * min(py_scope), (sorted(c_scope)[:3], sorted(py_scope)[:3])
    # Over a longer batch they agree; preemption can only lower the ratio, so take the most.
    assert 0.9 < long_ratio < 1.05, long_ratio


def _require_pmu() -> None:
    require(
        perf_event_open.hardware_counters_available(),
        "not-on-this-kind: no hardware PMU (VM without vPMU)",
    )
    require(
        not perf_event_open.force_software(),
        "not-on-this-kind: READBENCH_COUNTERS=software forces the no-PMU path",
    )


def test_instruction_counts_are_scoped_to_the_loop(root: None, data_file: Path) -> None:
    """Instructions per op agree between a 16-op and a 16384-op batch. Enabling from Python
    around run() adds ~7000 instructions per call (measured on Zen 4: 16-op batches then show
    ~3300 instructions/op against ~1440). Instruction counts barely move with noise."""
    _require_pmu()

    def per_op(loop: ReadLoop, loops: int) -> float:
        groups = perf_event_open.open_counters()
        for g in groups[1:]:
            g.close()
        try:
            return _per_op(groups[:1], loop, loops)["instructions"]
        finally:
            groups[0].close()

    with ReadLoop("cached", 64, data_file) as loop:
        loop.run(1000)
        short = min(per_op(loop, 16) for _ in range(7))
        long = min(per_op(loop, 16384) for _ in range(3))
    assert short == pytest.approx(long, rel=0.2), (short, long)


def test_hardware_counters_here(root: None, data_file: Path) -> None:
    _require_pmu()
    from readbench.measure import perf_profile

    with ReadLoop("cached", 4096, data_file) as loop:
        res = perf_profile.count(loop, 0.2)
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
    from readbench.measure import perf_profile

    monkeypatch.setenv("READBENCH_COUNTERS", "software")
    with ReadLoop("cached", 65536, data_file) as loop:
        res = perf_profile.measure(loop, workload="cached", size=65536, seconds=0.6)
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
    monkeypatch.setitem(perf_event_open.HW_EVENTS, "no-such-event", 0x7FFF_FFFF)
    g = perf_event_open.CounterGroup("hardware")
    g.open(["no-such-event"])
    try:
        rep = perf_event_open.counter_report([g], 100)
    finally:
        g.close()
    assert rep[0]["supported"] is False and rep[0]["value"] is None and rep[0]["per_op"] is None
    assert rep[0]["reason"]


def test_never_scheduled_counter_is_unsupported() -> None:
    g = perf_event_open.CounterGroup("hardware")
    g.counters = [
        perf_event_open.Counter("cycles", "hardware", True, value=0, enabled_ns=10, running_ns=0)
    ]
    rep = perf_event_open.counter_report([g], 10)
    assert rep[0]["supported"] is False and rep[0]["value"] is None
    assert "never scheduled" in rep[0]["reason"]


def test_multiplexed_counter_is_scaled_and_flagged() -> None:
    g = perf_event_open.CounterGroup("hardware")
    g.counters = [
        perf_event_open.Counter("cycles", "hardware", True, value=500, enabled_ns=10, running_ns=5)
    ]
    rep = perf_event_open.counter_report([g], 10)
    assert rep[0]["value"] == 1000 and rep[0]["multiplexed"] is True
    assert rep[0]["per_op"] == pytest.approx(100)


def test_ring_wraparound() -> None:
    buf = bytes(range(16))
    assert perf_event_open._ring_read(buf, 14, 4) == bytes([14, 15, 0, 1])
    assert perf_event_open._ring_read(buf, 2, 3) == bytes([2, 3, 4])


def test_attr_layout() -> None:
    import ctypes

    assert ctypes.sizeof(perf_event_open.PerfEventAttr) == 112
    assert perf_event_open.PerfEventAttr.sample_period.offset == 16
    assert perf_event_open.PerfEventAttr.flags.offset == 40
