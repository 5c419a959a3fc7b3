"""bench/point_counter: an independent count of tracepoint firings per read() call.

Real runs (root, BPF). The exact-equality cases are ones where the kernel's code path makes
the answer certain: one sys_enter per syscall, one filemap_get_pages per small cached read.
Measured values are printed (pytest -s) and recorded as junit properties.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import require

BENCH = Path(__file__).resolve().parents[2] / "bench" / "point_counter.py"
MiB = 1 << 20
Record = Callable[[str, object], None]


@pytest.fixture(scope="module")
def pc() -> ModuleType:
    require(os.geteuid() == 0, "needs root (BPF)")
    tool_path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin:/sbin"])
    require(shutil.which("bpftool", path=tool_path) is not None, "needs bpftool")
    spec = importlib.util.spec_from_file_location("point_counter", BENCH)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.build()
    return mod


def _data(data_dir: Path, nbytes: int) -> Path:
    path = data_dir / f"point-counter-{nbytes // MiB}MiB.bin"
    if not path.exists() or path.stat().st_size != nbytes:
        with path.open("wb") as f:
            for _ in range(nbytes // MiB):
                f.write(os.urandom(MiB))
            f.flush()
            os.fsync(f.fileno())  # DONTNEED skips dirty pages: uncached reads need clean ones
    return path


@pytest.fixture
def cached_file(data_dir: Path) -> Path:
    return _data(data_dir, 4 * MiB)


@pytest.fixture
def uncached_file(data_dir: Path) -> Path:
    return _data(data_dir, 64 * MiB)


def _run(
    pc: ModuleType, record: Record, tp: str, workload: str, path: Path, size: int, n: int
) -> dict[str, Any]:
    r: dict[str, Any] = pc.count(tp, workload, path, size, n)
    print(r)
    record(f"{tp}/{workload}/{size}", r["per_read_call"])
    assert (r["tracepoint"], r["workload"], r["size"], r["ops"]) == (tp, workload, size, n)
    assert r["read_calls"] >= n
    assert r["per_read_call"] == pytest.approx(r["count"] / r["read_calls"])
    assert r["count_in_read"] <= r["count"]
    return r


@pytest.mark.parametrize("workload", ["cached", "pipe"])
def test_sys_enter_once_per_read_call(
    pc: ModuleType, record_property: Record, cached_file: Path, workload: str
) -> None:
    r = _run(pc, record_property, "sys_enter", workload, cached_file, 64, 5000)
    assert r["count"] == r["read_calls"]
    assert r["count_in_read"] == r["count"]  # the ops make no other syscall


def test_sys_enter_uncached_counts_the_fadvise_too(
    pc: ModuleType, record_property: Record, uncached_file: Path
) -> None:
    r = _run(pc, record_property, "sys_enter", "uncached", uncached_file, 4096, 200)
    assert r["read_calls"] == 200
    assert r["count"] == 2 * r["read_calls"]  # fadvise + pread per op
    assert r["count_in_read"] == r["read_calls"]


@pytest.mark.parametrize("size", [64, 4096])
def test_filemap_get_pages_once_per_small_cached_read(
    pc: ModuleType, record_property: Record, cached_file: Path, size: int
) -> None:
    r = _run(pc, record_property, "mm_filemap_get_pages", "cached", cached_file, size, 5000)
    assert r["read_calls"] == 5000
    assert r["count"] == r["read_calls"]


def _recache_in_small_folios(path: Path) -> None:
    """Drop the file's cache and read it back 4 KiB at a time under FADV_RANDOM: the forced
    readahead that then fills each miss allocates minimum-order (4 KiB) folios."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        for off in range(0, os.fstat(fd).st_size, 4096):
            os.pread(fd, 4096, off)
    finally:
        os.close(fd)


def test_filemap_get_pages_several_per_1MiB_cached_read(
    pc: ModuleType, record_property: Record, data_dir: Path
) -> None:
    """filemap_read() calls filemap_get_pages() once per batch of folios, so the count per
    1 MiB read depends on the folio sizes in the cache. A freshly written file sits in large
    folios (measured here: 1 per read on ext4, 6.18), so that state is only recorded; the
    assertion is made on a cache of 4 KiB folios, where 256 pages need several batches."""
    path = data_dir / "point-counter-4MiB-fresh.bin"
    path.unlink(missing_ok=True)
    with path.open("wb") as f:
        f.write(os.urandom(4 * MiB))
        f.flush()
        os.fsync(f.fileno())
    fresh = _run(pc, record_property, "mm_filemap_get_pages", "cached", path, MiB, 500)
    assert fresh["per_read_call"] >= 1
    _recache_in_small_folios(path)
    r = _run(pc, record_property, "mm_filemap_get_pages", "cached", path, MiB, 500)
    assert r["per_read_call"] > 1


def test_uncached_read_adds_to_page_cache(
    pc: ModuleType, record_property: Record, uncached_file: Path
) -> None:
    tp = "mm_filemap_add_to_page_cache"
    r = _run(pc, record_property, tp, "uncached", uncached_file, 4096, 200)
    assert r["read_calls"] == 200
    assert r["count_in_read"] >= r["read_calls"]
    assert r["per_read_call"] >= 1


def test_counts_only_its_own_process(
    pc: ModuleType, record_property: Record, cached_file: Path
) -> None:
    """Another process reading the same file all the while adds nothing to the count."""
    noise = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, sys\nfd = os.open(sys.argv[1], os.O_RDONLY)\nos.pread(fd, 64, 0)\n"
            "print('reading', flush=True)\nwhile True:\n    os.pread(fd, 64, 0)\n",
            str(cached_file),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert noise.stdout is not None
        assert noise.stdout.readline() == "reading\n"  # it is in its loop before we count
        r = _run(pc, record_property, "sys_enter", "cached", cached_file, 64, 20000)
        assert noise.poll() is None, "the competing reader ended early"
    finally:
        noise.kill()
        noise.wait()
    assert r["count"] == r["read_calls"] == 20000


def test_bad_usage_and_unknown_tracepoint(pc: ModuleType, cached_file: Path) -> None:
    exe = str(pc.build())
    bad = subprocess.run(
        [exe, "sys_enter", "mmap", str(cached_file), "64", "10"], capture_output=True, text=True
    )
    assert bad.returncode == 2
    missing = subprocess.run(
        [exe, "no_such_tracepoint_xyz", "cached", str(cached_file), "64", "10"],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 3
    assert "no_such_tracepoint_xyz" in missing.stderr


def test_concurrent_builds_share_one_complete_cache_entry(tmp_path: Path) -> None:
    """Two guests share the host's build cache: builders running at once each build in a
    directory of their own and rename it into place, so every one gets a working counter
    (the object and skeleton were written in place before, readable half-written)."""
    require(os.geteuid() == 0, "needs root (BPF)")
    env = {**os.environ, "READBENCH_BPF_CACHE": str(tmp_path / "bpf")}
    code = ("import sys; sys.path.insert(0, 'bench'); import skeleton_build as s; "
            "print(s.build('point_counter', ('-luring',)))")  # fmt: skip
    root = BENCH.parents[1]
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=root, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(3)]  # fmt: skip
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    (exe,) = {Path(o.strip()) for o, _ in outs}
    assert exe.is_file() and os.access(exe, os.X_OK)
    assert sorted(f.name for f in exe.parent.iterdir()) == [
        "point_counter", "point_counter.bpf.o", "point_counter.skel.h"]  # fmt: skip
    assert [d.name for d in exe.parent.parent.iterdir()] == [exe.parent.name]  # no temp left
    r = subprocess.run([str(exe), "sys_enter", "pipe", "-", "64", "100"], capture_output=True,
                       text=True, check=False)  # fmt: skip
    assert r.returncode == 0, r.stderr
