"""The read kinds beyond read()/pread(): each does in the kernel what its record says,
observed from outside the timed loop (mincore, getrusage, the bytes delivered); refusals are
clear; the coverage matrix's fires per op agree with an independent C/libbpf counter
(bench/point_counter.c, with liburing for its io_uring reads)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from readbench.errors import MeasurementError
from readbench.measure import datafiles
from readbench.measure.readloop import ReadLoop, resident_pages
from tests.conftest import load_bench, require

ROOT = Path(__file__).resolve().parents[2]
MiB = 1 << 20


@pytest.fixture(scope="module")
def cached_file(data_dir: Path) -> Path:
    p = datafiles.ensure(data_dir, "cached")
    assert p is not None
    return p


@pytest.mark.parametrize("workload", ["readv", "preadv2-nowait", "io_uring", "io_uring-fixed"])
def test_buffered_kinds_deliver_the_file_start(workload: str, cached_file: Path) -> None:
    want = cached_file.read_bytes()[:4097]
    with ReadLoop(workload, 4097, cached_file) as loop:
        r = loop.run(500)
        assert (r.ops, r.syscalls, r.bytes, r.eagains) == (500, 500, 500 * 4097, 0)
        assert loop.buffer() == want


def test_mmap_cached_never_faults_and_mmap_fault_faults_each_page(
    cached_file: Path, data_dir: Path
) -> None:
    with ReadLoop("mmap-cached", 64 * 1024, cached_file) as loop:
        r = loop.run(1000)
        assert (r.syscalls, r.major_faults, r.minor_faults) == (0, 0, 0)
    # a file of this test's own: another process reading a shared one would cache its pages
    cold = data_dir / "read-kinds-cold-8MiB.dat"
    if not cold.exists() or cold.stat().st_size != 8 * MiB:
        tmp = cold.with_name(f".{cold.name}.{os.getpid()}")
        with open(tmp, "wb") as f:
            f.write(os.urandom(8 * MiB))
            os.fsync(f.fileno())
        os.replace(tmp, cold)
    with ReadLoop("mmap-fault", 16 * 1024, cold) as loop:
        r = loop.run(40)
        # one fault per first-touched page (nearly all major: a fault that retried after its
        # I/O is accounted minor), the eviction proven before (untimed, mincore) ...
        assert (r.ops, r.syscalls, r.evictions) == (40, 0, 1)
        assert r.major_faults + r.minor_faults == 160 and r.major_faults >= 120, r
        # ... and exactly the touched pages read in by them
        assert resident_pages(cold)[0] == 160


def test_splice_moves_pages_into_the_pipe_between_untimed_drains(cached_file: Path) -> None:
    with ReadLoop("splice", 64, cached_file) as loop:
        r = loop.run(1000)  # 256 pipe buffers per segment: 4 segments, each drained first
        assert (r.ops, r.syscalls, r.bytes, r.drains) == (1000, 1000, 64_000, 4)
    with ReadLoop("splice", MiB, cached_file) as loop:
        assert loop.run(3).drains == 3


def test_bad_read_kind_cells_are_refused_naming_the_rule(data_dir: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "readbench", "one", "--workload", "mmap-fault", "--size", "100",
         "--data-dir", str(data_dir)],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 2 and "multiple of 4096" in r.stderr, r.stderr
    with pytest.raises(MeasurementError, match="two iovecs"):
        ReadLoop("readv", 1, datafiles.ensure(data_dir, "cached"))


_SECCOMP = r"""
import ctypes, errno, runpy, struct, sys
# A seccomp filter returning EPERM for io_uring_setup (425) and allowing every other call.
BPF = lambda code, k, jt=0, jf=0: struct.pack("=HBBI", code, jt, jf, k)
prog = b"".join([BPF(0x20, 0), BPF(0x15, 425, 0, 1), BPF(0x06, 0x00050000 | errno.EPERM),
                 BPF(0x06, 0x7FFF0000)])
buf = ctypes.create_string_buffer(prog)
fprog = struct.pack("=HxxxxxxQ", 4, ctypes.addressof(buf))
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
assert libc.prctl(22, 2, ctypes.c_char_p(fprog), 0, 0) == 0, ctypes.get_errno()
sys.argv = ["readbench", *sys.argv[1:]]
runpy.run_module("readbench", run_name="__main__")
"""


def test_io_uring_refused_by_seccomp_is_a_missing_capability(data_dir: Path) -> None:
    """exit 3 with the kernel's reason, never a failed measurement."""
    r = subprocess.run(
        [sys.executable, "-c", _SECCOMP, "one", "--workload", "io_uring", "--size", "4K",
         "--data-dir", str(data_dir), "--rounds", "1", "--no-progress"],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 3, r.stderr
    assert "io_uring refused" in r.stderr and "seccomp" in r.stderr, r.stderr


@pytest.fixture(scope="module")
def coverage(data_dir: Path) -> dict:
    require(os.geteuid() == 0, "needs root (BPF)")
    r = subprocess.run(
        [sys.executable, "-m", "readbench", "atlas", "--coverage", "--json", "--no-overhead",
         "--size", "4K", "--data-dir", str(data_dir)],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _fires(cov: dict, key: str, kind: str) -> float:
    return next(r for r in cov["points"] if r["key"] == key)["fires_per_op"][kind]


@pytest.mark.parametrize(
    ("point", "kind", "ref_kind"),
    [
        ("io_uring/io_uring_submit_req", "io_uring", "cached"),
        ("raw_syscalls/sys_enter", "io_uring", "cached"),
        ("filemap/mm_filemap_get_pages", "io_uring-fixed", "cached"),
        ("filemap/mm_filemap_get_pages", "readv", "cached"),
        ("filemap/mm_filemap_get_pages", "splice", "cached"),
        ("filemap/mm_filemap_fault", "mmap-fault", "mmap-fault"),
    ],
)
def test_coverage_agrees_with_the_independent_counter(
    coverage: dict, data_dir: Path, point: str, kind: str, ref_kind: str
) -> None:
    ours = _fires(coverage, point, kind)
    pc = load_bench("point_counter")
    n = 200 if kind == "mmap-fault" else 1000
    ref = pc.count(point.split("/")[1], kind, datafiles.ensure(data_dir, ref_kind), 4096, n)
    want = ref["in_read_per_read_call"]
    assert want > 0 and abs(ours - want) <= 0.05 * want, (ours, ref)


def test_coverage_matrix_shape_and_recommendation(coverage: dict) -> None:
    kinds = {k["workload"] for k in coverage["kinds"]}
    assert {"io_uring", "mmap-fault", "mmap-cached", "splice", "readv"} <= kinds
    # nothing fires for reads of mapped pages; no syscall tracepoint fires for page faults
    for r in coverage["points"]:
        if r["via"]:
            assert r["fires_per_op"]["mmap-cached"] == 0, r["key"]
    assert _fires(coverage, "raw_syscalls/sys_enter", "mmap-fault") == 0
    assert _fires(coverage, "syscalls/sys_enter_pread64", "io_uring") == 0
    rec = coverage["recommendation"]
    assert rec["unseen"] == ["mmap-cached"] and rec["points"]
    assert all("misses" in a["text"] for a in rec["alternatives"])
    assert coverage["buffered_check"]["missed"] == ["mmap-cached"]


def test_coverage_keeps_a_kind_whose_reads_fail_as_a_column_with_the_reason(
    tmp_path: Path,
) -> None:
    """On tmpfs RWF_NOWAIT is refused (EOPNOTSUPP) and filemap_read is never called (shmem
    has its own read): the matrix says so instead of failing or counting zeros as coverage."""
    require(os.geteuid() == 0, "needs root (BPF)")
    shm = Path("/dev/shm") / f"readbench-cov-{os.getpid()}"
    try:
        r = subprocess.run(
            [sys.executable, "-m", "readbench", "atlas", "--coverage", "--json", "--no-overhead",
             "--workloads", "cached,preadv2-nowait", "--data-dir", str(shm)],
            capture_output=True, text=True, check=False, cwd=ROOT,
        )  # fmt: skip
    finally:
        subprocess.run(["rm", "-rf", str(shm)], check=False)
    assert r.returncode == 0, r.stderr
    cov = json.loads(r.stdout)
    assert cov["fs_type"] == "tmpfs"
    nowait = next(k for k in cov["kinds"] if k["workload"] == "preadv2-nowait")
    assert "fail on this filesystem" in nowait["refused"]
    assert _fires(cov, "filemap/mm_filemap_get_pages", "cached") == 0
    assert _fires(cov, "raw_syscalls/sys_enter", "cached") == 1
    assert _fires(cov, "raw_syscalls/sys_enter", "preadv2-nowait") is None
