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
    p.add_argument("--size", default=None, help="bytes per op (default 64; 4K with --coverage)")
    p.add_argument("--processes", type=int, default=8, help="worker processes per overhead")
    p.add_argument("--pairs", type=int, default=6, help="off/on blocks per process")
    p.add_argument("--no-overhead", action="store_true", help="skip the paired overheads")
    p.add_argument(
        "--coverage",
        action="store_true",
        help="the coverage matrix: fires per op of every point on every read kind",
    )
    p.add_argument(
        "--workloads",
        default=None,
        help="--coverage: the read kinds (default: every one the data dir allows)",
    )
    p.add_argument("--seed", type=int, default=0)
    add_common_cell_args(p)
    p.set_defaults(func=run)
    return p


def coverage_kinds(text: str | None, data_dir: Any) -> tuple[list[str], list[dict[str, str]]]:
    """The read kinds of a coverage run: those asked for (BadInput on a bad one or one the data
    directory cannot serve), or every registry kind the directory allows, with the others
    listed and why."""
    from readbench.errors import BadInput
    from readbench.measure import datafiles
    from readbench.model.matrix import check_workload, parse_list
    from readbench.model.workloads import REGISTRY

    if text is not None:
        kinds = [check_workload(w) for w in parse_list(text, "--workloads")]
        datafiles.check_workload_fs(data_dir, kinds)
        return kinds, []
    kinds, left = [], []
    for w in REGISTRY:
        try:
            datafiles.check_workload_fs(data_dir, [w.name])
        except BadInput as e:
            left.append({"workload": w.name, "reason": str(e)})
            continue
        kinds.append(w.name)
    return kinds, left


def collect_coverage(args: argparse.Namespace) -> dict[str, Any]:
    from readbench.atlas import overhead
    from readbench.atlas.coverage import coverage
    from readbench.atlas.recommend import (
        buffered_check,
        coverage_recommendation,
        minimal_covers,
        sees_kind,
    )
    from readbench.errors import BadInput
    from readbench.measure import datafiles
    from readbench.model.matrix import parse_size
    from readbench.model.workloads import get

    args.size = args.size or "4K"
    size = parse_size(args.size, "--size")
    data_dir = args.data_dir or datafiles.default_data_dir()
    kinds, left = coverage_kinds(args.workloads, data_dir)
    for w in kinds:
        why = get(w).cell_rule(size, 0)
        if why:
            raise BadInput(f"--size {args.size} for read kind {w}: {why}")
    if args.processes < 8 and not args.no_overhead:
        raise BadInput(f"--processes {args.processes}: the exact paired test needs >= 8")
    datafiles.check_data_dir(data_dir)
    files = {w: datafiles.ensure(data_dir, w) for w in kinds}
    aligns = {}
    if any(get(w).needs_direct_io for w in kinds):
        a = datafiles.direct_io_alignment(data_dir)
        if a is None:
            raise BadInput(f"--data-dir {data_dir}: O_DIRECT is refused there (read kind direct)")
        aligns = {w: a for w in kinds if get(w).needs_direct_io}
    cov = coverage(kinds, size, files, datafiles.fs_type(data_dir), aligns)
    cov["not_measured"] = left
    overheads: dict[str, dict[str, Any]] = {}
    if not args.no_overhead:
        rows = {r["key"]: r for r in cov["points"]}
        live = [k for k in cov["kinds"] if not k.get("refused")]
        keys = sorted({k for s in minimal_covers(cov) for k in s})
        for i, key in enumerate(keys):
            r = rows[key]
            seen = [k["workload"] for k in live if sees_kind(r, k)]
            on = next((w for w in seen if get(w).calibrate), seen[0])
            hook = (f"point:{r['via']}:{r['group'] or ''}/"
                    + ("file_permission" if r["via"] == "lsm" else r["target"]))  # fmt: skip
            o = overhead.paired_overhead(hook, on, size, str(files.get(on) or ""),
                                         args.processes, args.pairs, args.seed + i)  # fmt: skip
            overheads[key] = {"hook": hook, "on": on, "ns": o.get("delta_ns"),
                              "ci95": o.get("delta_ci95"), "error": o.get("error")}  # fmt: skip
    cov["overheads"] = overheads
    cov["recommendation"] = coverage_recommendation(cov, overheads)
    _note_virtualization(cov)
    cov["buffered_check"] = buffered_check(
        cov, ("filemap/mm_filemap_get_pages", "filemap/mm_filemap_fault")
    )
    return cov


def _note_virtualization(res: dict[str, Any]) -> None:
    """Record whether this kernel runs emulated (a guest under TCG): counts, attachability and
    arguments stay facts there, times do not."""
    import sys

    from readbench.kernel import cpu
    from readbench.measure import machine

    res["virtualization"] = machine.virtualization(sorted(cpu.kernel_flags()))
    if res["virtualization"]["emulated"]:
        print(f"readbench: note: {machine.EMULATED_NOTE}", file=sys.stderr)


def collect(args: argparse.Namespace) -> dict[str, Any]:
    from readbench.atlas import overhead, table
    from readbench.atlas.points import control_hooks, hooks_for
    from readbench.atlas.recommend import recommend
    from readbench.errors import BadInput
    from readbench.measure import datafiles
    from readbench.model.matrix import check_workload, parse_size

    workload = check_workload(args.workload)
    size = parse_size(args.size or "64", "--size")
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
    res["recommendations"] = recommend(res["points"], workload)
    _note_virtualization(res)
    return res


def run(args: argparse.Namespace) -> int:
    if args.coverage:
        cov = collect_coverage(args)
        if args.json:
            emit_json(cov)
            return 0
        from readbench.render.terminal import print_coverage

        print_coverage(cov)
        return 0
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
