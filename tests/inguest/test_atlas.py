"""Inside a readbench guest (Debian 6.1 under QEMU): the atlas's function rows, which the CI
host can only show as refusals. Every point that attaches is counted, the counts agree with
the independent C/libbpf counter, a point that never fires says why, and the three
recommendations name attach types that can do what each need asks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from readbench.measure import datafiles
from tests.conftest import load_bench

ROOT = Path(__file__).resolve().parents[2]
CASES = {"cached": 4096, "pipe": 64}


@pytest.fixture(scope="module", params=sorted(CASES))
def atlas(request: pytest.FixtureRequest, data_dir: Path) -> dict:
    w = request.param
    r = subprocess.run(
        [sys.executable, "-m", "readbench", "atlas", "--workload", w, "--size", str(CASES[w]),
         "--json", "--no-overhead", "--data-dir", str(data_dir)],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _row(atlas: dict, target: str) -> dict:
    rows = [r for r in atlas["points"] if r["target"] == target]
    assert rows, (target, [r["target"] for r in atlas["points"]])
    return rows[0]


def test_function_rows_are_counted_where_they_attach(atlas: dict) -> None:
    funcs = [r for r in atlas["points"] if r["kind"] == "function"]
    assert any(v["available"] for r in funcs for v in r["attach"].values())
    for r in funcs:
        if any(v["available"] for v in r["attach"].values()):
            assert r["fires_per_read"] is not None, r["target"]
            if r["fires_per_read"] == 0:
                assert r["silent"] and "caller" in r["fires_note"], r
        else:
            assert r["fires_per_read"] is None and all(v["reason"] for v in r["attach"].values())
    assert _row(atlas, "vfs_read")["fires_per_read"] == 1.0
    assert _row(atlas, "security_file_permission")["fires_by_attach"]["lsm"] == 1.0
    # the data file's read function, taken from its f_op (ext4 on the guest's virtio disk)
    want = "ext4_file_read_iter" if atlas["workload"] == "cached" else ("pipe_read",)
    assert atlas["read_function"]["name"] in (want if isinstance(want, tuple) else (want,))


@pytest.mark.parametrize("target", ["vfs_read", "security_file_permission", "rw_verify_area"])
def test_counts_agree_with_the_independent_counter(
    atlas: dict, target: str, data_dir: Path
) -> None:
    w = atlas["workload"]
    path = datafiles.ensure(data_dir, w)
    ref = load_bench("point_counter").count(f"fentry:{target}", w, path, CASES[w], 2000)
    assert _row(atlas, target)["fires_per_read"] == ref["in_read_per_read_call"], ref


def test_recommendations_name_types_that_can_do_the_need(atlas: dict) -> None:
    recs = {r["need"]: r for r in atlas["recommendations"]}
    rows = {r["target"]: r for r in atlas["points"]}
    assert recs["control"]["attach"] in ("lsm", "fmod_ret"), recs["control"]
    assert recs["control"]["point"] == "security_file_permission"
    for r in recs.values():
        assert r["point"] is not None, r
        assert rows[r["point"]]["attach"][r["attach"]]["available"], r
        assert r["fires_per_read"] > 0, r
    obs = rows[recs["observe"]["point"]]
    assert obs["sees"]["file"] and recs["observe"]["fires_per_read"] == 1.0
    ideal = recs["observe"]["ideal"]
    if recs["observe"]["overhead_ns"] is None and ideal["available"]:
        # no cost to rank by: the ideal point where it attaches, not the first row
        assert (recs["observe"]["point"], recs["observe"]["attach"]) == (
            ideal["point"], ideal["attach"]), recs["observe"]  # fmt: skip
    data = rows[recs["data"]["point"]]["sees"]
    assert data["data"]
    if data.get("data_at") == "exit":  # an output batch: filled only when the call returns
        assert recs["data"]["attach"] == "fexit", recs["data"]
