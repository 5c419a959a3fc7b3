"""readbench command line (design §8). Exit status: 0 ok, 1 bug, 2 bad input,
3 missing capability, 130/143 interrupted by SIGINT/SIGTERM (finished results kept).

Every subcommand is a module of this package with add_parser(subparsers) and run(args);
each imports what it measures with lazily, so `report` and `compare` load no compiled code."""

from __future__ import annotations

import argparse
import sys

from readbench import __version__
from readbench.cli import atlas, calibrate, compare, copy, guest, hooks, one, probe, report, run
from readbench.cli.common import Parser
from readbench.errors import BadInput, MissingCapability, ReadbenchError

COMMANDS = (probe, one, run, calibrate, atlas, hooks, copy, report, compare, guest)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="readbench", description=__doc__)
    p.add_argument("--version", action="version", version=f"readbench {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    for mod in COMMANDS:
        mod.add_parser(sub)
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
