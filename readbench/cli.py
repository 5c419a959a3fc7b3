"""readbench command line (design §8). Exit status: 0 ok, 1 bug, 2 bad input,
3 missing capability, 130/143 interrupted by SIGINT/SIGTERM (finished results kept)."""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from readbench import __version__
from readbench.errors import BadInput, MissingCapability, ReadbenchError

# Subcommands living in their own modules: each has add_parser(subparsers) and run(args).
COMMANDS = ["hooks", "copy", "report", "compare"]


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on bad usage already; make its message name the program and rule."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"readbench: error: {message}\n")
        sys.exit(2)


def _emit_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def _add_common_cell_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, default=None, help="where data files live (real fs)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def cmd_probe(args: argparse.Namespace) -> int:
    from readbench import machine

    data_dir = args.data_dir
    if data_dir is not None:
        from readbench.datafiles import check_data_dir

        check_data_dir(data_dir)
    info = machine.probe(data_dir)
    if args.json:
        _emit_json(info)
        return 0
    from rich.console import Console
    from rich.table import Table

    con = Console()
    cpu, k, r = info["cpu"], info["kernel"], info["copy_routine"]
    con.print(
        f"[bold]CPU[/bold]      {cpu['model']} ({cpu['count']} CPUs, LLC {cpu['llc_bytes']} B)"
    )
    kflags = ", ".join(f"{f}={'yes' if v else 'no'}" for f, v in cpu["copy_flags"].items())
    con.print(f"[bold]flags[/bold]    kernel view: {kflags}")
    con.print(f"         CPUID: {', '.join(f'{f}={v}' for f, v in cpu['cpuid'].items())}")
    con.print(f"[bold]kernel[/bold]   {k['release']}  BTF={k['btf']}  kcore={k['kcore_readable']}")
    con.print(f"[bold]copy[/bold]     {r.get('name')}: {r.get('why')}")
    p = info["perf"]
    con.print(
        f"[bold]perf[/bold]     {p['version']}; hardware counters: "
        f"{p['hardware_counters']} ({p['reason']})"
    )
    io = info["io"]
    con.print(
        f"[bold]data dir[/bold] {io['data_dir']} fs={io['fs_type']} O_DIRECT={io['o_direct']} "
        f"align={io['dio_align']}; pipe max {io['pipe_max_size']}"
    )
    t = Table(title="BPF attach types")
    t.add_column("type")
    t.add_column("available")
    t.add_column("reason")
    for name, a in info["attach_types"].items():
        t.add_row(name, "yes" if a["available"] else "[red]no[/red]", str(a.get("reason", "")))
    con.print(t)
    con.print(f"root: {info['root']}")
    return 0


def _narrow_args(args: argparse.Namespace) -> dict[str, Any]:
    from readbench.matrix import check_workload, parse_list, parse_sizes

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


def _summarize(run_dir: Path, alpha: float) -> tuple[dict[str, Any], Any]:
    """stats.json of a finished run, and the loaded run (the report reuses both)."""
    from readbench import stats
    from readbench.results import atomic_write_json

    loaded = stats.load_run(run_dir)
    res = stats.analyze_loaded(loaded, alpha=alpha)
    atomic_write_json(run_dir / "stats.json", res)
    return res, loaded


def _print_cells(res: dict[str, Any]) -> None:
    from rich.table import Table

    t = Table(title="cells (ns per read)")
    for col in (
        "cell",
        "procs",
        "median",
        "95% CI",
        "vs none",
        "ratio 95% CI",
        "p (Holm)",
        "verdict",
    ):
        t.add_column(col)
    comps = {c["name"]: c for c in res.get("comparisons", [])}
    for c in res.get("cells", []):
        cmp_ = comps.get(c["name"])
        ci = c.get("ci95_ns") or [float("nan")] * 2
        row = [
            c["name"],
            str(c.get("n_processes")),
            f"{c.get('median_ns', float('nan')):.1f}",
            f"{ci[0]:.1f}–{ci[1]:.1f}",
        ]
        if cmp_:
            rci = cmp_.get("ratio_ci95") or [float("nan")] * 2
            row += [
                f"{cmp_.get('delta_ns', float('nan')):+.1f} ns",
                f"{rci[0]:.3f}–{rci[1]:.3f}",
                f"{cmp_.get('p_holm', float('nan')):.2g}",
                cmp_["verdict"],  # stats.verdict: the same words the HTML report uses
            ]
        else:
            row += ["", "", "", "baseline"]
        t.add_row(*row)
    from readbench.runner import console

    console.print(t)


def cmd_run(args: argparse.Namespace) -> int:
    from readbench import datafiles, runner
    from readbench.matrix import load_matrix

    out = Path(args.out)
    if args.resume:
        if args.matrix != "default" or args.workloads or args.sizes or args.hooks:
            raise BadInput(
                "--resume RUN: the run's own matrix is used; "
                "drop --matrix/--workloads/--sizes/--hooks"
            )
        plan, run, manifest = runner.check_resume(args.resume, out)
        runner.prepare_data(plan)
    else:
        if args.rounds is not None and args.rounds < 1:
            raise BadInput(f"--rounds {args.rounds}: must be >= 1")
        from readbench import hooks

        matrix = load_matrix(args.matrix, hooks.default_hooks)
        matrix = matrix.narrowed(**_narrow_args(args))
        if args.rounds is not None:
            matrix.rounds = args.rounds
        if args.aa:
            matrix.aa = True
        if args.perf is not None:
            matrix.perf = args.perf
        if args.copy is not None:
            matrix.copy = args.copy
        data_dir = args.data_dir or datafiles.default_data_dir()
        plan = runner.plan_run(matrix, data_dir, seed=args.seed, affinity=args.affinity)
        for s in plan.skipped:
            runner.console.print(f"[yellow]skipped[/yellow] {s['cell']}: {s['reason']}")
        if not plan.cells:
            raise MissingCapability("no cell of the matrix can run here (see the reasons above)")
        runner.prepare_data(plan)
        run, manifest = runner.start(plan, out)
    runner.console.print(f"run {run.path} — {len(plan.cells)} cells × {plan.matrix.rounds} rounds")
    try:
        manifest = runner.execute(plan, run, manifest, show_progress=not args.no_progress)
    except runner.Interrupted as e:
        runner.console.print(
            f"[yellow]interrupted ({e})[/yellow]: finished cells kept in {run.path}; "
            f"continue with: readbench run --resume {run.path}"
        )
        return 128 + e.signum
    res, loaded = _summarize(run.path, args.alpha)
    report_path = None
    if args.report:
        from readbench import report

        report_path = report.write_report(
            run.path,
            Path(args.report_out) / run.path.name,
            alpha=args.alpha,
            analysis=res,
            loaded=loaded,
        )
        runner.console.print(f"report: {report_path}")
    if not args.json:
        _print_cells(res)
    else:
        _emit_json(
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
    runner.console.print(f"results: {run.path}")
    return 1 if manifest.get("failed") else 0


def cmd_one(args: argparse.Namespace) -> int:
    """One cell, quickly: a small run in a temporary directory, summarised and removed."""
    from readbench import datafiles, runner
    from readbench.matrix import Block, Matrix, check_workload, parse_size

    workload = check_workload(args.workload)
    size = parse_size(args.size, "--size")
    if not 0 <= args.buf_offset <= 63:
        raise BadInput(f"--buf-offset {args.buf_offset}: must be within 0..63")
    hooks_ = [args.hook] if args.hook == "none" else ["none", args.hook]
    matrix = Matrix(
        "one",
        [Block([workload], [size], hooks_, [args.buf_offset])],
        rounds=args.rounds,
        processes_per_round=2,
        values=3,
        perf=False,
        bpf_stats=args.hook != "none",
        copy=False,
    )
    data_dir = args.data_dir or datafiles.default_data_dir()
    plan = runner.plan_run(matrix, data_dir, seed=args.seed, strict_hooks=True)
    runner.prepare_data(plan)
    tmp = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="readbench-one-"))
    try:
        run, manifest = runner.start(plan, tmp)
        try:
            manifest = runner.execute(plan, run, manifest, show_progress=not args.no_progress)
        except runner.Interrupted as e:
            return 128 + e.signum
        if manifest.get("failed"):
            raise ReadbenchError(manifest["failed"][0]["reason"])
        from readbench import stats

        res = stats.analyze_run(run.path)
        want_hooked = args.hook != "none"
        target = next(c for c in plan.cells if (c.hook != "none") == want_hooked and not c.aa_copy)
        cell = next(c for c in res["cells"] if c["name"] == target.name)
        out: dict[str, Any] = {
            "workload": workload,
            "size": size,
            "buf_offset": args.buf_offset,
            "hook": target.hook,
            "ns_per_op_mean": cell["mean_ns"],
            "ns_per_op_median": cell["median_ns"],
            "ci95": cell["ci95_ns"],
            "n_processes": cell["n_processes"],
            "n_values": cell["n_values"],
        }
        comp = next((c for c in res.get("comparisons", []) if c["name"] == target.name), None)
        if comp:
            out["vs_none"] = comp
        bpf = run.side_file("bpf", target.name)
        if bpf.exists():
            out["bpf"] = json.loads(bpf.read_text())
        if args.perf:
            child = runner.ChildRunner()
            proc = child.run(runner.side_cmd(plan, target, "perf", seconds=1.5), timeout=300)
            if proc.returncode != 0:
                raise MissingCapability(f"perf pass failed: {runner._error_tail(proc.stderr)}")
            out["perf"] = json.loads(proc.stdout)
        if args.out:
            out["run_dir"] = str(run.path)
    finally:
        if not args.out:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        _emit_json(out)
    else:
        ci = out["ci95"]
        print(
            f"{target.name}: median {out['ns_per_op_median']:.1f} ns/op, mean "
            f"{out['ns_per_op_mean']:.1f}, 95% CI [{ci[0]:.1f}, {ci[1]:.1f}] "
            f"({out['n_processes']} processes)"
        )
        if "vs_none" in out:
            v = out["vs_none"]
            lo, hi = v["ratio_ci95"]
            d, r = v["delta_ns"], v["ratio"]
            print(f"  vs none: {d:+.1f} ns, ratio {r:.3f} [{lo:.3f}, {hi:.3f}]")
        if "perf" in out:
            p = out["perf"]
            frac = p.get("copy_fraction")
            share = f"{frac:.1%}" if isinstance(frac, float) else "unavailable"
            print(f"  copy routine ({p.get('copy_symbol')}): {share} of read() samples")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="readbench", description=__doc__)
    p.add_argument("--version", action="version", version=f"readbench {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sp = sub.add_parser("probe", help="what this machine is and permits")
    _add_common_cell_args(sp)
    sp.set_defaults(func=cmd_probe)

    so = sub.add_parser("one", help="measure one cell quickly")
    so.add_argument("--workload", required=True)
    so.add_argument("--size", required=True)
    so.add_argument("--hook", default="none")
    so.add_argument("--buf-offset", type=int, default=0)
    so.add_argument("--perf", action="store_true", help="add the perf counters/attribution pass")
    so.add_argument("--rounds", type=int, default=3)
    so.add_argument("--seed", type=int, default=None)
    so.add_argument("--out", default=None, help="keep the run directory here")
    so.add_argument("--no-progress", action="store_true")
    _add_common_cell_args(so)
    so.set_defaults(func=cmd_one)

    sr = sub.add_parser("run", help="measure a matrix in shuffled rounds")
    sr.add_argument("--matrix", default="default", help="quick|default|full|FILE.toml")
    sr.add_argument("--workloads")
    sr.add_argument("--sizes")
    sr.add_argument("--hooks")
    sr.add_argument("--buf-offsets")
    sr.add_argument("--rounds", type=int)
    sr.add_argument("--aa", action="store_true", help="measure the baseline twice (A/A)")
    sr.add_argument("--perf", dest="perf", action="store_true", default=None)
    sr.add_argument("--no-perf", dest="perf", action="store_false")
    sr.add_argument(
        "--copy",
        dest="copy",
        action="store_true",
        default=None,
        help="add the user-space copy-strategy sweep (default: on for default/full)",
    )
    sr.add_argument("--no-copy", dest="copy", action="store_false")
    sr.add_argument("--resume", metavar="RUN")
    sr.add_argument("--out", default="results")
    sr.add_argument("--seed", type=int, default=None)
    sr.add_argument("--affinity", default=None, help="CPU list for pyperf workers, e.g. 1")
    sr.add_argument("--alpha", type=float, default=0.01)
    sr.add_argument("--report", action="store_true", help="write the HTML report at the end")
    sr.add_argument("--report-out", default="reports")
    sr.add_argument("--no-progress", action="store_true")
    _add_common_cell_args(sr)
    sr.set_defaults(func=cmd_run)

    for name in COMMANDS:
        try:
            mod = importlib.import_module(f"readbench.cmd_{name}")
        except ModuleNotFoundError as e:
            if e.name != f"readbench.cmd_{name}":
                raise
            continue
        mod.add_parser(sub)
        sp_ = sub.choices.get(name)
        if sp_ is not None and sp_.get_default("func") is None:
            sp_.set_defaults(func=mod.run)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BadInput as e:
        sys.stderr.write(f"readbench: bad input: {e}\n")
        return 2
    except MissingCapability as e:
        sys.stderr.write(f"readbench: missing capability: {e}\n")
        return 3
    except KeyboardInterrupt:
        sys.stderr.write("readbench: interrupted\n")
        return 130
    except ReadbenchError as e:
        sys.stderr.write(f"readbench: {e}\n")
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
