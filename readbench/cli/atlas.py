"""`readbench atlas [--workload W] [--size N] [--json]`: every hook point on the workload's
read path: its layer, what the kernel permits there (tried, with the kernel's reason),
how often it fires per read() (counted), the arguments a program gets (BTF), what they give
access to, what an empty and an inspect program there cost (paired), and the point to hook
for three needs (readbench.atlas)."""

from __future__ import annotations

import argparse
from typing import Any

from readbench.cli.common import add_common_cell_args, emit_json


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("atlas", help="which point on the read path to hook, and its cost")
    p.add_argument("--workload", default="cached")
    p.add_argument("--size", default="64")
    p.add_argument("--processes", type=int, default=8, help="worker processes per overhead")
    p.add_argument("--pairs", type=int, default=6, help="off/on blocks per process")
    p.add_argument("--no-overhead", action="store_true", help="skip the paired overheads")
    p.add_argument("--seed", type=int, default=0)
    add_common_cell_args(p)
    p.set_defaults(func=run)
    return p


def collect(args: argparse.Namespace) -> dict[str, Any]:
    from readbench.atlas import overhead, table
    from readbench.atlas.points import control_hooks, hooks_for
    from readbench.atlas.recommend import recommend
    from readbench.errors import BadInput
    from readbench.measure import datafiles
    from readbench.model.matrix import check_workload, parse_size

    workload = check_workload(args.workload)
    size = parse_size(args.size, "--size")
    if args.processes < 8 and not args.no_overhead:
        raise BadInput(f"--processes {args.processes}: the exact paired test needs >= 8")
    data_dir = args.data_dir or datafiles.default_data_dir()
    datafiles.check_workload_fs(data_dir, [workload])
    datafiles.check_data_dir(data_dir)
    path = datafiles.ensure(data_dir, workload)
    res = table.atlas(workload, size, path, datafiles.fs_type(data_dir))
    if not args.no_overhead:

        def measure(hook: str, i: int) -> dict[str, Any]:
            return overhead.paired_overhead(hook, workload, size, str(path or ""),
                                            args.processes, args.pairs, args.seed + i)  # fmt: skip

        for i, row in enumerate(res["points"]):
            if row.get("silent"):
                continue  # attaches but never fires here: there is no cost to a read to measure
            ns: dict[str, Any] = {}
            ci: dict[str, Any] = {}
            for body, hook in hooks_for(row).items():
                if hook is None:
                    ns[body], ci[body] = None, None
                    continue
                o = measure(hook, i)
                ns[body], ci[body] = o.get("delta_ns"), o.get("delta_ci95")
                row.setdefault("overhead_hooks", {})[body] = hook
                if "error" in o:
                    row.setdefault("overhead_errors", {})[body] = o["error"]
            row["overhead_ns"], row["overhead_ci95"] = ns or None, ci or None
            # The types that can deny or modify a read have a cost of their own.
            for attach, hook in control_hooks(row).items():
                o = measure(hook, i)
                row.setdefault("overhead_by_attach", {})[attach] = {
                    "hook": hook, "body": "empty", "ns": o.get("delta_ns"),
                    "ci95": o.get("delta_ci95"), **({"error": o["error"]} if "error" in o else {}),
                }  # fmt: skip
    res["recommendations"] = recommend(res["points"])
    from readbench.kernel import cpu
    from readbench.measure import machine

    res["virtualization"] = machine.virtualization(sorted(cpu.kernel_flags()))
    if res["virtualization"]["emulated"]:
        import sys

        print(f"readbench: note: {machine.EMULATED_NOTE}", file=sys.stderr)
    return res


def run(args: argparse.Namespace) -> int:
    res = collect(args)
    if args.json:
        emit_json(res)
        return 0
    from rich.table import Table
    from rich.text import Text

    from readbench.render.terminal import console

    def cost(r: dict[str, Any], body: str) -> str:
        v = (r.get("overhead_ns") or {}).get(body)
        ci = (r.get("overhead_ci95") or {}).get(body)
        if v is None:
            return "–"
        return f"{v:.0f} ({ci[0]:.0f}–{ci[1]:.0f})" if ci else f"{v:.0f}"

    t = Table(title=f"hook points of a {res['size']} B {res['workload']} read")
    for col in ("point", "layer", "fs-indep", "attaches", "fires/read", "args",
                "empty ns (95% CI)", "inspect ns (95% CI)"):  # fmt: skip
        t.add_column(col)
    for r in res["points"]:
        ok = [a for a, v in r["attach"].items() if v["available"]] or ["refused"]
        t.add_row(
            Text(f"{r['group'] + ':' if r['group'] else ''}{r['target']}"),
            r["layer"],
            "yes" if r["fs_independent"] else "no",
            ", ".join(ok),
            "–" if r["fires_per_read"] is None else f"{r['fires_per_read']:.2f}",
            Text(", ".join(f"{a['type']} {a['name']}" for a in r["args"] or [])[:60]),
            cost(r, "empty"),
            cost(r, "inspect"),
        )
    console.print(t)
    for rec in res["recommendations"]:
        console.print(Text(f"to {rec['text']}: {rec['summary']}"))
    return 0
