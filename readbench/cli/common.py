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
    """argparse type of --alpha and --margin: the number, checked by the schema's rule for it
    (readbench.model.schema, the one home of both rules and their defaults)."""
    from readbench.errors import BadInput
    from readbench.model.schema import check_alpha, check_margin

    check = check_margin if "margin" in name else check_alpha

    def parse(text: str) -> float:
        try:
            return check(float(text), name)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} {text!r}: not a number") from None
        except BadInput as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    return parse
