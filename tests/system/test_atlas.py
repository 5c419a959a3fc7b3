"""The hook-point atlas on this kernel: attach verdicts tried for real, firing counts checked
against an independent C/libbpf counter (bench/point_counter.c), arguments from BTF."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from readbench.kernel import btf
from readbench.measure import datafiles
from tests.conftest import load_bench, require

ROOT = Path(__file__).resolve().parents[2]


def _atlas(workload: str, size: str, data_dir: Path) -> dict:
    r = subprocess.run(
        [sys.executable, "-m", "readbench", "atlas", "--workload", workload, "--size", size,
         "--json", "--no-overhead", "--data-dir", str(data_dir)],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def root() -> None:
    require(os.geteuid() == 0, "needs root (BPF)")


@pytest.fixture(scope="module")
def cached_1m(root: None, data_dir: Path) -> dict:
    return _atlas("cached", "1M", data_dir)


def _row(atlas: dict, target: str) -> dict:
    rows = [r for r in atlas["points"] if r["target"] == target]
    assert rows, f"{target} not in the atlas: {[r['target'] for r in atlas['points']]}"
    return rows[0]


def test_cached_1m_rows(cached_1m: dict) -> None:
    assert _row(cached_1m, "sys_enter")["fires_per_read"] == 1.0
    vfs = _row(cached_1m, "vfs_read")
    assert {"name": "file", "type": "struct file *"} in vfs["args"]
    assert any(a["type"] == "struct iov_iter *" for a in _row(cached_1m, "_copy_to_iter")["args"])
    for r in cached_1m["points"]:
        verdicts = r["attach"].values()
        for v in verdicts:
            assert v["available"] or v["reason"], (r["target"], v)  # every refusal says why
            if "EPERM" in (v.get("reason") or "") and os.geteuid() == 0:
                assert "needs CAP_BPF" not in v["reason"], v["reason"]  # root holds them
        if any(v["available"] for v in verdicts):
            assert r["fires_per_read"] is not None, r["target"]  # attaches: counted
        else:
            assert r["fires_per_read"] is None and r["fires_note"]
    recs = {r["need"]: r for r in cached_1m["recommendations"]}
    assert set(recs) == {"observe", "data", "control"}
    assert all(r["summary"] for r in recs.values())
    # only an attach type that can do what the need asks; never a point that did not fire
    assert recs["control"]["point"] is None or recs["control"]["attach"] in ("lsm", "fmod_ret")
    for r in recs.values():
        if r["point"] is not None:
            assert r["fires_per_read"] > 0, r
    for r in cached_1m["points"]:
        # every type that attached counted the same reads: they agree
        counts = list((r["fires_by_attach"] or {}).values())
        assert not counts or max(counts) - min(counts) <= 0.01 * max(max(counts), 1), r
        if r["fires_per_read"] == 0:
            assert r["silent"] and "fires" in r["fires_note"] and "caller" in r["fires_note"]


@pytest.mark.parametrize(
    ("workload", "size", "point"),
    [
        ("cached", "64", "sys_enter"),
        ("cached", "64", "mm_filemap_get_pages"),
        ("cached", "1M", "mm_filemap_get_pages"),
        ("pipe", "64", "sys_enter"),
        ("uncached", "4K", "sys_enter"),
        ("uncached", "4K", "mm_filemap_add_to_page_cache"),
    ],
)
def test_fires_per_read_agree_with_the_independent_counter(
    root: None, data_dir: Path, workload: str, size: str, point: str
) -> None:
    """readbench's atlas and bench/point_counter.c (its own BPF program and loader) count the
    same point on the same workload: within 5 %."""
    atlas = _atlas(workload, size, data_dir)
    ours = _row(atlas, point)["fires_per_read"]
    pc = load_bench("point_counter")
    n = {"K": 1024, "M": 1 << 20}
    nbytes = int(size[:-1]) * n[size[-1]] if size[-1] in n else int(size)
    # the same data file the atlas read: how its pages sit in the cache (4 KiB or large
    # folios) decides how often filemap_get_pages runs for a large read
    path = datafiles.ensure(data_dir, workload)
    ref = pc.count(point, workload, path, nbytes, 2000 if workload != "uncached" else 200)
    # the reference's count inside read calls only: its uncached loop also calls fadvise
    want = ref["in_read_per_read_call"]
    assert want > 0
    assert abs(ours - want) <= 0.05 * want, (ours, ref)


def test_pipe_atlas_has_the_pipe_read_function(root: None, data_dir: Path) -> None:
    """The pipe's read function is read from the pipe's own f_op (pipe_read before 6.15,
    anon_pipe_read after): present, attachable where the kernel allows, counted."""
    atlas = _atlas("pipe", "64", data_dir)
    assert atlas["read_function"]["name"] in ("anon_pipe_read", "pipe_read")
    row = _row(atlas, atlas["read_function"]["name"])
    assert row["presence"] == "present" and row["layer"] == "pipe"


def test_read_function_comes_from_the_open_file(root: None, tmp_path: Path) -> None:
    """f_op->read_iter read from the file by BPF, symbolized: ext4 gives ext4_file_read_iter,
    tmpfs shmem_file_read_iter (a name built from the fs type would say tmpfs_file_read_iter),
    procfs a .read (seq_read) and no read_iter."""
    from readbench.bpf.fileops import file_operations

    data = datafiles.ensure(datafiles.default_data_dir(), "cached")
    want = {"ext4": "ext4_file_read_iter", "xfs": "xfs_file_read_iter",
            "btrfs": "btrfs_file_read_iter"}  # fmt: skip
    ops = file_operations(data)
    assert ops["fs_type"] == datafiles.fs_type(data.parent)
    if ops["fs_type"] in want:
        assert ops["read_iter"] == want[ops["fs_type"]]
    shm = Path("/dev/shm") / f"readbench-fops-{os.getpid()}"
    shm.write_bytes(b"x")
    try:
        t = file_operations(shm)
    finally:
        shm.unlink()
    assert (t["fs_type"], t["read_iter"]) == ("tmpfs", "shmem_file_read_iter")
    proc = file_operations("/proc/self/status")
    assert proc["read_iter"] is None and proc["read"] == "seq_read"
    pipe = file_operations(None)
    assert pipe["fs_type"] == "pipefs" and pipe["read_iter"] in ("anon_pipe_read", "pipe_read")


def test_btf_prototypes() -> None:
    b = btf.running()
    require(b is not None, "needs kernel BTF (/sys/kernel/btf/vmlinux)")
    assert b.function("vfs_read") == [
        {"name": "file", "type": "struct file *"},
        {"name": "buf", "type": "char *"},
        {"name": "count", "type": "size_t"},
        {"name": "pos", "type": "loff_t *"},
    ]
    assert b.function("no_such_function_here") is None
    assert [a["type"] for a in b.tracepoint("sys_enter")] == ["struct pt_regs *", "long int"]


def test_one_perf_exposes_the_anatomy(root: None, data_dir: Path) -> None:
    """`one --perf --json` carries the layer shares and the null-syscall floor."""
    r = subprocess.run(
        [sys.executable, "-m", "readbench", "one", "--workload", "cached", "--size", "64K",
         "--perf", "--json", "--rounds", "1", "--no-progress", "--data-dir", str(data_dir)],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    an = json.loads(r.stdout)["perf"]["anatomy"]
    shares = {x["layer"]: x["share"] for x in an["layers"]}
    assert abs(sum(shares.values()) - 1) < 1e-6
    # a 64 KiB cached read: the copy and the page-cache lookup are most of its CPU time (of its
    # wall time only on a quiet machine: waiting to run is "other off-CPU time")
    on_cpu = {x["layer"]: x["ns"] / an["cpu_ns_per_read"] for x in an["layers"] if "samples" in x}
    assert on_cpu["copy to user"] + on_cpu["page-cache lookup"] > 0.5
    assert 0 < an["null_syscall_ns"] < an["ns_per_read"]
