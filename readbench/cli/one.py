"""`readbench one --workload W --size N [--hook H] [--perf] [--json]`: one cell, quickly."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from readbench.cli.common import add_common_cell_args, emit_json
from readbench.errors import BadInput, MissingCapability, ReadbenchError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    so = subparsers.add_parser("one", help="measure one cell quickly")
    so.add_argument("--workload", required=True)
    so.add_argument("--size", required=True)
    so.add_argument("--hook", default="none")
    so.add_argument("--buf-offset", type=int, default=0)
    so.add_argument("--perf", action="store_true", help="add the perf counters/attribution pass")
    # 5 rounds × 3 paired processes: 15 processes, enough for the exact paired test to reach
    # α = 0.01 (it cannot below 8) and for a tight 95 % interval of the pseudo-median
    so.add_argument("--rounds", type=int, default=5)
    so.add_argument("--pairs", type=int, default=20, help="hook off/on blocks per process")
    so.add_argument("--seed", type=int, default=None)
    so.add_argument("--out", default=None, help="keep the run directory here")
    so.add_argument("--no-progress", action="store_true")
    add_common_cell_args(so)
    so.set_defaults(func=run)
    return so


def run(args: argparse.Namespace) -> int:
    """One cell, quickly: a small run in a temporary directory, summarised and removed."""
    from readbench.measure import children, datafiles, runner
    from readbench.model.matrix import Block, Matrix, check_workload, parse_size
    from readbench.render.terminal import ProgressReporter

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
        pairs=args.pairs,
        paired_processes_per_round=3,
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
            rep = ProgressReporter(show=not args.no_progress)
            manifest = runner.execute(plan, run, manifest, reporter=rep)
        except children.Interrupted as e:
            return 128 + e.signum
        if manifest.get("failed"):
            raise ReadbenchError(manifest["failed"][0]["reason"])
        from readbench.analysis import stats

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
            "virtualization": plan.probe.get("virtualization"),
        }
        comp = next((c for c in res.get("comparisons", []) if c["name"] == target.name), None)
        if comp:
            out["vs_none"] = comp
        bpf = run.side_file("bpf", target.name)
        if bpf.exists():
            out["bpf"] = json.loads(bpf.read_text())
        if args.perf:
            child = children.ChildRunner()
            proc = child.run(runner.side_cmd(plan, target, "perf", seconds=1.5), timeout=300)
            if proc.returncode != 0:
                raise MissingCapability(f"perf pass failed: {runner._error_tail(proc.stderr)}")
            out["perf"] = json.loads(proc.stdout)
            from readbench.analysis import anatomy

            # where the read's time goes, layer by layer, and its measured call path
            out["perf"]["anatomy"] = anatomy.of_perf(out["perf"])
        if args.out:
            out["run_dir"] = str(run.path)
    finally:
        if not args.out:
            shutil.rmtree(tmp, ignore_errors=True)
    from readbench.measure import machine

    if machine.emulated(out.get("virtualization") or {}):
        print(f"readbench: note: {machine.EMULATED_NOTE}", file=sys.stderr)
    if args.json:
        emit_json(out)
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
            an = p.get("anatomy")
            if an:
                print(f"  anatomy ({an['ns_per_read']:.0f} ns per read):")
                for row in an["layers"]:
                    if row["ns"] >= 0.5:
                        print(f"    {row['layer']:<32} {row['ns']:>10.0f} ns  {row['share']:6.1%}")
    return 0
