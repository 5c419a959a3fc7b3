"""`readbench run [--matrix …] …`: a matrix in shuffled rounds, then its analysis (and report)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from readbench.cli.common import add_common_cell_args, emit_json, fraction
from readbench.errors import BadInput, MissingCapability
from readbench.model.schema import DEFAULT_ALPHA, DEFAULT_MARGIN


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    sr = subparsers.add_parser("run", help="measure a matrix in shuffled rounds")
    sr.add_argument("--matrix", default="default", help="quick|default|full|FILE.toml")
    sr.add_argument("--workloads")
    sr.add_argument("--sizes")
    sr.add_argument("--hooks")
    sr.add_argument("--buf-offsets")
    sr.add_argument("--rounds", type=int)
    sr.add_argument("--aa", action="store_true", help="measure the baseline twice (A/A)")
    # --X / --no-X; None (neither given) leaves the matrix's own setting
    sr.add_argument(
        "--atlas",
        action=argparse.BooleanOptionalAction,
        help="add the hook-point atlas of each hooked workload (default: on with --perf)",
    )
    sr.add_argument(
        "--calibrate",
        action="store_true",
        help="also measure the paired test's A/A rate and power here (readbench calibrate)",
    )
    sr.add_argument("--perf", action=argparse.BooleanOptionalAction)
    sr.add_argument(
        "--copy",
        action=argparse.BooleanOptionalAction,
        help="add the user-space copy-strategy sweep (default: on for default/full)",
    )
    sr.add_argument("--resume", metavar="RUN")
    sr.add_argument("--out", default="results")
    sr.add_argument("--seed", type=int, default=None)
    sr.add_argument("--affinity", default=None, help="CPU list for pyperf workers, e.g. 1")
    sr.add_argument(
        "--alpha",
        type=fraction("--alpha"),
        default=DEFAULT_ALPHA,
        help=f"significance level of the run's claims, stored with it (default {DEFAULT_ALPHA})",
    )
    sr.add_argument(
        "--margin",
        type=fraction("--margin"),
        default=DEFAULT_MARGIN,
        help="equivalence margin for 'no overhead', a fraction stored with the run "
        f"(default {DEFAULT_MARGIN})",
    )
    sr.add_argument("--report", action="store_true", help="write the HTML report at the end")
    sr.add_argument("--report-out", default="reports")
    sr.add_argument("--no-progress", action="store_true")
    sr.add_argument(
        "--allow-concurrent",
        action="store_true",
        help="measure even while another readbench measurement runs here (recorded)",
    )
    add_common_cell_args(sr)
    sr.set_defaults(func=run)
    return sr


def _narrow_args(args: argparse.Namespace) -> dict[str, Any]:
    from readbench.model.matrix import check_workload, parse_list, parse_sizes

    kw: dict[str, Any] = {}
    if args.workloads:
        kw["workloads"] = [check_workload(w) for w in parse_list(args.workloads, "--workloads")]
    if args.sizes:
        kw["sizes"] = parse_sizes(args.sizes)
    if args.hooks:
        kw["hooks"] = parse_list(args.hooks, "--hooks")
    if getattr(args, "buf_offsets", None):
        offs = []
        for t in parse_list(args.buf_offsets, "--buf-offsets"):
            if not t.isdigit() or int(t) > 63:
                raise BadInput(f"--buf-offsets {t!r}: must be an integer within 0..63")
            offs.append(int(t))
        kw["buf_offsets"] = offs
    return kw


def _summarize(run_dir: Path) -> tuple[dict[str, Any], Any]:
    """stats.json of a finished run at the run's own α and margin, and the loaded run (the
    report reuses both)."""
    from readbench.analysis import stats
    from readbench.store.load import load_run, run_alpha, run_margin
    from readbench.store.rundir import atomic_write_json

    loaded = load_run(run_dir)
    m = loaded.manifest
    res = stats.analyze_loaded(loaded, alpha=run_alpha(m), margin=run_margin(m))
    atomic_write_json(run_dir / "stats.json", res)
    return res, loaded


def calibration_pass(plan: Any, lock: Any, reporter: Any) -> Any:
    """The run's calibration (`readbench calibrate` in the run's own design: cached at the
    run's smallest cached hooked size, or 64; its processes and blocks per hooked cell; α/m
    for its claim count), as the runner's extra pass, in this process."""
    from readbench.cli import calibrate
    from readbench.cli.common import Parser
    from readbench.errors import ReadbenchError
    from readbench.measure import runner
    from readbench.store.rundir import atomic_write_json

    m = plan.matrix
    hooked = [c for c in plan.cells if c.hook != "none" and not c.aa_copy]
    sizes = sorted(c.size for c in hooked if c.workload == "cached") or [64]
    argv = ["calibrate", "--workload", "cached", "--size", str(sizes[0]),
            "--alpha", str(plan.alpha), "--data-dir", str(plan.data_dir),
            "--processes", str(m.rounds * m.paired_processes_per_round),
            "--pairs", str(m.pairs_by_workload.get("cached", m.pairs)),
            "--min-time", str(m.min_time), "--family-size", str(max(len(hooked), 1)),
            "--trials", str(m.calibrate_trials)]  # fmt: skip
    parser = Parser(prog="readbench")
    calibrate.add_parser(parser.add_subparsers())
    args = parser.parse_args(argv)

    def run_it(run: Any, manifest: dict[str, Any]) -> None:
        try:
            res = calibrate.run_calibration(args, lock)
        except ReadbenchError as e:
            runner.side_failure(manifest, "calibration", "calibrate", str(e), reporter)
            return
        atomic_write_json(run.path / "calibration.json", res)

    def done(run: Any) -> bool:
        return (run.path / "calibration.json").exists()

    return runner.ExtraPass("calibration of the paired test", done, run_it)


def run(args: argparse.Namespace) -> int:
    from readbench.measure import sysstate

    # one measurement at a time: refused (exit 2) before anything is written
    with sysstate.RunLock(f"readbench run --out {args.out}", args.allow_concurrent) as lock:
        return _run(args, lock)


def _run(args: argparse.Namespace, lock: Any) -> int:
    from readbench.analysis import machine_state
    from readbench.measure import children, datafiles, runner, sysstate
    from readbench.model.matrix import load_matrix
    from readbench.render.terminal import ProgressReporter, console

    rep = ProgressReporter(show=not args.no_progress)

    out = Path(args.out)
    if args.resume:
        if args.matrix != "default" or args.workloads or args.sizes or args.hooks:
            raise BadInput(
                "--resume RUN: the run's own matrix is used; "
                "drop --matrix/--workloads/--sizes/--hooks"
            )
        plan, run, manifest = runner.check_resume(args.resume, out)
        runner.prepare_data(plan, rep)
    else:
        if args.rounds is not None and args.rounds < 1:
            raise BadInput(f"--rounds {args.rounds}: must be >= 1")
        from readbench.bpf import support

        matrix = load_matrix(args.matrix, support.default_hooks)
        matrix = matrix.narrowed(**_narrow_args(args))
        if args.rounds is not None:
            matrix.rounds = args.rounds
        if args.aa:
            matrix.aa = True
        if args.calibrate:
            matrix.calibrate = True
        if args.perf is not None:
            matrix.perf = args.perf
            matrix.atlas = matrix.atlas or args.perf  # the atlas rides with the perf pass
        if args.atlas is not None:
            matrix.atlas = args.atlas
        if args.copy is not None:
            matrix.copy = args.copy
        data_dir = args.data_dir or datafiles.default_data_dir()
        plan = runner.plan_run(matrix, data_dir, seed=args.seed, affinity=args.affinity)
        plan.alpha, plan.margin = args.alpha, args.margin
        for s in plan.skipped:
            console.print(f"[yellow]skipped[/yellow] {s['cell']}: {s['reason']}")
        if not plan.cells:
            raise MissingCapability("no cell of the matrix can run here (see the reasons above)")
        runner.prepare_data(plan, rep)
        run, manifest = runner.start(plan, out)
    cpus = sysstate.parse_cpu_list(plan.affinity) if plan.affinity else None
    state = manifest.setdefault("system_state", {})
    state.update(before=sysstate.idle_sample(0.5), settings=sysstate.cpu_settings(cpus),
                 concurrent=lock.concurrent)  # fmt: skip
    for w in machine_state.warnings({k: v for k, v in state.items() if k != "during"}):
        console.print(f"[yellow]machine state[/yellow]: {w}")
    console.print(f"run {run.path} — {len(plan.cells)} cells × {plan.matrix.rounds} rounds")
    from readbench.measure import machine

    if machine.emulated(plan.probe.get("virtualization") or {}):
        console.print(f"[yellow]note[/yellow]: {machine.EMULATED_NOTE}")
    try:
        extra = (calibration_pass(plan, lock, rep),) if plan.matrix.calibrate else ()
        manifest = runner.execute(plan, run, manifest, reporter=rep, extra=extra)
    except children.Interrupted as e:
        console.print(
            f"[yellow]interrupted ({e})[/yellow]: finished cells kept in {run.path}; "
            f"continue with: readbench run --resume {run.path}"
        )
        return 128 + e.signum
    res, loaded = _summarize(run.path)
    report_path = None
    if args.report:
        from readbench.render import report

        report_path = report.write_report(
            run.path,
            Path(args.report_out) / run.path.name,
            analysis=res,
            loaded=loaded,
        )
        console.print(f"report: {report_path}")
    if not args.json:
        from readbench.render import terminal

        terminal.print_cells(res)
    else:
        emit_json(
            {
                "run_dir": str(run.path),
                "status": manifest["status"],
                "cells": res.get("cells", []),
                "comparisons": res.get("comparisons", []),
                "significant": res.get("significant"),
                "aa_false_positive_rate": res.get("aa_false_positive_rate"),
                "alpha": res.get("alpha"),
                "unavailable": manifest.get("unavailable", []),
                "failed": manifest.get("failed", []),
                "report": str(report_path) if report_path else None,
            }
        )
    if args.json:  # the terminal table (print_cells) already printed every warning
        for w in res.get("warnings") or []:
            console.print(f"[yellow]warning[/yellow]: {w}", highlight=False)
    console.print(f"results: {run.path}")
    return 1 if manifest.get("failed") else 0
