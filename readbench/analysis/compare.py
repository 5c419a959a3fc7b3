"""Compare runs: the same cells side by side across machines or configurations
(e.g. a CPU with ERMS vs one without, a boot with clearcpuid=erms,fsrm, two kernels).

Tested exactly like hook overhead inside a run (readbench.analysis.stats): per-process
medians, two-sided Mann-Whitney U, Hodges-Lehmann Δ, ratio with a two-level
bootstrap CI, Welch t on logs as a cross-check, Holm over every cross-run claim of
this compare (one family, separate from each run's own claims).

The first run is the reference (A); every other run is compared against it. Cells
present in only one run are listed, never guessed or interpolated.

Public API:
    compare_runs(run_dirs, alpha=0.01, margin=0.02) -> dict   (JSON-able)
    write_compare(result, out_dir) -> Path                     (index.html)
    rich_table(result) -> rich.table.Table
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table
from rich.text import Text

from readbench.analysis import paired
from readbench.analysis.stats import (
    DEFAULT_BOOT,
    analyze_loaded,
    apply_family,
    cell_rng,
    compare_groups,
    holm,
    json_clean,
)
from readbench.errors import BadInput
from readbench.render import figures
from readbench.render.report import machine_info, matrix_blocks, perf_side_files, render
from readbench.store.load import CellData, RunData, load_run
from readbench.store.rundir import atomic_write_text

SCHEMA = "readbench.compare/1"


def _labels(runs: list[RunData]) -> list[str]:
    labels: list[str] = []
    for i, r in enumerate(runs):
        base = str(r.manifest.get("run_id") or r.run_dir.name)
        labels.append(base if base not in labels else f"{base} ({i + 1})")
    return labels


def _matrix_axes(run: RunData) -> list[str]:
    # blocks as canonical JSON strings so two matrices compare regardless of block order
    return sorted(
        json.dumps(b, sort_keys=True) for b in matrix_blocks(run.manifest.get("matrix") or {})
    )


def compare_runs(
    run_dirs: Sequence[Path],
    alpha: float = 0.01,
    margin: float = 0.02,
    *,
    n_boot: int = DEFAULT_BOOT,
    seed: int = 0,
) -> dict[str, Any]:
    if len(run_dirs) < 2:
        raise BadInput(f"compare needs at least two run directories (got {len(run_dirs)})")
    if not 0 < alpha < 1:
        raise BadInput(f"alpha {alpha}: must be in (0, 1)")
    runs = [load_run(Path(d)) for d in run_dirs]
    labels = _labels(runs)
    emulated = [machine_info(r.manifest)["emulated"] for r in runs]
    if any(emulated) and not all(emulated):
        tcg = [lab for lab, e in zip(labels, emulated, strict=True) if e]
        hw = [lab for lab, e in zip(labels, emulated, strict=True) if not e]
        raise BadInput(
            f"compare: {', '.join(tcg)} ran on an emulated CPU (QEMU TCG: emulated times) and "
            f"{', '.join(hw)} on hardware: their times cannot be set against each other; "
            "compare emulated runs with each other, or hardware runs with each other"
        )
    ref = runs[0]
    # claims of all pairs go into one Holm family; rows keep a pointer to their pair
    rows: list[dict[str, Any]] = []
    pairs: list[dict[str, Any]] = []
    for k, other in enumerate(runs[1:], start=1):
        a_names = {n for n, c in ref.cells.items() if not c.aa_copy}
        b_names = {n for n, c in other.cells.items() if not c.aa_copy}
        common = [n for n in ref.cells if n in a_names & b_names]
        notes = []
        same_matrix = _matrix_axes(ref) == _matrix_axes(other) and a_names == b_names
        if not same_matrix:
            notes.append(
                f"runs have different matrices or finished cells: compared on the "
                f"{len(common)} cells present in both; {len(a_names - b_names)} only in "
                f"{labels[0]}, {len(b_names - a_names)} only in {labels[k]} (listed, not compared)"
            )
        if not common:
            notes.append("no common cells: nothing to compare")
        pair_rows = []
        for name in common:
            ca, cb = ref.cells[name], other.cells[name]
            c = compare_groups(
                ca.runs, cb.runs, margin=margin, n_boot=n_boot, rng=cell_rng(f"{name}|{k}", seed)
            )
            row = {
                "name": name,
                "pair": k,
                "a": labels[0],
                "b": labels[k],
                "workload": ca.workload,
                "size": ca.size,
                "buf_offset": ca.buf_offset,
                "hook": ca.hook,
                **c,
            }
            pair_rows.append(row)
            rows.append(row)
        pairs.append(
            {
                "a": labels[0],
                "b": labels[k],
                "index": k,
                "common": len(common),
                "only_in_a": sorted(a_names - b_names),
                "only_in_b": sorted(b_names - a_names),
                "same_matrix": same_matrix,
                "notes": notes,
            }
        )
    apply_family(rows, alpha, margin, m_label="cross-run claims")
    changes: list[dict[str, Any]] = []
    change_skipped: list[dict[str, Any]] = []
    for k, other in enumerate(runs[1:], start=1):
        rows_k, skipped_k = overhead_changes(ref, other, k, labels, alpha)
        changes += rows_k
        change_skipped += [{**s, "pair": k} for s in skipped_k]
    _finish_changes(changes, alpha)
    for r in rows:
        if r["significant"]:
            r["verdict"] = "B slower" if r["delta_ns"] > 0 else "B faster"

    # each run's own hook overhead, side by side: does a hook cost more on B?
    analyses = [analyze_loaded(r, alpha, margin, n_boot=n_boot, seed=seed) for r in runs]
    ov: dict[str, list[dict[str, Any] | None]] = {}
    for i, an in enumerate(analyses):
        for c in an["comparisons"]:
            ov.setdefault(c["name"], [None] * len(runs))[i] = {
                "overhead_pct": c["overhead_pct"],
                "overhead_ci95_pct": c["overhead_ci95_pct"],
                "delta_ns": c["delta_ns"],
                "verdict": c["verdict"],
            }
    result = {
        "schema": SCHEMA,
        "alpha": alpha,
        "margin": margin,
        "n_boot": n_boot,
        "runs": [
            {
                "label": labels[i],
                "run_id": r.manifest.get("run_id"),
                "run_dir": str(r.run_dir),
                "synthetic": r.manifest.get("synthetic"),
                "machine": _machine_brief(r),
                "n_cells": len(r.cells),
                "significant_hook_claims": analyses[i]["significant"],
                "aa_false_positive_rate": analyses[i]["aa_false_positive_rate"],
            }
            for i, r in enumerate(runs)
        ],
        "emulated": all(emulated),
        "pairs": pairs,
        "rows": rows,
        "n_claims": sum(r["p"] is not None for r in rows),
        "significant": sum(r["significant"] for r in rows),
        "hook_overhead": [{"name": n, "per_run": v} for n, v in ov.items()],
        "overhead_change": changes,
        "overhead_change_skipped": change_skipped,
    }
    return json_clean(result)


def _log_ratios(cell: CellData) -> np.ndarray:
    """Per-process median log(on/off) of a paired cell: the statistic the run tested."""
    return np.array([float(np.median(np.log(on / off))) for off, on in cell.pairs])


def overhead_changes(
    ref: RunData, other: RunData, k: int, labels: list[str], alpha: float
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Did a hook's relative cost change between runs (e.g. with vs without ERMS)? The
    interaction of the paired designs: each run gives one median log(on/off) per process;
    the change is the Hodges-Lehmann shift between the two runs' sets, tested with the exact
    Mann-Whitney U. The caller applies Holm and sets the simultaneous interval level.
    Returns the rows and the hooked cells it skipped, with the reason."""
    rows, skipped = [], []
    for name, ha in ref.cells.items():
        if ha.aa_copy or ha.hook == "none":
            continue
        hb = other.cells.get(name)
        if hb is None:
            skipped.append({"name": name, "reason": f"not measured in {labels[k]}"})
            continue
        missing = [lab for lab, c in ((labels[0], ha), (labels[k], hb)) if not c.pairs]
        if missing:
            skipped.append(
                {"name": name, "reason": f"not paired in {', '.join(missing)} (older run)"}
            )
            continue
        la, lb = _log_ratios(ha), _log_ratios(hb)
        rows.append(
            {
                "name": name,
                "pair": k,
                "a": labels[0],
                "b": labels[k],
                "n_a": len(la),
                "n_b": len(lb),
                "overhead_a_pct": math.expm1(paired.pseudo_median(la)) * 100,
                "overhead_b_pct": math.expm1(paired.pseudo_median(lb)) * 100,
                "change_ratio": math.exp(paired.shift_estimate(la, lb)),
                "p": paired.shift_p(la, lb),
                "min_p": 2 / math.comb(len(la) + len(lb), len(la)),
                "_la": la,
                "_lb": lb,
            }
        )
    return rows, skipped


def _finish_changes(rows: list[dict[str, Any]], alpha: float) -> None:
    """Holm over the change claims; intervals at 1 − α/m (Bonferroni), so all of them hold
    at once with probability ≥ 1 − α: a flag that an interval excludes 1 is then a claim."""
    m = len(rows)
    p_holm = holm([r["p"] for r in rows], alpha) if rows else []
    level = 1 - alpha / max(m, 1)
    for r, ph in zip(rows, p_holm, strict=True):
        ci = paired.shift_ci(r.pop("_la"), r.pop("_lb"), level)
        r["change_ci"] = [math.exp(x) for x in ci] if ci else None
        r["change_ci_level"] = level
        r["p_holm"] = float(ph)
        r["significant"] = bool(ph < alpha)
        r["family_size"] = m


def _machine_brief(run: RunData) -> dict[str, Any]:
    m = machine_info(run.manifest)
    return {
        "cpu_model": m["cpu_model"],
        "kernel": m["kernel"],
        "copy_routine": m["routine"],
        "flags": {f: on for f, on in m["key_flags"]},
        "vm": m["vm"],
        "emulated": m["emulated"],
        "accel": m["accel"],
        "cpu_model_asked": m["guest_cpu"],
        # the share of each baseline cell's read() samples in the copy (its perf pass)
        "copy_share": [
            {
                "cell": c["cell"],
                "copy_fraction": c.get("copy_fraction"),
                "copy_symbol": c.get("copy_symbol"),
                "method": c.get("method"),
            }
            for c in perf_side_files(run.run_dir)
        ],
    }


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("._") or "run"


def write_compare(result: dict[str, Any], out_dir: Path) -> Path:
    """Write `<out_dir>/compare-<A>-vs-<B>…/index.html` (+ compare.json); returns it."""
    name = "compare-" + "-vs-".join(_slug(r["label"]) for r in result["runs"])
    dest = Path(out_dir) / name[:180]
    figs = []
    for p in result["pairs"]:
        rows = [r for r in result["rows"] if r["pair"] == p["index"]]
        figs.append(figures.compare_forest(rows, f"{p['b']} vs {p['a']}", f"fig-cmp-{p['index']}"))
    html = render(
        "compare.html.j2",
        title="readbench compare — " + " vs ".join(r["label"] for r in result["runs"]),
        r=result,
        figs=figs,
    )
    atomic_write_text(dest / "compare.json", json.dumps(result, indent=1))
    atomic_write_text(dest / "index.html", html)
    return dest / "index.html"


def _fmt(x: Any, spec: str) -> str:
    return "–" if x is None else format(x, spec)


def rich_table(result: dict[str, Any]) -> Table:
    labels = (
        " vs ".join(r["label"] for r in result["runs"][1:]) + f" vs {result['runs'][0]['label']}"
    )
    t = Table(
        title=Text(
            f"readbench compare: {labels} (Holm over {result['n_claims']} cross-run claims, "
            f"α = {result['alpha']:g})"
        ),
        show_lines=False,
    )
    many = len(result["pairs"]) > 1
    for col, j in (
        ("cell", "left"),
        *([("B vs A", "left")] if many else []),
        ("n A/B", "right"),
        ("A median ns", "right"),
        ("B median ns", "right"),
        ("Δ ns (HL)", "right"),
        ("ratio B/A [95% CI]", "right"),
        ("p MWU", "right"),
        ("p Holm", "right"),
        ("verdict", "left"),
    ):
        t.add_column(col, justify=j)  # type: ignore[arg-type]
    for r in result["rows"]:
        style = "bold red" if r["significant"] else ("green" if r["equivalent"] else "")
        lo, hi = r["ratio_ci95"]
        # Text(): names come from input files and must not be read as rich markup
        t.add_row(
            Text(r["name"]),
            *([Text(f"{r['b']} / {r['a']}")] if many else []),
            f"{r['n_a']}/{r['n_b']}",
            _fmt(r["median_a_ns"], ",.1f"),
            _fmt(r["median_b_ns"], ",.1f"),
            _fmt(r["delta_ns"], "+,.1f"),
            f"{r['ratio']:.4f} [{lo:.4f}, {hi:.4f}]",
            _fmt(r["p"], ".2g"),
            _fmt(r["p_holm"], ".2g"),
            Text(r["verdict"]),
            style=style,
        )
    notes = [n for p in result["pairs"] for n in p["notes"]]
    for p in result["pairs"]:
        if p["only_in_a"]:
            notes.append(f"only in {p['a']}: " + ", ".join(p["only_in_a"]))
        if p["only_in_b"]:
            notes.append(f"only in {p['b']}: " + ", ".join(p["only_in_b"]))
    if notes:
        t.caption = Text("\n".join(notes))
    return t


def rich_change_table(result: dict[str, Any]) -> Table | None:
    """Hook overhead in each run and its change B/A (Holm-tested, simultaneous CI)."""
    rows = result.get("overhead_change") or []
    if not rows:
        return None
    t = Table(title=Text("hook overhead change between runs (paired overheads, Holm)"))
    cols = ("hooked cell", "B vs A", "n A/B", "overhead A %", "overhead B %", "ratio B/A [CI]",
            "p Holm")  # fmt: skip
    for col in cols:
        t.add_column(col, justify="left" if col in ("hooked cell", "B vs A") else "right")
    for c in rows:
        ci = c["change_ci"]
        t.add_row(
            Text(c["name"]),
            Text(f"{c['b']} / {c['a']}"),
            f"{c['n_a']}/{c['n_b']}",
            f"{c['overhead_a_pct']:+.2f}",
            f"{c['overhead_b_pct']:+.2f}",
            f"{c['change_ratio']:.4f} " + (f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "[–]"),
            f"{c['p_holm']:.2g}",
            style="bold red" if c["significant"] else "",
        )
    return t
