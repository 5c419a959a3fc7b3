"""`readbench hooks [--json]`: the hook catalogue with availability on this machine.

Every attach type is tried on the running kernel (an empty program loaded and attached,
then detached at once); a refused one shows the kernel's errno and what it means.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

from readbench.cli.common import emit_json
from readbench.model.workloads import SYSCALL_OF


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "hooks",
        help="list BPF hook points and whether this kernel accepts them",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)
    return p


def collect() -> dict[str, Any]:
    from readbench.bpf import build, support
    from readbench.model import hookspec

    return {
        "attach_types": support.attach_type_support(),
        "catalogue": support.catalogue(),
        "bodies": list(hookspec.BODIES),
        "default_hooks": support.default_hooks(list(SYSCALL_OF)),
        "tools": build.versions(),
    }


def _short(reason: str, type_probe: dict[str, Any]) -> str:
    """A row refused for the same errno as its attach type's probe points there."""
    m = re.search(r"errno \d+ \w+", reason)
    if m and not type_probe["available"] and m.group(0) in type_probe["reason"]:
        return f"refused: {m.group(0)}, as for the attach type above"
    return reason


def run(args: argparse.Namespace) -> int:
    data = collect()
    if args.json:
        emit_json(data)
        return 0
    out = sys.stdout
    out.write("attach types on this kernel (empty program loaded and attached):\n")
    for name, r in data["attach_types"].items():
        mark = "yes" if r["available"] else "NO "
        out.write(f"  {name:10} {mark}  {r['reason']}\n")
    out.write("\nhook points (ATTACH:TARGET, any body: " + ", ".join(data["bodies"]) + "):\n")
    for r in data["catalogue"]:
        mark = "yes" if r["available"] else "no "
        sym = f" -> {r['symbol']}" if r["symbol"] and r["symbol"] != r["target"] else ""
        ws = ",".join(r["workloads"]) or "-"
        out.write(f"  {mark} {r['hook'] + sym:48} workloads: {ws}\n")
        if not r["available"]:
            out.write(f"        {_short(r['reason'], data['attach_types'][r['attach']])}\n")
    out.write("\ndefault hook set: " + ", ".join(data["default_hooks"]) + "\n")
    return 0
