"""`readbench report RUN [--out reports/] [--json]`: write the run's HTML report."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from readbench.errors import BadInput


def _fraction(name: str) -> Any:
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} {text!r}: not a number") from None
        if not 0 < v < 1:
            raise argparse.ArgumentTypeError(f"{name} {text!r}: must be within (0, 1)")
        return v

    return parse


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
        type=_fraction("--alpha"),
        default=None,
        help="significance level (default: the run's matrix alpha, else 0.01)",
    )
    p.add_argument(
        "--margin",
        type=_fraction("--margin"),
        default=0.02,
        help="equivalence margin for 'no overhead' (fraction, default 0.02)",
    )
    p.add_argument("--json", action="store_true", help="print the analysis as one JSON object")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from readbench.analysis.stats import analyze_loaded, load_run
    from readbench.render import report

    run_dir = Path(args.run)
    if not run_dir.is_dir():
        raise BadInput(f"RUN {run_dir}: not a directory (expected results/<run-id>/)")
    run_data = load_run(run_dir)
    alpha = report.default_alpha(run_data.manifest) if args.alpha is None else args.alpha
    analysis = analyze_loaded(run_data, alpha=alpha, margin=args.margin)
    path = report.write_report(run_dir, args.out, analysis=analysis, loaded=run_data)
    if args.json:
        json.dump({"report": str(path), **analysis}, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        fp = analysis["aa_false_positive_rate"]
        print(
            f"{analysis['significant']} of {analysis['n_claims']} hook claims significant "
            f"(Holm, α={alpha:g}); {analysis['equivalent']} equivalent within "
            f"±{args.margin * 100:g} %; A/A false-positive rate "
            f"{'n/a (no --aa)' if fp is None else f'{fp:.1%}'}",
            file=sys.stderr,
        )
        print(path)
    return 0
