"""The anatomy on this machine: the device wait measured from the block tracepoints against
the loop's own reads and the kernel's disk statistics, every function of real samples of the
default workloads in a named layer, and the guest lane's lower-layer check run here (ext4 on a
virtio disk: uncached and direct reads reach the block layer)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from readbench.model import layers
from tests.anatomy_checks import lower_layers
from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]


def _disk_stat(path: Path) -> tuple[Path, list[int]] | None:
    """(/sys/block/<disk>/stat, its fields) of the disk under `path`: the independent count
    (the kernel's own per-disk accounting) of reads completed and sectors read."""
    st = os.stat(path)
    dev = Path(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}")
    for cand in (dev / "stat", dev / ".." / "stat"):
        if cand.exists() and (cand.parent / "queue").exists():
            return cand, [int(x) for x in cand.read_text().split()]
    return None


def _loop(workload: str, size: int, data_dir: Path, path: Path | None = None):  # type: ignore[no-untyped-def]
    from readbench.measure import datafiles
    from readbench.measure.readloop import ReadLoop

    align = datafiles.direct_io_alignment(data_dir) if workload == "direct" else 0
    path = path or datafiles.ensure(data_dir, workload)
    return ReadLoop(workload, size, path, 0, align or 0)


@pytest.fixture
def private_file(data_dir: Path):  # type: ignore[no-untyped-def]
    """A 32 MiB file of this test's own on the data directory's disk: on a shared machine
    another process reading the shared data file's neighbouring blocks would merge its bios
    with ours, and its requests are not ours to count."""
    path = data_dir / f".devwait-{os.getpid()}.dat"
    with open(path, "wb") as f:
        f.write(os.urandom(32 << 20))
        f.flush()
        os.fsync(f.fileno())
    yield path
    path.unlink()


@pytest.mark.parametrize("workload", ["uncached", "direct"])
def test_device_wait_counts_one_request_per_read(
    root: None, data_dir: Path, private_file: Path, workload: str
) -> None:
    """64 KiB reads of evicted (uncached) or O_DIRECT pages: exactly one request of 64 KiB per
    read, counted by BPF for this process only; the kernel's disk statistics (all processes)
    saw at least as many; the device time is below the read's wall clock. Exact under other
    I/O too: a writer meanwhile fills the virtqueue and requests are requeued (up to 159 in
    a pass), and a requeued request's completion once went uncounted (5 of 1810 in CI, right
    after the guest lane)."""
    from readbench.measure.datafiles import check_workload_fs
    from readbench.measure.perf_profile import device_wait

    check_workload_fs(data_dir, [workload])
    disk = _disk_stat(data_dir)
    require(disk is not None, f"not-on-this-kind: {data_dir} is not on a block device")
    assert disk is not None
    loop = _loop(workload, 65536, data_dir, private_file)
    try:
        before = disk[0].read_text().split()
        dw = device_wait(loop, 0.2)
        time.sleep(0.05)
        after = disk[0].read_text().split()
    finally:
        loop.close()
    assert dw["available"], dw.get("reason")
    reads = dw["reads"]
    assert reads > 100
    # one request per read (a request in flight at the start may add one); a firing the kernel
    # skipped (a program already running on that CPU) is counted in `missed`
    assert reads - dw["missed"] <= dw["requests"] <= reads + 2, dw
    assert dw["issued"] - dw["missed"] <= dw["requests"] <= dw["issued"], dw
    assert dw["bytes"] == dw["requests"] * 65536
    assert dw["splits"] == 0
    done = int(after[0]) - int(before[0])
    sectors = int(after[2]) - int(before[2])
    assert done >= dw["requests"] and sectors * 512 >= dw["bytes"]
    assert 0 < dw["device_ns_per_read"] < dw["wall_ns_per_read"]
    if dw["requeues"] == 0:
        assert dw["request_ns_mean"] == pytest.approx(dw["device_ns_per_read"], rel=0.05)
    else:  # a request's time runs from its last issue; the busy time also holds the tries
        assert dw["request_ns_mean"] <= 1.05 * dw["device_ns_per_read"], dw
    # the reader off the CPU, from sched_switch, against the independent clock of the same
    # pass: wall time minus perf's task-clock; each read sleeps for its request
    assert dw["switches_per_read"] >= 0.9, dw
    assert 0 <= dw["runnable_ns_per_read"] <= dw["off_cpu_ns_per_read"], dw
    assert dw["off_cpu_ns_per_read"] == pytest.approx(dw["wall_minus_cpu_ns"], rel=0.15), dw


def test_cached_reads_wait_for_no_device(root: None, data_dir: Path) -> None:
    from readbench.measure.perf_profile import device_wait

    loop = _loop("cached", 4096, data_dir)
    try:
        dw = device_wait(loop, 0.05)
    finally:
        loop.close()
    assert dw["available"] and dw["reads"] > 1000
    assert dw["requests"] == 0 and dw["device_ns_per_read"] == 0
    # off the CPU only when something else ran: sched_switch agrees with wall − task-clock
    off, wall = dw["off_cpu_ns_per_read"], dw["wall_ns_per_read"]
    assert abs(off - dw["wall_minus_cpu_ns"]) <= 0.05 * wall + 20, dw


DEFAULT_CELLS = [("cached", 64), ("cached", 65536), ("cached-stream", 65536), ("pipe", 4096),
                 ("uncached", 65536), ("direct", 65536)]  # fmt: skip


def test_every_sampled_function_lands_in_a_named_layer(root: None, data_dir: Path) -> None:
    """Real call chains of the default workloads (in-process sampler, scoped to the timed
    loop): no sample is "other", and every sampled function is owned by a layer, a helper, or
    runs under one (an unknown function's samples are its caller's)."""
    from readbench.kernel.ksyms import UNKNOWN, Kallsyms
    from readbench.kernel.perf_event_open import Sampler
    from readbench.measure.perf_profile import _drive, _stack

    how: Counter[str] = Counter()
    lost: Counter[str] = Counter()
    seen: set[str] = set()
    for workload, size in DEFAULT_CELLS:
        loop = _loop(workload, size, data_dir)
        s = Sampler()
        require(s.open(callchain=True), f"perf sampling: {s.reason}")
        raw = []
        try:
            _drive(loop, [s.fd], 0.25, on_batch=lambda: raw.extend(s.drain()))  # noqa: B023
            raw.extend(s.drain())
        finally:
            s.close()
            loop.close()
        assert len(raw) > 200, workload
        assert sum(1 for x in raw if x.kernel and x.chain) > 0.5 * len(raw)
        ks = Kallsyms.fresh()
        for x in raw:
            st = _stack(ks, x)
            if layers.is_harness(st):
                continue
            seen.add(st[0])
            layer, h = layers.classify(st)
            how[h] += 1
            if layer == layers.OTHER:
                lost[f"{workload}/{size}: {';'.join(reversed(st))}"] += 1
    # an address in no function kallsyms knows (a BPF program come and gone on this shared
    # machine between the sample and the read of kallsyms) is no function to place
    named = Counter({k: n for k, n in lost.items() if not k.endswith(UNKNOWN)})
    assert named == Counter()
    assert sum(lost.values()) < 0.01 * sum(how.values())
    assert len(seen) > 50
    # most samples are placed by their own function's name, not by their caller
    assert how["name"] > 0.6 * sum(how.values())


def _one(workload: str, data_dir: Path) -> dict:  # type: ignore[type-arg]
    r = subprocess.run(
        [sys.executable, "-m", "readbench", "one", "--workload", workload, "--size", "64K",
         "--perf", "--json", "--rounds", "1", "--no-progress", "--data-dir", str(data_dir)],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.parametrize("workload", ["uncached", "direct"])
def test_the_guest_lanes_lower_layer_check_holds_here(
    root: None, data_dir: Path, workload: str
) -> None:
    """tests/anatomy_checks.lower_layers(), the check the guest lane runs on 6.1: file-system
    mapping, block layer and driver sampled, device wait measured, here on ext4/virtio-blk."""
    one = _one(workload, data_dir)
    ns = lower_layers(one)
    assert ns[layers.DEVICE] > 0 and ns["device wait (measured)"] > 0
    an = one["perf"]["anatomy"]
    assert sum(x["ns"] for x in an["layers"]) == pytest.approx(an["ns_per_read"])
    # the check can fail: a read that never reached the device
    cached = json.loads(json.dumps(one))
    for x in cached["perf"]["anatomy"]["layers"]:
        if x["layer"] == layers.DRIVER:
            x["samples"], x["ns"] = 0, 0.0
    with pytest.raises(AssertionError, match="device driver"):
        lower_layers(cached)
