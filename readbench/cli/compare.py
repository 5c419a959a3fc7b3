"""`readbench compare RUN_A RUN_B … [--out reports/] [--json]`: same cells across runs, one
run per configuration (within-boot p-values, labelled so); or
`readbench compare A1 A2 … -- B1 B2 …` (the same as `A1 A2 … --vs B1 B2 …`): several runs,
each its own boot, per side, with the run as the unit.

`--vs` is the spelling argparse parses: it strips a bare `--` before positionals are split
(so `--` could not separate two groups by itself); the command line rewrites the first `--`
after `compare` to `--vs` (readbench.cli.main), so both forms work."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from readbench.cli.common import emit_json, fraction
from readbench.errors import BadInput
from readbench.model.schema import DEFAULT_ALPHA, DEFAULT_MARGIN


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "compare",
        help="compare the same cells across runs (machines, CPU flags, kernels)",
        description="The first run is the reference A; every other run is tested against it.",
    )
    p.add_argument(
        "runs",
        type=Path,
        nargs="+",
        metavar="RUN",
        help="run directories: ≥ 2, the first the reference; with --vs (or --), side A",
    )
    p.add_argument(
        "--vs",
        type=Path,
        nargs="+",
        metavar="RUN",
        default=None,
        help="side B's runs (each its own boot): the run becomes the unit",
    )
    p.add_argument("--out", type=Path, default=Path("reports"), help="reports root")
    p.add_argument("--alpha", type=fraction("--alpha"), default=DEFAULT_ALPHA)
    p.add_argument("--margin", type=fraction("--margin"), default=DEFAULT_MARGIN)
    p.add_argument("--json", action="store_true", help="print the comparison as one JSON object")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from readbench.analysis.compare import compare_runs, compare_sides
    from readbench.render.compare import (
        machine_lines,
        rich_change_table,
        rich_table,
        write_compare,
    )

    if args.vs is not None:
        result = compare_sides(args.runs, args.vs, alpha=args.alpha, margin=args.margin)
    elif len(args.runs) < 2:
        raise BadInput(f"compare: needs at least two runs (got {len(args.runs)})")
    else:
        result = compare_runs(args.runs, alpha=args.alpha, margin=args.margin)
    path = write_compare(result, args.out)
    # with --json the table goes to stderr so stdout stays one JSON object
    con = Console(stderr=bool(args.json))
    if not con.is_terminal:
        con.width = max(con.width, 180)  # a log file should not get a crushed table
    for line in machine_lines(result):
        con.print(line)
    con.print(rich_table(result))
    con.print(f"unit of replication: {result['unit']}: {result['unit_note']}", markup=False)
    change = rich_change_table(result)
    if change is not None:
        con.print(change)
    if args.json:
        emit_json({"report": str(path), **result})
    else:
        con.print(f"report: {path}", markup=False, highlight=False)
    return 0
