"""What every subcommand shares: the argument parser that exits 2 naming the rule, the JSON
printer, the arguments that describe where a cell's data lives."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


class Parser(argparse.ArgumentParser):
    """argparse exits 2 on bad usage already; make its message name the program and rule."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"readbench: error: {message}\n")
        sys.exit(2)


def emit_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def add_common_cell_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, default=None, help="where data files live (real fs)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def fraction(name: str) -> Any:
    """argparse type: a number strictly between 0 and 1 (α, an equivalence margin)."""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} {text!r}: not a number") from None
        if not 0 < v < 1:
            raise argparse.ArgumentTypeError(f"{name} {text!r}: must be within (0, 1)")
        return v

    return parse
