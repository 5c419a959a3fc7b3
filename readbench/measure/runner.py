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
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from readbench.bpf import support
from readbench.errors import BadInput
from readbench.measure import datafiles, machine, paired, sysstate
from readbench.measure.children import ChildRunner, signals_raise
from readbench.measure.paired import sham_hook
from readbench.measure.readloop import io_uring_refusal
from readbench.measure.worker import cell_argv
from readbench.model import hookspec, schema
from readbench.model.matrix import Cell, Matrix, validate
from readbench.model.workloads import get
from readbench.store.rundir import RunDir, atomic_write_json


class Reporter:
    """What the runner tells the person running it. This one writes plain lines to stderr;
    the command line passes one that draws a progress bar (readbench.render.terminal)."""

    def start(self, total: int) -> None:
        """`total` steps (a cell's round or a side pass) are to come."""

    def step(self, description: str) -> None:
        """A step starts."""

    def advance(self) -> None:
        """A step ended."""

    def stop(self) -> None:
        """No more steps."""

    def say(self, text: str, level: str = "info") -> None:
        """A message: level info, warn (something was left out) or error (a cell failed)."""
        print(f"readbench: {'' if level == 'info' else level + ': '}{text}", file=sys.stderr)


@dataclass(frozen=True)
class ExtraPass:
    """A pass the caller adds after the runner's own (the command line's calibration: it needs
    the statistics to size its effects): `done` tells whether the run has it already."""

    description: str
    done: Callable[[RunDir], bool]
    run: Callable[[RunDir, dict[str, Any]], None]


@dataclass
class RunPlan:
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
    aa_toggle: str = "none"  # what an A/A cell's second arm attaches (measure.paired.sham_hook)
    aa_toggle_why: str = ""


def plan_run(
    matrix: Matrix,
    data_dir: Path,
    *,
    seed: int | None = None,
    affinity: str | None = None,
    strict_hooks: bool = False,
) -> RunPlan:
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
                avail_cache[key] = support.availability(hookspec.parse(c.hook), c.workload)
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
    aa_toggle, aa_why = sham_hook(probe.get("attach_types") or {}, bool(probe.get("root")))
    return RunPlan(
        aa_toggle=aa_toggle,
        aa_toggle_why=aa_why,
        matrix=matrix,
        cells=runnable,
        skipped=skipped,
        data_dir=data_dir,
        io_align=io_align,
        probe=probe,
        seed=seed if seed is not None else random.SystemRandom().randrange(2**31),
        affinity=affinity,
    )


def prepare_data(plan: RunPlan, reporter: Reporter | None = None) -> None:
    workloads = sorted({c.workload for c in plan.cells})
    # Again here: --resume reaches this without plan_run (and the mount may have changed).
    datafiles.check_workload_fs(plan.data_dir, workloads)
    for w in workloads:
        path, _ = datafiles.file_for(plan.data_dir, w)
        if reporter is not None and path is not None and not path.exists():
            reporter.say(f"writing the data file for {w} in {plan.data_dir}")
        p = datafiles.ensure(plan.data_dir, w)
        plan.data_files[w] = str(p) if p else ""


def cell_order(cells: list[Cell], seed: int, round_no: int) -> list[Cell]:
    order = list(cells)
    random.Random(f"{seed}:{round_no}").shuffle(order)
    return order


def _cell_argv(plan: RunPlan, cell: Cell) -> list[str]:
    align = plan.io_align if get(cell.workload).needs_direct_io else 0
    data = plan.data_files.get(cell.workload, "")
    hook = plan.aa_toggle if cell.aa_copy else cell.hook  # an A/A cell toggles the sham
    return cell_argv(cell.workload, cell.size, cell.buf_offset, hook, align, data)


def is_paired(cell: Cell) -> bool:
    """Hooked cells (and A/A copies) are measured paired: off and on in the same process."""
    return cell.hook != "none" or cell.aa_copy


def worker_cmd(
    plan: RunPlan, cell: Cell, out: Path, loops: int | None, round_no: int = 1
) -> list[str]:
    m = plan.matrix
    if is_paired(cell):
        cmd = paired.command(
            _cell_argv(plan, cell), cell.name, "off,on",
            processes=m.paired_processes_per_round,
            pairs=m.pairs_by_workload.get(cell.workload, m.pairs), min_time=m.min_time,
            seed=zlib.crc32(f"{plan.seed}:{round_no}:{cell.name}".encode()), output=out,
        )  # fmt: skip
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


def side_cmd(plan: RunPlan, cell: Cell, kind: str, seconds: float) -> list[str]:
    return [
        sys.executable, "-m", "readbench.measure.sidepasses",
        "--kind", kind,
        *_cell_argv(plan, cell),
        "--seconds", str(seconds),
    ]  # fmt: skip


def _error_tail(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[-3:])[-600:] if lines else "(no output)"


def new_manifest(plan: RunPlan, run: RunDir) -> schema.Manifest:
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
        aa_toggle=plan.aa_toggle,
        aa_toggle_why=plan.aa_toggle_why,
        timing_notes=[
            "values are seconds per read operation, timed inside the C loop (CLOCK_MONOTONIC)",
            "timing passes run with BPF run-time stats off; bpf/ side files come from a "
            "separate pass with BPF_ENABLE_STATS on",
            "perf counters and sampling come from a separate pass, never from timing passes",
        ],
    )
    m["unavailable"] = plan.skipped
    return m


def plan_from_manifest(manifest: schema.Manifest) -> RunPlan:
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
    return RunPlan(
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
        aa_toggle=manifest.get("aa_toggle", "none"),
        aa_toggle_why=manifest.get("aa_toggle_why", ""),
    )


def execute(
    plan: RunPlan,
    run: RunDir,
    manifest: dict[str, Any],
    *,
    reporter: Reporter | None = None,
    extra: tuple[ExtraPass, ...] = (),
) -> dict[str, Any]:
    """Measure every missing (cell, round), then the side passes, then `extra`. Returns the
    final manifest. Raises Interrupted after saving everything finished so far."""
    rep = reporter or Reporter()
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
    during: list[dict[str, Any]] = manifest.setdefault("system_state", {}).setdefault("during", [])
    try:
        with signals_raise():
            rep.start(len(todo_rounds) + len(side))
            for r, c in todo_rounds:
                if c.name in failed:
                    rep.advance()
                    continue
                rep.step(f"round {r}/{m.rounds} {c.name}")
                # pyperf calibrates loops in a cell's first round; later rounds reuse them
                if c.name not in loops:
                    loops[c.name] = run.loops_of(c.name)
                before = sysstate.counters()
                _measure_round(plan, run, child, c, r, loops[c.name], failed, rep)
                # what else ran while this cell was measured (its workers are children)
                during.append({"cell": c.name, "round": r,
                               **sysstate.sample(before, sysstate.counters())})  # fmt: skip
                rep.advance()
            for kind, c in side:
                if c.name in failed:
                    rep.advance()
                    continue
                rep.step(f"{kind} pass {c.name}")
                _side_pass(plan, run, child, c, kind, manifest, rep)
                rep.advance()
            if m.atlas:
                for w, size in atlas_targets(plan):
                    if not run.side_file("atlas", f"{w}/{size}").exists():
                        rep.step(f"hook-point atlas {w}/{size}")
                        _atlas(plan, run, child, manifest, w, size, rep)
            if m.atlas and not (run.path / "coverage.json").exists():
                rep.step("coverage matrix of the run's read kinds")
                _coverage(plan, run, child, manifest, rep)
            for x in extra:
                if not x.done(run):
                    rep.step(x.description)
                    x.run(run, manifest)
            if m.copy and not (run.path / "copy.json").exists():
                rep.step("user-space copy strategies sweep")
                _copy_sweep(run, child, manifest, rep)
            rep.stop()
    except BaseException:  # Interrupted, KeyboardInterrupt, a bug: keep what finished
        rep.stop()
        child.kill()
        _finish(run, manifest, plan, failed, status="interrupted")
        raise
    return _finish(run, manifest, plan, failed, status="complete")


def _measure_round(
    plan: RunPlan,
    run: RunDir,
    child: ChildRunner,
    c: Cell,
    r: int,
    loops: int | None,
    failed: dict[str, str],
    rep: Reporter,
) -> None:
    final = run.round_file(c.name, r)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.part")
    tmp.unlink(missing_ok=True)
    proc = child.run(worker_cmd(plan, c, tmp, loops, r), timeout=900)
    if proc.returncode != 0 or not tmp.exists():
        tmp.unlink(missing_ok=True)
        failed[c.name] = f"round {r}: worker exited {proc.returncode}: {_error_tail(proc.stderr)}"
        rep.say(f"cell {c.name} failed: {failed[c.name]}", "error")
        return
    os.replace(tmp, final)


def _side_pass(
    plan: RunPlan,
    run: RunDir,
    child: ChildRunner,
    c: Cell,
    kind: str,
    manifest: dict[str, Any],
    rep: Reporter,
) -> None:
    proc = child.run(side_cmd(plan, c, kind, seconds=0.3), timeout=300)
    key = "bpf" if kind == "bpfstats" else "perf"
    if proc.returncode != 0:
        side_failure(manifest, c.name, kind, _error_tail(proc.stderr), rep)
        return
    try:
        obj = json.loads(proc.stdout)
    except json.JSONDecodeError:
        side_failure(manifest, c.name, kind, f"unparseable output: {proc.stdout[:200]}", rep)
        return
    run.write_side(key, c.name, {"hook": c.hook, "workload": c.workload, "size": c.size, **obj})
    check = obj.get("count_check") or {}
    if check.get("applies") and not check.get("ok"):
        reason = f"count body mismatch: counted {check['counted']} != reads {check['syscalls']}"
        side_failure(manifest, c.name, kind, reason, rep)


def side_failure(
    manifest: dict[str, Any], cell: str, kind: str, reason: str, rep: Reporter
) -> None:
    """Record a failed side pass in the manifest (the report lists them) and say so now."""
    manifest.setdefault("side_failures", []).append({"cell": cell, "kind": kind, "reason": reason})
    rep.say(f"{kind} pass of {cell} failed: {reason}", "warn")


def atlas_targets(plan: RunPlan) -> list[tuple[str, int]]:
    """Each hooked workload at its smallest hooked size (the atlas counts and tries points;
    the overheads come from the run's own paired cells)."""
    sizes: dict[str, int] = {}
    for c in plan.cells:
        if c.hook != "none" and not c.aa_copy:
            sizes[c.workload] = min(sizes.get(c.workload, c.size), c.size)
    return sorted(sizes.items())


def _json_pass(
    child: ChildRunner,
    cmd: list[str],
    manifest: dict[str, Any],
    what: tuple[str, str],
    rep: Reporter,
    timeout: float = 900,
) -> Any | None:
    """A pass that prints one JSON object (a module's entry point, in its own process group,
    interruptible like any measurement); None after recording its failure."""
    proc = child.run(cmd, timeout=timeout)
    if proc.returncode == 0:
        try:
            return json.loads(proc.stdout)
        except json.JSONDecodeError:
            side_failure(manifest, *what, f"unparseable output: {proc.stdout[:200]}", rep)
            return None
    side_failure(manifest, *what, _error_tail(proc.stderr), rep)
    return None


def _atlas(
    plan: RunPlan,
    run: RunDir,
    child: ChildRunner,
    manifest: dict[str, Any],
    w: str,
    size: int,
    rep: Reporter,
) -> None:
    cmd = [sys.executable, "-m", "readbench.measure.survey", "--workload", w,
           "--size", str(size), "--data-dir", str(plan.data_dir)]  # fmt: skip
    res = _json_pass(child, cmd, manifest, (f"{w}/{size}", "atlas"), rep)
    if res is not None:
        run.write_side("atlas", f"{w}/{size}", res)


COVERAGE_SIZE = 4096  # every read kind's rules allow it (mmap: whole pages)


def _coverage(
    plan: RunPlan, run: RunDir, child: ChildRunner, manifest: dict[str, Any], rep: Reporter
) -> None:
    """The coverage matrix over the run's read kinds (fires per op of every point on each);
    the report costs its recommendation with the run's own paired claims."""
    kinds = sorted({c.workload for c in plan.cells}, key=lambda w: get(w).c_id)
    kinds = [w for w in kinds if get(w).cell_rule(COVERAGE_SIZE, 0) is None]
    if not kinds:
        return
    cmd = [sys.executable, "-m", "readbench.measure.coverage", "--workloads", ",".join(kinds),
           "--size", str(COVERAGE_SIZE), "--data-dir", str(plan.data_dir)]  # fmt: skip
    res = _json_pass(child, cmd, manifest, ("coverage", "atlas"), rep)
    if res is not None:
        atomic_write_json(run.path / "coverage.json", res)


def _copy_sweep(run: RunDir, child: ChildRunner, manifest: dict[str, Any], rep: Reporter) -> None:
    """The copy sweep in its own process group (interruptible like any pass); it writes
    copy.json atomically itself."""
    cmd = [sys.executable, "-m", "readbench.copy.sweep", "--out", str(run.path / "copy.json")]
    _json_pass(child, cmd, manifest, ("copy", "copy"), rep, timeout=1800)


def _finish(
    run: RunDir, manifest: dict[str, Any], plan: RunPlan, failed: dict[str, str], status: str
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


def start(plan: RunPlan, out: Path) -> tuple[RunDir, dict[str, Any]]:
    run = RunDir.create(out)
    manifest = new_manifest(plan, run)
    run.write_manifest(manifest)
    return run, manifest


def check_resume(ref: str, out: Path) -> tuple[RunPlan, RunDir, dict[str, Any]]:
    run = RunDir.open(ref, out)
    manifest = run.read_manifest()
    if manifest.get("status") == "complete":
        raise BadInput(f"--resume {ref}: that run is already complete")
    plan = plan_from_manifest(manifest)
    manifest["status"] = "running"
    manifest.setdefault("resumed", []).append(time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    return plan, run, manifest
