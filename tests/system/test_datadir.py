"""Honest data directories: uncached/direct refuse filesystems that cannot evict pages or do
direct I/O (before writing anything), and the C loop proves eviction/bypass with mincore()."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from readbench.errors import BadInput, MeasurementError
from readbench.measure import datafiles, runner
from readbench.measure.readloop import ReadLoop, resident_pages
from readbench.model.matrix import Block, Cell, Matrix
from tests.conftest import require

MiB = 1024 * 1024
RB = [sys.executable, "-m", "readbench"]


@pytest.fixture
def shm_dir() -> Iterator[Path]:
    """A fresh, empty directory on tmpfs (/dev/shm), removed afterwards."""
    require(datafiles.fs_type(Path("/dev/shm")) == "tmpfs", "needs /dev/shm mounted as tmpfs")
    d = Path(tempfile.mkdtemp(prefix="rb-datadir-", dir="/dev/shm"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def ext4_file(data_dir: Path) -> Path:
    """4 MiB of random bytes on the real-filesystem test data dir."""
    p = data_dir / "datadir-test-4MiB.dat"
    if not p.exists() or p.stat().st_size != 4 * MiB:
        tmp = p.with_name(f".{p.name}.{os.getpid()}")
        tmp.write_bytes(os.urandom(4 * MiB))
        os.replace(tmp, p)
    return p


def _matrix(workload: str, size: int = 4096) -> Matrix:
    return Matrix("t", [Block([workload], [size], ["none"], [0])], rounds=1)


@pytest.mark.parametrize(
    ("workload", "rule"),
    [
        ("uncached", "evicts pages on POSIX_FADV_DONTNEED"),
        ("direct", "does real direct I/O"),
    ],
)
def test_cli_refuses_tmpfs_before_writing(shm_dir: Path, workload: str, rule: str) -> None:
    args = ["one", "--workload", workload, "--size", "4096", "--data-dir", str(shm_dir), "--json"]
    r = subprocess.run(
        [*RB, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert f"--data-dir {shm_dir} is tmpfs" in r.stderr, r.stderr
    assert f"workload {workload} needs a filesystem that {rule}" in r.stderr, r.stderr
    assert r.stdout == ""
    assert list(shm_dir.iterdir()) == [], "a refused run left files in the data dir"


def test_refusal_creates_no_missing_data_dir(shm_dir: Path) -> None:
    missing = shm_dir / "a" / "b"
    with pytest.raises(BadInput, match=r"is tmpfs: workload uncached"):
        runner.plan_run(_matrix("uncached"), missing)
    assert not (shm_dir / "a").exists()


@pytest.mark.parametrize("workload", ["cached", "cached-stream", "pipe"])
def test_cached_workloads_allowed_on_tmpfs(shm_dir: Path, workload: str) -> None:
    size = 4096 if workload != "pipe" else 64
    plan = runner.plan_run(_matrix(workload, size), shm_dir)
    assert [c.workload for c in plan.cells] == [workload]


def test_resume_path_refuses_tmpfs(shm_dir: Path) -> None:
    """--resume goes straight to prepare_data: the refusal is repeated there, before ensure()."""
    plan = runner.RunPlan(
        matrix=_matrix("uncached"),
        cells=[Cell("uncached", 4096, "none", 0, False)],
        skipped=[],
        data_dir=shm_dir,
        io_align=0,
        probe={},
        seed=1,
    )
    with pytest.raises(BadInput, match=r"is tmpfs: workload uncached"):
        runner.prepare_data(plan)
    assert list(shm_dir.iterdir()) == []


def test_default_data_dir_allows_uncached_and_direct(data_dir: Path) -> None:
    require(
        datafiles.fs_type(data_dir) not in datafiles.NO_PAGECACHE_FS,
        f"test data dir {data_dir} must be on a real filesystem",
    )
    datafiles.check_workload_fs(data_dir, ["uncached", "direct", "cached"])


def test_uncached_eviction_check_passes_on_real_fs(ext4_file: Path) -> None:
    """A normal uncached batch on a real filesystem passes the mincore check and reads cold."""
    with ReadLoop("uncached", 4096, ext4_file) as loop:
        for n in (1, 64, 300):
            r = loop.run(n)
            assert (r.ops, r.evictions) == (n, 1)
            assert resident_pages(ext4_file)[0] == n


def test_uncached_eviction_check_fires_on_tmpfs(shm_dir: Path) -> None:
    """Straight to the C loop (past the CLI refusal): tmpfs ignores DONTNEED, so the batch
    must fail with the residency error instead of returning a time."""
    f = shm_dir / "cold.dat"
    f.write_bytes(os.urandom(MiB))
    with ReadLoop("uncached", 4096, f) as loop:
        with pytest.raises(MeasurementError, match=r"uncached: \d+ of \d+ sampled pages still"):
            loop.run(10)
        with pytest.raises(MeasurementError, match=r"resident after POSIX_FADV_DONTNEED.*tmpfs"):
            loop.calibrate(1e6)


def test_direct_bypass_check_passes_on_real_fs(ext4_file: Path, data_dir: Path) -> None:
    align = datafiles.direct_io_alignment(data_dir)
    assert align, "the test data dir must support O_DIRECT"
    with ReadLoop("direct", 4096, ext4_file, io_align=align) as loop:
        loop.run(100)
    assert resident_pages(ext4_file)[0] == 0


def test_direct_bypass_check_fires_on_tmpfs(shm_dir: Path) -> None:
    """tmpfs opens O_DIRECT (Linux >= 6.6) but serves it from memory: the open must fail."""
    f = shm_dir / "cold.dat"
    f.write_bytes(os.urandom(MiB))
    try:
        fd = os.open(f, os.O_RDONLY | os.O_DIRECT)
    except OSError as e:
        if e.errno != errno.EINVAL:  # only the pre-6.6 refusal is a kind of machine
            raise
        pytest.skip("not-on-this-kind: tmpfs refuses O_DIRECT on this kernel (< 6.6)")
    os.close(fd)
    with pytest.raises(MeasurementError, match=r"direct: .*still resident.*tmpfs"):
        ReadLoop("direct", 4096, f, io_align=4096)
