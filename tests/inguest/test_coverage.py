"""Inside a readbench guest (Debian 6.1 under QEMU: fentry and kprobes attach there): the
coverage matrix's function rows. Each read kind's own entry function fires once per op on it
and on no other kind, a function agrees with the tracepoint inside it, and a function row
agrees with the independent counter (bench/point_counter.c, fentry:FUNC)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from readbench.measure import datafiles
from tests.conftest import load_bench

ROOT = Path(__file__).resolve().parents[2]
# (function, the read kind whose entry it is); a function this kernel lacks (io_read_fixed,
# vfs_splice_read before 6.5) is a row that says it is absent, not a failure
ENTRIES = [("vfs_read", "cached"), ("vfs_readv", "readv"), ("io_read", "io_uring"),
           ("filemap_fault", "mmap-fault"), ("do_splice", "splice")]  # fmt: skip


@pytest.fixture(scope="module")
def coverage(data_dir: Path) -> dict:
    r = subprocess.run(
        [sys.executable, "-m", "readbench", "atlas", "--coverage", "--json", "--no-overhead",
         "--size", "4K", "--data-dir", str(data_dir)],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_function_rows_are_counted_where_fentry_attaches(coverage: dict) -> None:
    rows = {r["key"]: r for r in coverage["points"]}
    assert rows["vfs_read"]["via"] in ("fentry", "kprobe"), rows["vfs_read"]["attach"]
    for fn, kind in ENTRIES:
        r = rows.get(fn)
        if r is None or not r["via"]:
            continue
        assert r["fires_per_op"][kind] >= 0.99, (fn, kind, r["fires_per_op"])
    vfs = rows["vfs_read"]["fires_per_op"]
    assert vfs["io_uring"] == vfs["readv"] == vfs["mmap-fault"] == vfs["splice"] == 0, vfs
    fg, tp = rows.get("filemap_get_pages"), rows.get("filemap/mm_filemap_get_pages")
    if fg and fg["via"] and tp and tp["via"]:
        for k in ("cached", "readv", "io_uring"):
            assert abs(fg["fires_per_op"][k] - tp["fires_per_op"][k]) <= 0.05, k


@pytest.mark.parametrize(("fn", "kind"), [("vfs_readv", "readv"), ("io_read", "io_uring")])
def test_function_rows_agree_with_the_independent_counter(
    coverage: dict, data_dir: Path, fn: str, kind: str
) -> None:
    row = next(r for r in coverage["points"] if r["key"] == fn)
    if row["via"] != "fentry":
        pytest.skip(
            f"not-on-this-kind: fentry on {fn} is refused or absent here: {row['presence']}"
        )
    ref = load_bench("point_counter").count(
        f"fentry:{fn}", kind, datafiles.ensure(data_dir, "cached"), 4096, 1000
    )
    assert abs(row["fires_per_op"][kind] - ref["in_read_per_read_call"]) <= 0.05, ref
