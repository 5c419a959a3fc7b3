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


def _claims(
    measured: dict[tuple[str, str], dict[str, Any]], size: int, margin: float
) -> list[dict[str, Any]]:
    """Paired claims of the hooks the atlas measured, named as a run's are."""
    from readbench.analysis.stats import paired_claim
    from readbench.model.hookspec import parse

    out = []
    for (hook, workload), m in measured.items():
        name = parse(hook).name
        base = {"name": f"{workload}/{size}/{name}", "hook": name, "workload": workload,
                "size": size}  # fmt: skip
        if "error" in m:
            out.append({**base, "delta_ns": None, "delta_ci95": None, "error": m["error"]})
        else:
            out.append({**base, **paired_claim(m["pairs"], margin)})
    return out


def _check_processes(args: argparse.Namespace) -> None:
    from readbench.errors import BadInput

    if args.processes < 8 and not args.no_overhead:
        raise BadInput(f"--processes {args.processes}: the exact paired test needs >= 8")


def collect_coverage(args: argparse.Namespace) -> dict[str, Any]:
    from readbench.analysis.recommend import (
        buffered_check,
        coverage_with_overheads,
        minimal_covers,
        sees_kind,
    )
    from readbench.measure import coverage, overhead
    from readbench.model.matrix import parse_size
    from readbench.model.schema import DEFAULT_MARGIN
    from readbench.model.workloads import get

    size = parse_size(args.size or "4K", "--size")
    _check_processes(args)
    cov, files = coverage.survey(args.workloads, size, args.data_dir)
    claims: list[dict[str, Any]] = []
    if not args.no_overhead:
        rows = {r["key"]: r for r in cov["points"]}
        live = [k for k in cov["kinds"] if not k.get("refused")]
        jobs = []
        for key in sorted({k for s in minimal_covers(cov) for k in s}):
            r = rows[key]
            seen = [k["workload"] for k in live if sees_kind(r, k)]
            on = next((w for w in seen if get(w).calibrate), seen[0])
            target = "file_permission" if r["via"] == "lsm" else r["target"]
            jobs.append((f"point:{r['via']}:{r['group'] or ''}/{target}", on))
        measured = overhead.measure_hooks(jobs, size, files, processes=args.processes,
                                          pairs=args.pairs, seed=args.seed)  # fmt: skip
        claims = _claims(measured, size, DEFAULT_MARGIN)
    cov = coverage_with_overheads(cov, claims)
    cov["buffered_check"] = buffered_check(
        cov, ("filemap/mm_filemap_get_pages", "filemap/mm_filemap_fault")
    )
    _note_emulated(cov)
    return cov


def _note_emulated(res: dict[str, Any]) -> None:
    """An emulated kernel (a guest under TCG): counts, attachability and arguments stay facts
    there, times do not; say so."""
    import sys

    from readbench.measure import machine

    if machine.emulated(res.get("virtualization") or {}):
        print(f"readbench: note: {machine.EMULATED_NOTE}", file=sys.stderr)


def collect(args: argparse.Namespace) -> dict[str, Any]:
    from readbench.analysis.recommend import atlas_with_overheads
    from readbench.measure import overhead, survey
    from readbench.model.hookspec import parse
    from readbench.model.matrix import check_workload, parse_size
    from readbench.model.points import control_hooks, hooks_for
    from readbench.model.schema import DEFAULT_MARGIN

    workload = check_workload(args.workload)
    size = parse_size(args.size or "64", "--size")
    _check_processes(args)
    res = survey.survey(workload, size, args.data_dir)
    claims: list[dict[str, Any]] = []
    if not args.no_overhead:
        from readbench.measure import datafiles

        hooks: list[str] = []
        for row in res["points"]:
            if row.get("silent"):
                continue  # attaches but never fires here: there is no cost to a read to measure
            # the types that can deny or modify a read have a cost of their own
            hooks += [h for h in hooks_for(row).values() if h] + list(control_hooks(row).values())
        files = {workload: datafiles.file_for(args.data_dir or datafiles.default_data_dir(),
                                              workload)[0]}  # fmt: skip
        measured = overhead.measure_hooks([(h, workload) for h in dict.fromkeys(hooks)], size,
                                          files, processes=args.processes, pairs=args.pairs,
                                          seed=args.seed)  # fmt: skip
        claims = _claims(measured, size, DEFAULT_MARGIN)
    res = atlas_with_overheads(res, claims)
    errors = {c["hook"]: c["error"] for c in claims if c.get("error")}
    for row in res["points"] if claims else []:
        for body, hook in hooks_for(row).items():
            if hook and not row.get("silent"):
                row.setdefault("overhead_hooks", {})[body] = hook
                if parse(hook).name in errors:
                    row.setdefault("overhead_errors", {})[body] = errors[parse(hook).name]
    _note_emulated(res)
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
