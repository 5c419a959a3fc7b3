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
from readbench.analysis.program_time import bpf_rows
from readbench.analysis.recommend import atlas_with_overheads, coverage_with_overheads
from readbench.analysis.stats import analyze_loaded
from readbench.model import layers
from readbench.model.guest import emulated_note
from readbench.model.matrix import cell_order, cell_slug
from readbench.render import figures, flame
from readbench.store.load import (
    RunData,
    load_run,
    load_sides,
    machine_info,
    matrix_blocks,
    run_alpha,
    run_margin,
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
    env.globals["emulated_note"] = emulated_note
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


def build_context(
    run_dir: Path,
    analysis: dict[str, Any],
    manifest: dict[str, Any],
    values: dict[str, Any] | None = None,
) -> dict[str, Any]:
    alpha, margin = analysis["alpha"], analysis["margin"]
    comps, aa = analysis["comparisons"], analysis["aa"]
    sides = load_sides(run_dir)
    perf: list[dict[str, Any]] = sorted(sides.perf, key=lambda p: cell_order(p["cell"]))  # type: ignore[arg-type]
    for p in perf:
        # unsupported counters have no value: listing them as 0 would be a made-up number
        p["counter_list"] = [
            {"name": c["name"], "value": c["value"], "hardware": bool(c.get("hardware"))}
            for c in p.get("counters") or []
            if c.get("value") is not None
        ]
        # the anatomy is derived here from the pass's samples (and, for a run recorded before
        # the call chains, from its sampled functions), so every report uses one taxonomy
        p["anatomy"] = anatomy.of_perf(p) if p.get("counting") else p.get("anatomy")
    claims = analysis.get("comparisons", [])
    atlases = [atlas_with_overheads(a, claims) for a in sides.atlas]  # type: ignore[arg-type]
    cov = coverage_with_overheads(sides.coverage, claims) if sides.coverage else None  # type: ignore[arg-type]
    # one list of refusals for the atlas and the coverage tables
    notes = refusal_notes([*atlases, *([cov] if cov else [])])
    copy = sides.copy or {"results": []}
    copy_results = copy["results"]
    bpf = bpf_rows(sides.bpf, comps)
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
    anatomy_rows = [p for p in perf if p.get("anatomy")]
    for p in anatomy_rows:
        p["anatomy_by_layer"] = {x["layer"]: x for x in p["anatomy"]["layers"]}
    counters_hw = [c["hardware"] for p in perf for c in p["counter_list"]]
    # every table lists cells by workload, then size as a number, then hook
    keys = ("cells", "comparisons", "aa")
    by_cell = {k: sorted(analysis[k], key=lambda c: cell_order(c["name"])) for k in keys}
    return {
        "title": f"readbench report — {analysis['run_id']}",
        "a": {**analysis, **by_cell},
        "manifest": manifest,
        "synthetic": manifest.get("synthetic"),
        "machine": m,
        "matrix": manifest.get("matrix") or {},
        "blocks": matrix_blocks(manifest.get("matrix") or {}),
        "unavailable": manifest.get("unavailable") or [],
        "failed": manifest.get("failed") or [],
        "side_failures": manifest.get("side_failures") or [],
        "timing_notes": manifest.get("timing_notes") or [],
        "perf": perf,
        "software_counters_only": bool(counters_hw) and not any(counters_hw),
        "copy_results": copy_results,
        "copy_skipped": copy.get("skipped") or [],
        "bpf": bpf,
        "calibration": sides.calibration,
        "guest": sides.guest,
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
        tree = anatomy.call_tree(p) if a else None
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
                ok = bool(v.get("available"))
                note = None
                if not ok:
                    reason = str(v.get("reason") or "refused")
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
