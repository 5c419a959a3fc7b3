"""`readbench report RUN [--out reports/] [--json]`: write the run's HTML report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from readbench.cli.common import emit_json, fraction
from readbench.errors import BadInput


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "report",
        help="write the self-contained HTML report of a run",
        description="Analyze results/<run-id>/ and write <out>/<run-id>/index.html.",
    )
    p.add_argument("run", type=Path, help="run directory (results/<run-id>)")
    p.add_argument("--out", type=Path, default=Path("reports"), help="reports root")
    p.add_argument(
        "--alpha",
        type=fraction("--alpha"),
        default=None,
        help="significance level (default: the run's own)",
    )
    p.add_argument(
        "--margin",
        type=fraction("--margin"),
        default=None,
        help="equivalence margin for 'no overhead' (fraction; default: the run's own)",
    )
    p.add_argument("--json", action="store_true", help="print the analysis as one JSON object")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from readbench.analysis.stats import analyze_loaded
    from readbench.render import report
    from readbench.store.load import load_run, run_alpha, run_margin

    run_dir = Path(args.run)
    if not run_dir.is_dir():
        raise BadInput(f"RUN {run_dir}: not a directory (expected results/<run-id>/)")
    run_data = load_run(run_dir)
    # The run's own α and margin unless the command line overrides them.
    alpha = run_alpha(run_data.manifest) if args.alpha is None else args.alpha
    margin = run_margin(run_data.manifest) if args.margin is None else args.margin
    analysis = analyze_loaded(run_data, alpha=alpha, margin=margin)
    path = report.write_report(run_dir, args.out, analysis=analysis, loaded=run_data)
    if args.json:
        emit_json({"report": str(path), **analysis})
    else:
        fp = analysis["aa_false_positive_rate"]
        print(
            f"{analysis['significant']} of {analysis['n_claims']} hook claims significant "
            f"(Holm, α={alpha:g}); {analysis['equivalent']} equivalent within "
            f"±{margin * 100:g} %; A/A false-positive rate "
            f"{'n/a (no --aa)' if fp is None else f'{fp:.1%}'}",
            file=sys.stderr,
        )
        for w in analysis.get("warnings") or []:
            print(f"warning: {w}", file=sys.stderr)
        print(path)
    return 0
