"""The runner: cells measured by pyperf workers in shuffled, interleaved rounds.

Round r measures every cell once (processes_per_round worker processes each), in an order
shuffled from (seed, r), so slow drift of the machine hits every configuration alike.
Each finished (cell, round) is written at once; an interrupt keeps them and --resume continues.
Side passes (BPF stats, perf) run after the timing rounds, never during them.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from readbench.bpf import probe as bpf_probe
from readbench.errors import BadInput, MeasurementError
from readbench.measure import datafiles, machine
from readbench.measure.readloop import io_uring_refusal
from readbench.measure.worker import cell_argv
from readbench.model import hookspec, schema
from readbench.model.matrix import Cell, Matrix, validate
from readbench.model.workloads import get
from readbench.render.terminal import console
from readbench.store.rundir import RunDir, atomic_write_json

# Wide enough for cell names when stderr is a pipe or a CI log (rich assumes 80 there).


class Interrupted(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass
class Plan:
    """Everything decided before the first measurement: validated cells, data files, probe."""

    matrix: Matrix
    cells: list[Cell]
    skipped: list[dict[str, str]]
    data_dir: Path
    io_align: int
    probe: dict[str, Any]
    seed: int
    affinity: str | None = None
    data_files: dict[str, str] = field(default_factory=dict)
    alpha: float = schema.DEFAULT_ALPHA  # the run's significance level, stored in the manifest
    margin: float = schema.DEFAULT_MARGIN  # and its equivalence margin


def plan_run(
    matrix: Matrix,
    data_dir: Path,
    *,
    seed: int | None = None,
    affinity: str | None = None,
    strict_hooks: bool = False,
) -> Plan:
    """Validate the matrix and probe the machine. Raises BadInput before anything is written
    (except the data directory itself, which check_data_dir removes again on failure)."""
    # Every rule that needs no data directory first, so bad input creates nothing.
    validate(matrix, parse_hook=hookspec.parse, io_align=-1)
    workloads = {w for b in matrix.blocks for w in b.workloads}
    # uncached/direct on tmpfs would time memory copies: refuse before the dir is even created
    datafiles.check_workload_fs(data_dir, workloads)
    datafiles.check_data_dir(data_dir)
    io_align = 0
    dio: int | None = 0
    if any(get(w).needs_direct_io for w in workloads):
        dio = datafiles.direct_io_alignment(data_dir)
        io_align = dio or 0
    cells = validate(matrix, parse_hook=hookspec.parse, io_align=dio)
    probe = machine.probe(data_dir)
    skipped: list[dict[str, str]] = []
    runnable: list[Cell] = []
    avail_cache: dict[tuple[str, str], tuple[bool, str]] = {}
    # A read kind the kernel refuses (io_uring disabled, or denied by a policy): its cells are
    # skipped with the kernel's reason, like a refused hook.
    ring = any(get(w).needs_io_uring for w in workloads)
    ring_refusal = io_uring_refusal() if ring else None
    for c in cells:
        if ring_refusal and get(c.workload).needs_io_uring:
            skipped.append({"cell": c.name, "hook": c.hook, "workload": c.workload,
                            "reason": ring_refusal})  # fmt: skip
            continue
        if c.hook != "none":
            key = (c.hook, c.workload)
            if key not in avail_cache:
                avail_cache[key] = bpf_probe.availability(hookspec.parse(c.hook), c.workload)
            ok, reason = avail_cache[key]
            if not ok:
                skipped.append(
                    {"cell": c.name, "hook": c.hook, "workload": c.workload, "reason": reason}
                )
                continue
        runnable.append(c)
    if strict_hooks and skipped:
        from readbench.errors import MissingCapability

        first = skipped[0]
        raise MissingCapability(f"hook {first['hook']} is not available here: {first['reason']}")
    return Plan(
        matrix=matrix,
        cells=runnable,
        skipped=skipped,
        data_dir=data_dir,
        io_align=io_align,
        probe=probe,
        seed=seed if seed is not None else random.SystemRandom().randrange(2**31),
        affinity=affinity,
    )


def prepare_data(plan: Plan) -> None:
    workloads = sorted({c.workload for c in plan.cells})
    # Again here: --resume reaches this without plan_run (and the mount may have changed).
    datafiles.check_workload_fs(plan.data_dir, workloads)
    for w in workloads:
        with console.status(f"data file for {w} in {plan.data_dir}"):
            p = datafiles.ensure(plan.data_dir, w)
        plan.data_files[w] = str(p) if p else ""


def cell_order(cells: list[Cell], seed: int, round_no: int) -> list[Cell]:
    order = list(cells)
    random.Random(f"{seed}:{round_no}").shuffle(order)
    return order


@contextmanager
def _signals_raise() -> Iterator[None]:
    """SIGTERM and SIGINT raise Interrupted wherever the main thread is."""

    def handler(signum: int, _frame: Any) -> None:
        raise Interrupted(signum)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


class ChildRunner:
    """Runs one child at a time in its own process group, so an interrupt kills all of it
    (pyperf's main process and its workers, hence their BPF links) at once."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None

    def run(self, cmd: list[str], timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise MeasurementError(f"timed out after {timeout} s: {' '.join(cmd[:6])}") from None
        rc = self.proc.returncode
        self.proc = None
        return subprocess.CompletedProcess(cmd, rc, out, err)

    def kill(self) -> None:
        p = self.proc
        if p is not None and p.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        self.proc = None


def _cell_argv(plan: Plan, cell: Cell) -> list[str]:
    align = plan.io_align if get(cell.workload).needs_direct_io else 0
    data = plan.data_files.get(cell.workload, "")
    return cell_argv(cell.workload, cell.size, cell.buf_offset, cell.hook, align, data)


def is_paired(cell: Cell) -> bool:
    """Hooked cells (and A/A copies) are measured paired: off and on in the same process."""
    return cell.hook != "none" or cell.aa_copy


def worker_cmd(
    plan: Plan, cell: Cell, out: Path, loops: int | None, round_no: int = 1
) -> list[str]:
    m = plan.matrix
    if is_paired(cell):
        cmd = [
            sys.executable, "-m", "readbench.measure.paired",
            *_cell_argv(plan, cell),
            "--rb-name", cell.name,
            "--arms", "off,on",
            "--processes", str(m.paired_processes_per_round),
            "--pairs", str(m.pairs_by_workload.get(cell.workload, m.pairs)),
            "--min-time", str(m.min_time),
            "--seed", str(zlib.crc32(f"{plan.seed}:{round_no}:{cell.name}".encode())),
            "--output", str(out),
        ]  # fmt: skip
    else:
        cmd = [
            sys.executable, "-m", "readbench.measure.worker",
            *_cell_argv(plan, cell),
            "--rb-name", cell.name,
            "--processes", str(m.processes_per_round),
            "--values", str(m.values),
            "--warmups", str(m.warmups),
            "--min-time", str(m.min_time),
            "--quiet",
            "--output", str(out),
        ]  # fmt: skip
    # both workers take the first round's calibrated loops and the CPU list the same way
    if loops:
        cmd += ["--loops", str(loops)]
    if plan.affinity:
        cmd += ["--affinity", plan.affinity]
    return cmd


def side_cmd(plan: Plan, cell: Cell, kind: str, seconds: float) -> list[str]:
    return [
        sys.executable, "-m", "readbench.measure.sidepasses",
        "--kind", kind,
        *_cell_argv(plan, cell),
        "--seconds", str(seconds),
    ]  # fmt: skip


def _error_tail(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[-3:])[-600:] if lines else "(no output)"


def new_manifest(plan: Plan, run: RunDir) -> schema.Manifest:
    m = schema.new_manifest(
        run_id=run.path.name,
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        versions=machine.tool_versions(plan.probe),
        probe=plan.probe,
        matrix=plan.matrix.to_json(),
        alpha=plan.alpha,
        margin=plan.margin,
        cells=[
            {**asdict(c), "name": c.name, "baseline": c.baseline, "status": "pending", "reason": ""}
            for c in plan.cells
        ],
        seed=plan.seed,
        data_dir=str(plan.data_dir),
        data_files=plan.data_files,
        io_align=plan.io_align,
        affinity=plan.affinity,
        timing_notes=[
            "values are seconds per read operation, timed inside the C loop (CLOCK_MONOTONIC)",
            "timing passes run with BPF run-time stats off; bpf/ side files come from a "
            "separate pass with BPF_ENABLE_STATS on",
            "perf counters and sampling come from a separate pass, never from timing passes",
        ],
    )
    m["unavailable"] = plan.skipped
    return m


def plan_from_manifest(manifest: schema.Manifest) -> Plan:
    """Rebuild the plan of an interrupted run (same cells, seed, data files) for --resume."""
    from readbench.model.matrix import Block

    md = dict(manifest["matrix"])
    md.pop("processes", None)
    blocks = [Block(**b) for b in md.pop("blocks")]
    matrix = Matrix(blocks=blocks, **md)
    cells = [
        Cell(c["workload"], c["size"], c["hook"], c["buf_offset"], c["aa_copy"])
        for c in manifest["cells"]
    ]
    return Plan(
        matrix=matrix,
        cells=cells,
        skipped=manifest.get("unavailable", []),
        data_dir=Path(manifest["data_dir"]),
        io_align=manifest.get("io_align", 0),
        probe=manifest["probe"],
        seed=manifest["seed"],
        affinity=manifest.get("affinity"),
        data_files=manifest.get("data_files", {}),
        alpha=manifest["analysis"]["alpha"],
        margin=manifest["analysis"]["margin"],
    )


def execute(
    plan: Plan, run: RunDir, manifest: dict[str, Any], *, show_progress: bool = True
) -> dict[str, Any]:
    """Measure every missing (cell, round), then the side passes. Returns the final manifest.
    Raises Interrupted after saving everything finished so far."""
    m = plan.matrix
    child = ChildRunner()
    todo_rounds = [
        (r, c)
        for r in range(1, m.rounds + 1)
        for c in cell_order(plan.cells, plan.seed, r)
        if not run.round_done(c.name, r)
    ]
    side: list[tuple[str, Cell]] = []
    for c in plan.cells:
        if c.hook != "none" and m.bpf_stats and not run.side_file("bpf", c.name).exists():
            side.append(("bpfstats", c))
        if (
            m.perf
            and c.hook == "none"
            and not c.aa_copy
            and not run.side_file("perf", c.name).exists()
        ):
            side.append(("perf", c))
    failed: dict[str, str] = {f["cell"]: f["reason"] for f in manifest.get("failed", [])}
    loops: dict[str, int | None] = {}

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=console,
        disable=not show_progress,
        transient=False,
    )
    try:
        with _signals_raise(), progress:
            task = progress.add_task("measuring", total=len(todo_rounds) + len(side))
            for r, c in todo_rounds:
                if c.name in failed:
                    progress.advance(task)
                    continue
                progress.update(task, description=f"round {r}/{m.rounds} {c.name}")
                # pyperf calibrates loops in a cell's first round; later rounds reuse them
                if c.name not in loops:
                    loops[c.name] = run.loops_of(c.name)
                _measure_round(plan, run, child, c, r, loops[c.name], failed)
                progress.advance(task)
            for kind, c in side:
                if c.name in failed:
                    progress.advance(task)
                    continue
                progress.update(task, description=f"{kind} pass {c.name}")
                _side_pass(plan, run, child, c, kind, manifest)
                progress.advance(task)
            if m.atlas:
                for w, size in atlas_targets(plan):
                    if not run.side_file("atlas", f"{w}/{size}").exists():
                        progress.update(task, description=f"hook-point atlas {w}/{size}")
                        _atlas(plan, run, child, manifest, w, size)
            if m.atlas and not (run.path / "coverage.json").exists():
                progress.update(task, description="coverage matrix of the run's read kinds")
                _coverage(plan, run, child, manifest)
            if m.calibrate and not (run.path / "calibration.json").exists():
                progress.update(task, description="calibration of the paired test")
                _calibration(plan, run, child, manifest)
            if m.copy and not (run.path / "copy.json").exists():
                progress.update(task, description="user-space copy strategies sweep")
                _copy_sweep(run, child, manifest)
    except BaseException:  # Interrupted, KeyboardInterrupt, a bug: keep what finished
        child.kill()
        _finish(run, manifest, plan, failed, status="interrupted")
        raise
    return _finish(run, manifest, plan, failed, status="complete")


def _measure_round(
    plan: Plan,
    run: RunDir,
    child: ChildRunner,
    c: Cell,
    r: int,
    loops: int | None,
    failed: dict[str, str],
) -> None:
    final = run.round_file(c.name, r)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.part")
    tmp.unlink(missing_ok=True)
    proc = child.run(worker_cmd(plan, c, tmp, loops, r), timeout=900)
    if proc.returncode != 0 or not tmp.exists():
        tmp.unlink(missing_ok=True)
        failed[c.name] = f"round {r}: worker exited {proc.returncode}: {_error_tail(proc.stderr)}"
        console.print(f"[red]cell {c.name} failed[/red]: {failed[c.name]}")
        return
    os.replace(tmp, final)


def _side_pass(
    plan: Plan, run: RunDir, child: ChildRunner, c: Cell, kind: str, manifest: dict[str, Any]
) -> None:
    proc = child.run(side_cmd(plan, c, kind, seconds=0.3), timeout=300)
    key = "bpf" if kind == "bpfstats" else "perf"
    if proc.returncode != 0:
        _side_failure(manifest, c.name, kind, _error_tail(proc.stderr))
        return
    try:
        obj = json.loads(proc.stdout)
    except json.JSONDecodeError:
        _side_failure(manifest, c.name, kind, f"unparseable output: {proc.stdout[:200]}")
        return
    run.write_side(key, c.name, {"hook": c.hook, "workload": c.workload, "size": c.size, **obj})
    check = obj.get("count_check") or {}
    if check.get("applies") and not check.get("ok"):
        reason = f"count body mismatch: counted {check['counted']} != reads {check['syscalls']}"
        _side_failure(manifest, c.name, kind, reason)


def _side_failure(manifest: dict[str, Any], cell: str, kind: str, reason: str) -> None:
    """Record a failed side pass in the manifest (the report lists them) and say so now."""
    manifest.setdefault("side_failures", []).append({"cell": cell, "kind": kind, "reason": reason})
    console.print(f"[yellow]{kind} pass of {cell} failed[/yellow]: {reason}")


def atlas_targets(plan: Plan) -> list[tuple[str, int]]:
    """Each hooked workload at its smallest hooked size (the atlas counts and tries points;
    the overheads come from the run's own paired cells)."""
    sizes: dict[str, int] = {}
    for c in plan.cells:
        if c.hook != "none" and not c.aa_copy:
            sizes[c.workload] = min(sizes.get(c.workload, c.size), c.size)
    return sorted(sizes.items())


def _atlas(
    plan: Plan, run: RunDir, child: ChildRunner, manifest: dict[str, Any], w: str, size: int
) -> None:
    cmd = [sys.executable, "-m", "readbench", "atlas", "--json", "--no-overhead",
           "--workload", w, "--size", str(size), "--data-dir", str(plan.data_dir)]  # fmt: skip
    proc = child.run(cmd, timeout=900)
    if proc.returncode != 0:
        _side_failure(manifest, f"{w}/{size}", "atlas", _error_tail(proc.stderr))
        return
    run.write_side("atlas", f"{w}/{size}", json.loads(proc.stdout))


COVERAGE_SIZE = 4096  # every read kind's rules allow it (mmap: whole pages)


def _coverage(plan: Plan, run: RunDir, child: ChildRunner, manifest: dict[str, Any]) -> None:
    """`readbench atlas --coverage` over the run's read kinds (fires per op of every point on
    each); the report costs its recommendation with the run's own paired claims."""
    kinds = sorted({c.workload for c in plan.cells}, key=lambda w: get(w).c_id)
    kinds = [w for w in kinds if get(w).cell_rule(COVERAGE_SIZE, 0) is None]
    if not kinds:
        return
    cmd = [sys.executable, "-m", "readbench", "atlas", "--coverage", "--json", "--no-overhead",
           "--workloads", ",".join(kinds), "--size", str(COVERAGE_SIZE),
           "--data-dir", str(plan.data_dir)]  # fmt: skip
    proc = child.run(cmd, timeout=900)
    if proc.returncode != 0:
        _side_failure(manifest, "coverage", "atlas", _error_tail(proc.stderr))
        return
    atomic_write_json(run.path / "coverage.json", json.loads(proc.stdout))


def _calibration(plan: Plan, run: RunDir, child: ChildRunner, manifest: dict[str, Any]) -> None:
    """`readbench calibrate` on the run's first cached cell size (or cached/64), as a child,
    so an interrupt kills it like any other measurement."""
    sizes = sorted(c.size for c in plan.cells if c.workload == "cached") or [64]
    cmd = [sys.executable, "-m", "readbench", "calibrate", "--json",
           "--workload", "cached", "--size", str(sizes[0]), "--alpha", str(plan.alpha),
           "--data-dir", str(plan.data_dir),
           "--trials", str(plan.matrix.calibrate_trials)]  # fmt: skip
    proc = child.run(cmd, timeout=1800)
    if proc.returncode != 0:
        _side_failure(manifest, "calibration", "calibrate", _error_tail(proc.stderr))
        return
    atomic_write_json(run.path / "calibration.json", json.loads(proc.stdout))


def _copy_sweep(run: RunDir, child: ChildRunner, manifest: dict[str, Any]) -> None:
    """`readbench copy` in its own process group (interruptible like any pass); it writes
    copy.json atomically itself."""
    out = run.path / "copy.json"
    cmd = [sys.executable, "-m", "readbench", "copy", "--out", str(out), "--json"]
    proc = child.run(cmd, timeout=1800)
    if proc.returncode != 0:
        _side_failure(manifest, "copy", "copy", _error_tail(proc.stderr))


def _finish(
    run: RunDir, manifest: dict[str, Any], plan: Plan, failed: dict[str, str], status: str
) -> dict[str, Any]:
    n = run.build_suite([c.name for c in plan.cells])
    for c in manifest["cells"]:
        if c["name"] in failed:
            c["status"], c["reason"] = "failed", failed[c["name"]]
        else:
            done = sum(run.round_done(c["name"], r) for r in range(1, plan.matrix.rounds + 1))
            c["rounds_done"] = done
            c["status"] = (
                "done" if done == plan.matrix.rounds else ("partial" if done else "pending")
            )
    manifest["failed"] = [{"cell": k, "reason": v} for k, v in failed.items()]
    manifest["status"] = status
    manifest["cells_with_data"] = n
    run.write_manifest(manifest)
    return manifest


def start(plan: Plan, out: Path) -> tuple[RunDir, dict[str, Any]]:
    run = RunDir.create(out)
    manifest = new_manifest(plan, run)
    run.write_manifest(manifest)
    return run, manifest


def check_resume(ref: str, out: Path) -> tuple[Plan, RunDir, dict[str, Any]]:
    run = RunDir.open(ref, out)
    manifest = run.read_manifest()
    if manifest.get("status") == "complete":
        raise BadInput(f"--resume {ref}: that run is already complete")
    plan = plan_from_manifest(manifest)
    manifest["status"] = "running"
    manifest.setdefault("resumed", []).append(time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    return plan, run, manifest
