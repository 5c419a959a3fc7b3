"""HTML report of one run: `write_report(run_dir, out_dir) -> Path` (design §7).

One self-contained index.html: figures are PNG data: URIs, CSS is inline, there is
no script, and a Content-Security-Policy forbids any fetch, so the page works
offline and cannot leak. Every string from the results directory goes through
jinja2 autoescaping.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from readbench.analysis import anatomy
from readbench.analysis.recommend import atlas_with_overheads, coverage_with_overheads
from readbench.analysis.stats import analyze_loaded
from readbench.model import layers
from readbench.model.matrix import cell_order, cell_slug
from readbench.render import figures, flame
from readbench.store.load import (
    RunData,
    load_run,
    machine_info,
    matrix_blocks,
    perf_side_files,
    read_side_json,
    run_alpha,
    run_margin,
    side_files,
)
from readbench.store.rundir import atomic_write_text

# Content-Security-Policy: no network, images only from data: URIs, no scripts.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'none'"


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("readbench.render", "templates"),
        autoescape=True,  # every label from input is escaped, whatever the template extension
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num
    env.filters["pval"] = _pval
    env.filters["pct"] = _pct
    env.filters["size"] = figures.size_label
    return env


def _num(x: Any, digits: int = 1) -> str:
    if x is None:
        return "–"
    if isinstance(x, (int, float)):
        return f"{x:,.{digits}f}"
    return str(x)


def _pval(x: Any) -> str:
    if x is None:
        return "–"
    return f"{x:.2g}" if x >= 1e-4 else f"{x:.1e}"


def _pct(x: Any, digits: int = 1) -> str:
    return "–" if x is None else f"{x * 100:.{digits}f} %"


def render(template: str, **ctx: Any) -> str:
    return _env().get_template(template).render(csp=CSP, **ctx)


def _counters(obj: Any) -> list[dict[str, Any]]:
    """perf counters as {name, value, hardware}; accepts a mapping or a list."""
    if isinstance(obj, dict):
        items = [
            {"name": k, **(v if isinstance(v, dict) else {"value": v})} for k, v in obj.items()
        ]
    elif isinstance(obj, list):
        items = [v for v in obj if isinstance(v, dict)]
    else:
        return []
    return [
        {
            "name": str(i.get("name", "?")),
            "value": i.get("value"),
            "hardware": i.get("hardware", i.get("kind") == "hardware"),
        }
        for i in items
    ]


def _programs(snapshot: Any) -> list[dict[str, Any]]:
    progs = snapshot.get("programs") if isinstance(snapshot, dict) else None
    if isinstance(progs, dict):
        progs = [{"name": k, **v} for k, v in progs.items() if isinstance(v, dict)]
    if not isinstance(progs, list):
        return []
    return [p for p in progs if isinstance(p, dict)]


def _program_totals(snapshot: Any) -> dict[str, tuple[int, int]]:
    """{program key: (run_cnt, run_time_ns)}; keyed by id when present, else name."""
    out = {}
    for p in _programs(snapshot):
        key = str(p.get("id", p.get("name", "?")))
        out[key] = (int(p.get("run_cnt") or 0), int(p.get("run_time_ns") or 0))
    return out


def _delta_totals(obj: dict[str, Any]) -> tuple[int, int, bool]:
    """(run_cnt, run_time_ns) of the measured loop: snapshot − snapshot_before
    (totals count from program load); False when there are no programs."""
    after = _program_totals(obj.get("snapshot"))
    before = _program_totals(obj.get("snapshot_before"))
    run_cnt = sum(v[0] - before.get(k, (0, 0))[0] for k, v in after.items())
    run_ns = sum(v[1] - before.get(k, (0, 0))[1] for k, v in after.items())
    return run_cnt, run_ns, bool(after)


def bpf_rows(run_dir: Path, comps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Split each hooked cell's Δ into BPF program time and mechanism time.

    program ns/op = (run_time_ns − floor ns/run × run_cnt) / ops, where the floor is
    the same program with a never-matching filter (what the stats' own clock reads
    and the dispatch cost inside the measured span); without a floor in the side file
    the raw run_time_ns is used and said so. mechanism = Δ (timing pass) − program."""
    by_name = {c["name"]: c for c in comps}
    rows = []
    for obj in side_files(run_dir, "bpf"):
        run_cnt, run_ns, has_progs = _delta_totals(obj)
        ops = obj.get("ops")
        ok = isinstance(ops, (int, float)) and ops > 0 and has_progs
        floor = obj.get("floor") if isinstance(obj.get("floor"), dict) else None
        floor_per_run = None
        if floor is not None:
            f_cnt, f_ns, f_ok = _delta_totals(floor)
            if f_ok and f_cnt > 0:
                floor_per_run = f_ns / f_cnt
        raw_ns = run_ns / ops if ok else None
        program_ns = raw_ns
        if ok and floor_per_run is not None:
            program_ns = (run_ns - floor_per_run * run_cnt) / ops
        c = by_name.get(obj["cell"], {})
        delta = c.get("delta_ns")
        rows.append(
            {
                "cell": obj["cell"],
                "workload": obj["workload"],
                "size": obj["size"],
                "hook": obj["hook"],
                "programs": [str(p.get("name", "?")) for p in _programs(obj.get("snapshot"))],
                "run_cnt": run_cnt,
                "runs_per_op": run_cnt / ops if ok else None,
                "ns_per_run": run_ns / run_cnt if run_cnt else None,
                "floor_ns_per_run": floor_per_run,
                "raw_program_ns": raw_ns,
                "program_ns": program_ns,
                "side_ns_per_op": obj.get("ns_per_op"),
                "delta_ns": delta,
                "mechanism_ns": (delta - program_ns)
                if delta is not None and program_ns is not None
                else None,
                "significant": c.get("significant"),
            }
        )
    return rows


def build_context(
    run_dir: Path,
    analysis: dict[str, Any],
    manifest: dict[str, Any],
    values: dict[str, Any] | None = None,
) -> dict[str, Any]:
    alpha, margin = analysis["alpha"], analysis["margin"]
    comps, aa = analysis["comparisons"], analysis["aa"]
    perf = sorted(perf_side_files(run_dir), key=lambda p: cell_order(p["cell"]))
    for p in perf:
        # unsupported counters have no value: listing them as 0 would be a made-up number
        p["counter_list"] = [c for c in _counters(p.get("counters")) if c["value"] is not None]
        # the anatomy is derived here from the pass's samples (and, for a run recorded before
        # the call chains, from its sampled functions), so every report uses one taxonomy
        p["anatomy"] = anatomy.layers(p) if p.get("counting") else p.get("anatomy")
    calibration = read_side_json(run_dir / "calibration.json")
    claims = analysis.get("comparisons", [])
    atlases = [atlas_with_overheads(a, claims) for a in side_files(run_dir, "atlas")]
    cov = read_side_json(run_dir / "coverage.json")
    cov = coverage_with_overheads(cov, claims) if isinstance(cov, dict) else None
    # one list of refusals for the atlas and the coverage tables
    notes = refusal_notes([*atlases, *([cov] if cov else [])])
    copy = read_side_json(run_dir / "copy.json")
    copy = copy if isinstance(copy, dict) else {}
    copy_results = [r for r in copy.get("results") or [] if isinstance(r, dict)]
    bpf = bpf_rows(run_dir, comps)
    figs = {
        "anatomy": figures.anatomy(perf),
        "overhead": figures.overhead_vs_size(comps, margin),
        "heatmap": figures.overhead_heatmap(comps, alpha),
        "dist": figures.distributions(analysis["cells"]),
        "ecdf": figures.ecdfs(analysis["cells"], values or {}),
        "copyfrac": figures.copy_fraction(perf),
        "copysweep": figures.copy_strategies(copy_results),
        "progmech": figures.program_vs_mechanism(bpf),
        "aa": figures.aa_forest(aa, analysis.get("aa_uncorrected_rate"), alpha),
        "coverage": figures.coverage_heatmap(cov),
    }
    m = machine_info(manifest)
    anatomy_rows = [p for p in perf if isinstance(p.get("anatomy"), dict)]
    for p in anatomy_rows:
        p["anatomy_by_layer"] = {x["layer"]: x for x in p["anatomy"]["layers"]}
    counters_hw = [c["hardware"] for p in perf for c in p["counter_list"]]
    # every table lists cells by workload, then size as a number, then hook
    keys = [k for k in ("cells", "comparisons", "aa") if isinstance(analysis.get(k), list)]
    by_cell = {k: sorted(analysis[k], key=lambda c: cell_order(c["name"])) for k in keys}
    return {
        "title": f"readbench report — {analysis['run_id']}",
        "a": {**analysis, **by_cell},
        "manifest": manifest,
        "synthetic": manifest.get("synthetic"),
        "machine": m,
        "matrix": manifest.get("matrix") or {},
        "blocks": matrix_blocks(manifest.get("matrix") or {}),
        "unavailable": [u for u in manifest.get("unavailable") or [] if isinstance(u, dict)],
        "failed": [f for f in manifest.get("failed") or [] if isinstance(f, dict)],
        "side_failures": [f for f in manifest.get("side_failures") or [] if isinstance(f, dict)],
        "timing_notes": [str(n) for n in manifest.get("timing_notes") or []],
        "perf": perf,
        "software_counters_only": bool(counters_hw) and not any(counters_hw),
        "copy_results": copy_results,
        "copy_skipped": [s for s in copy.get("skipped") or [] if isinstance(s, dict)],
        "bpf": bpf,
        "calibration": calibration if isinstance(calibration, dict) else None,
        "atlases": atlases,
        "refusal_notes": notes,
        "coverage": cov,
        "anatomy_rows": anatomy_rows,
        "anatomy_layers": _shown_layers(anatomy_rows),
        "layer_short": layers.SHORT,
        "other_limit": anatomy.OTHER_LIMIT,
        "callpaths": call_paths(perf),
        "icicle_css": Markup(flame.css()),  # constants only: no input reaches it
        "figs": figs,
        "alpha": alpha,
        "margin": margin,
    }


def _shown_layers(rows: list[dict[str, Any]]) -> list[str]:
    """The layers with time in any cell of the anatomy table, in read-path order."""
    seen = {x["layer"] for p in rows for x in p["anatomy"]["layers"] if x["ns"] > 0}
    return [n for n in layers.NAMES if n in seen]


def call_paths(perf: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per workload (sorted), per size: the icicle of its call chains and its measured
    paths (to the copy routine, to the device)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for p in perf:
        a = p.get("anatomy")
        tree = anatomy.call_tree(p) if isinstance(a, dict) else None
        if tree is None or a is None:
            continue
        frames, height = flame.layout(tree, a["cpu_ns_per_read"])
        dw = a.get("device_wait") or {}
        out.setdefault(p["workload"], []).append(
            {
                "id": "icicle-" + cell_slug(p["cell"]),
                "cell": p["cell"],
                "size": p["size"],
                "frames": frames,
                "width": flame.WIDTH,
                "height": height,
                "samples": tree["samples"],
                "min_pct": flame.MIN_FRACTION * 100,
                "ns_per_read": a["ns_per_read"],
                "cpu_ns_per_read": a["cpu_ns_per_read"],
                "paths": a.get("paths") or [],
                "device_ns": dw.get("measured_ns"),
            }
        )
    return [{"workload": w, "cells": cells} for w, cells in sorted(out.items())]


def refusal_notes(atlases: list[dict[str, Any]]) -> list[str]:
    """Each distinct refusal of the atlases once, as numbered notes: every point gets
    `attach_summary`, its attach types grouped by verdict as (types, available, note
    number or None), so a row names a refusal by its number. A refusal that differs from
    another only by the point it names (libbpf quotes the target) is the same refusal: the
    note says ‹point› there."""
    notes: dict[str, int] = {}
    for at in atlases:
        for row in at.get("points", []):
            groups: dict[tuple[bool, int | None], list[str]] = {}
            target = str(row.get("target") or "")
            for t, v in (row.get("attach") or {}).items():
                ok = bool(isinstance(v, dict) and v.get("available"))
                note = None
                if not ok:
                    reason = str(v.get("reason") if isinstance(v, dict) else v) or "refused"
                    if len(target) > 3:
                        reason = reason.replace(target, "‹point›")
                    note = notes.setdefault(reason, len(notes) + 1)
                groups.setdefault((ok, note), []).append(str(t))
            row["attach_summary"] = [(", ".join(ts), ok, n) for (ok, n), ts in groups.items()]
    return list(notes)


def report_dir(run_dir: Path, out_dir: Path, run_id: str) -> Path:
    """`reports/` -> `reports/<run-id>/`; a directory already named after the run is
    used as is, so both `write_report(run, Path("reports"))` and
    `write_report(run, Path("reports") / run_id)` land in the same place."""
    out_dir = Path(out_dir)
    return out_dir if out_dir.name in (run_id, Path(run_dir).name) else out_dir / run_id


def write_report(
    run_dir: Path,
    out_dir: Path,
    *,
    alpha: float | None = None,
    margin: float | None = None,
    analysis: dict[str, Any] | None = None,
    loaded: RunData | None = None,
) -> Path:
    """Analyze `run_dir` (unless `analysis` is given) and write
    `<out_dir>/<run-id>/index.html` plus `analysis.json` next to it. Returns the
    index.html path. α and the margin default to the run's own (manifest `analysis`).
    `loaded`: the run as store.load.load_run() read it, when the caller has it already."""
    run_dir = Path(run_dir)
    run = loaded if loaded is not None else load_run(run_dir)
    manifest = run.manifest
    if analysis is None:
        alpha = run_alpha(manifest) if alpha is None else alpha
        margin = run_margin(manifest) if margin is None else margin
        analysis = analyze_loaded(run, alpha=alpha, margin=margin)
    run_id = str(analysis.get("run_id") or run_dir.name)
    # a run id is a directory name: keep only the last path component
    safe_id = Path(run_id).name or run_dir.name
    dest = report_dir(run_dir, out_dir, safe_id)
    # raw values for the ECDFs; the analysis only keeps per-process summaries
    values = {name: cell.runs for name, cell in run.cells.items()}
    ctx = build_context(run_dir, analysis, manifest, values)
    html = render("report.html.j2", **ctx)
    atomic_write_text(dest / "analysis.json", json.dumps(analysis, indent=1))
    atomic_write_text(dest / "index.html", html)
    return dest / "index.html"
