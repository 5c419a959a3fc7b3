"""Unit tests of the store (results/<run-id>/), the runner's pure parts, the worker's cell
arguments and the side passes' arithmetic. No root, no kernel features."""

from __future__ import annotations

import argparse
import json
import os
import stat
from pathlib import Path

import pyperf
import pytest

from readbench.errors import BadInput
from readbench.measure import runner, sidepasses, worker
from readbench.model import schema
from readbench.model.matrix import Block, Cell, Matrix
from readbench.store.rundir import RunDir, atomic_write_text


def _plan(tmp_path: Path) -> runner.RunPlan:
    m = Matrix("t", [Block(["cached", "direct"], [64, 4096], ["none", "rawtp:sys_enter"], [0])])
    return runner.RunPlan(
        matrix=m,
        cells=m.cells(),
        skipped=[{"cell": "x", "reason": "y"}],
        data_dir=tmp_path,
        io_align=512,
        probe={"cpu": {"model": "unit test"}, "perf": {"version": "perf version 6.1"}},
        seed=7,
        data_files={"cached": str(tmp_path / "c.bin"), "direct": str(tmp_path / "d.bin")},
        alpha=0.05,
        margin=0.03,
    )


# -- store ----------------------------------------------------------------------------


def test_atomic_write_leaves_old_or_new_never_half(tmp_path: Path) -> None:
    p = tmp_path / "f.json"
    atomic_write_text(p, "old")

    with pytest.raises(TypeError):
        atomic_write_text(p, 123)  # type: ignore[arg-type]
    assert p.read_text() == "old"
    assert [f.name for f in tmp_path.iterdir()] == ["f.json"]  # no temp file left
    assert stat.S_IMODE(p.stat().st_mode) == 0o644


def test_rundir_create_and_open_rules(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "results", "r1")
    assert run.path == tmp_path / "results" / "r1"
    with pytest.raises(BadInput, match=r"no manifest\.json"):
        RunDir.open(run.path)
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o500)
    try:
        if not os.access(ro, os.W_OK):  # root can write anywhere
            with pytest.raises(BadInput, match="not writable"):
                RunDir.create(ro)
    finally:
        os.chmod(ro, 0o700)


def test_manifest_round_trip_through_the_schema(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    run = RunDir.create(tmp_path / "results", "r1")
    m = runner.new_manifest(plan, run)
    run.write_manifest(m)
    back = RunDir.open("r1", tmp_path / "results").read_manifest()
    assert back["schema_version"] == schema.SCHEMA_VERSION
    assert back["analysis"] == {"alpha": 0.05, "margin": 0.03}
    assert [c["name"] for c in back["cells"]] == [c.name for c in plan.cells]
    # --resume rebuilds the same plan from it
    again = runner.plan_from_manifest(back)
    assert [c.name for c in again.cells] == [c.name for c in plan.cells]
    assert (again.seed, again.io_align, again.alpha, again.margin) == (7, 512, 0.05, 0.03)
    assert again.matrix.blocks == plan.matrix.blocks


def test_suite_is_built_from_round_files_and_pyperf_reads_it(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "r")
    for rnd, vals in ((1, [1e-6, 1.1e-6]), (2, [1.2e-6, 1.3e-6])):
        b = pyperf.Benchmark([pyperf.Run(vals, metadata={"name": "cached/64/none", "loops": 1000})])
        f = run.round_file("cached/64/none", rnd)
        f.parent.mkdir(parents=True, exist_ok=True)
        b.dump(str(f))
    assert run.round_done("cached/64/none", 2) and not run.round_done("cached/64/none", 3)
    assert run.build_suite(["cached/64/none", "pipe/64/none"]) == 1
    suite = pyperf.BenchmarkSuite.load(str(run.suite_path))
    (bench,) = suite.get_benchmarks()
    assert bench.get_nrun() == 2 and bench.get_nvalue() == 4
    assert run.loops_of("cached/64/none") == 1000


def test_side_files_carry_their_cell(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "r")
    p = run.write_side("bpf", "cached/64/rawtp:sys_enter:empty", {"ns_per_run": 12.5})
    assert json.loads(p.read_text()) == {
        "cell": "cached/64/rawtp:sys_enter:empty",
        "ns_per_run": 12.5,
    }


# -- runner ---------------------------------------------------------------------------


def test_cell_order_is_a_seeded_permutation_per_round() -> None:
    cells = [Cell("cached", s, "none") for s in (1, 2, 4, 8, 16, 32, 64, 128)]
    r1, r1b, r2 = (runner.cell_order(cells, 3, 1), runner.cell_order(cells, 3, 1),
                   runner.cell_order(cells, 3, 2))  # fmt: skip
    assert r1 == r1b and sorted(c.size for c in r1) == sorted(c.size for c in cells)
    assert r1 != r2  # rounds are shuffled differently (8! orders: equal by chance ~2e-5)


def test_worker_command_carries_the_cell(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    cell = next(c for c in plan.cells if c.workload == "direct" and c.hook != "none")
    cmd = runner.worker_cmd(plan, cell, tmp_path / "out.json", loops=4000)
    p = argparse.ArgumentParser()
    worker.add_cell_args(p)
    args, _rest = p.parse_known_args(cmd[3:])
    assert (args.rb_workload, args.rb_size, args.rb_hook) == ("direct", cell.size, cell.hook)
    assert args.rb_align == 512 and args.rb_data == str(tmp_path / "d.bin")
    assert cmd[cmd.index("--loops") + 1] == "4000" and cmd[cmd.index("--rb-name") + 1] == cell.name
    cached = next(c for c in plan.cells if c.workload == "cached")
    args, _ = p.parse_known_args(runner.side_cmd(plan, cached, "bpf", 1.0)[3:])
    assert args.rb_align == 0  # only direct uses the DIO alignment


def test_error_tail_keeps_the_last_lines() -> None:
    assert runner._error_tail("a\n\nb\nc\nd\n") == "b | c | d"
    assert runner._error_tail("") == "(no output)"


# -- side passes ----------------------------------------------------------------------


def _snap(cnt: int, ns: int, count: int | None = None) -> dict:
    return {"programs": [{"run_cnt": cnt, "run_time_ns": ns}], "count": count}


def test_ns_per_run_is_the_delta_mean() -> None:
    assert sidepasses._ns_per_run(_snap(100, 5000), _snap(300, 9000)) == 20.0
    assert sidepasses._ns_per_run(_snap(100, 5000), _snap(100, 5000)) is None


def test_count_check_demands_exact_counts() -> None:
    ok = sidepasses._count_check(_snap(0, 0, 10), _snap(0, 0, 110), syscalls=100)
    assert ok == {"applies": True, "counted": 100, "syscalls": 100, "ok": True}
    bad = sidepasses._count_check(_snap(0, 0, 10), _snap(0, 0, 109), syscalls=100)
    assert bad["ok"] is False
    assert sidepasses._count_check(_snap(0, 0), _snap(0, 0), 5) == {"applies": False}
