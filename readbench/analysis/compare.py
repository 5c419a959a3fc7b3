"""Compare runs: the same cells side by side across machines or configurations
(e.g. a CPU with ERMS vs one without, a boot with clearcpuid=erms,fsrm, two kernels).

Two designs:
- one run per configuration (compare_runs): the first run is the reference (A), every
  other run is compared against it with per-process medians as the unit: two-sided exact
  Mann-Whitney U, the ratio as exp(Hodges-Lehmann shift of log per-process medians) with a
  two-level bootstrap 95 % interval, Welch t on logs as a cross-check. Processes of one boot
  are not replicates of a configuration: these p-values are within-boot, and the result
  says so (`within_boot`, `unit_note`).
- several runs per side (compare_sides): the run, one boot, is the unit (Welch t over
  run-level log medians), so between-boot variance is in the test.
Either way Δ ns is the ratio's estimate and interval times A's median, Holm runs over every
cross-run claim of this compare (one family, separate from each run's own claims), and a
hook's paired overhead change between runs is tested as well. Cells present in only one
run are listed, never guessed or interpolated.

Public API:
    compare_runs(run_dirs, alpha=0.01, margin=0.02) -> dict   (JSON-able)
    compare_sides(a_dirs, b_dirs, alpha=0.01, margin=0.02) -> dict
The page and the terminal tables are readbench.render.compare's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

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
from readbench.model.schema import check_alpha
from readbench.store.load import (
    CellSamples,
    RunData,
    load_run,
    machine_info,
    matrix_blocks,
    perf_side_files,
)

SCHEMA = "readbench.compare/1"
WITHIN_BOOT_NOTE = (
    "one run per side: between-boot variance is not sampled. The p-values are within-boot: "
    "they treat the worker processes of one boot as replicates of its configuration, so they "
    "test this boot against that boot, and are anti-conservative for the configurations "
    "(a reboot alone moves a read by more than processes within one boot vary). Give each "
    "side several runs, each from its own boot: readbench compare A1 A2 A3 -- B1 B2 B3"
)


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


def _load_runs(run_dirs: Sequence[Path]) -> tuple[list[RunData], list[str], list[bool]]:
    """The runs, their labels, and whether each was emulated; emulated runs are never set
    against hardware runs (TCG times are not hardware times)."""
    runs = [load_run(Path(d)) for d in run_dirs]
    labels = _labels(runs)
    emulated = [bool(machine_info(r.manifest)["emulated"]) for r in runs]
    if any(emulated) and not all(emulated):
        tcg = [lab for lab, e in zip(labels, emulated, strict=True) if e]
        hw = [lab for lab, e in zip(labels, emulated, strict=True) if not e]
        raise BadInput(
            f"compare: {', '.join(tcg)} ran on an emulated CPU (QEMU TCG: emulated times) and "
            f"{', '.join(hw)} on hardware: their times cannot be set against each other; "
            "compare emulated runs with each other, or hardware runs with each other"
        )
    return runs, labels, emulated


def _hook_overheads(analyses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each run's own hook overheads, side by side: does a hook cost more on B?"""
    ov: dict[str, list[dict[str, Any] | None]] = {}
    for i, an in enumerate(analyses):
        for c in an["comparisons"]:
            ov.setdefault(c["name"], [None] * len(analyses))[i] = {
                "overhead_pct": c["overhead_pct"],
                "overhead_ci95_pct": c["overhead_ci95_pct"],
                "delta_ns": c["delta_ns"],
                "verdict": c["verdict"],
            }
    return [{"name": n, "per_run": v} for n, v in ov.items()]


def _run_entries(
    runs: list[RunData], labels: list[str], analyses: list[dict[str, Any]], n_a: int | None
) -> list[dict[str, Any]]:
    """One line per run; `n_a`: the first n_a runs are side A, the rest side B."""
    return [
        {
            "label": labels[i],
            **({} if n_a is None else {"side": "A" if i < n_a else "B"}),
            "run_id": r.manifest.get("run_id"),
            "run_dir": str(r.run_dir),
            "synthetic": r.manifest.get("synthetic"),
            "machine": _machine_brief(r),
            "n_cells": len(r.cells),
            "significant_hook_claims": analyses[i]["significant"],
            "aa_false_positive_rate": analyses[i]["aa_false_positive_rate"],
        }
        for i, r in enumerate(runs)
    ]


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
    check_alpha(alpha, "alpha")
    runs, labels, emulated = _load_runs(run_dirs)
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
    apply_family(rows, alpha, margin, m_label="cross-run claims", kind="runs")
    changes: list[dict[str, Any]] = []
    change_skipped: list[dict[str, Any]] = []
    for k, other in enumerate(runs[1:], start=1):
        rows_k, skipped_k = overhead_changes(ref, other, k, labels, alpha)
        changes += rows_k
        change_skipped += [{**s, "pair": k} for s in skipped_k]
    _finish_changes(changes, alpha)

    analyses = [
        analyze_loaded(r, alpha, margin, n_boot=n_boot, seed=seed, variance=False) for r in runs
    ]
    result = {
        "schema": SCHEMA,
        "unit": "worker process (within-boot)",
        "within_boot": True,
        "unit_note": WITHIN_BOOT_NOTE,
        "alpha": alpha,
        "margin": margin,
        "n_boot": n_boot,
        "runs": _run_entries(runs, labels, analyses, None),
        "emulated": all(emulated),
        "pairs": pairs,
        "rows": rows,
        "n_claims": sum(r["p"] is not None for r in rows),
        "significant": sum(r["significant"] for r in rows),
        "hook_overhead": _hook_overheads(analyses),
        "overhead_change": changes,
        "overhead_change_skipped": change_skipped,
    }
    return json_clean(result)


def _log_ratios(cell: CellSamples) -> np.ndarray:
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
                "min_p": paired.shift_min_p(len(la), len(lb)),
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


def _run_level(runs: list[RunData], name: str) -> np.ndarray:
    """log of each run's median of per-process medians for one cell."""
    return np.array([math.log(float(np.median([np.median(v) for v in r.cells[name].runs])))
                     for r in runs])  # fmt: skip


def _run_overheads(analyses: list[dict[str, Any]], name: str) -> np.ndarray | None:
    vals = []
    for an in analyses:
        c = next((c for c in an["comparisons"] if c["name"] == name), None)
        if c is None or c.get("design") != "paired" or c.get("ratio") is None:
            return None
        vals.append(math.log(c["ratio"]))
    return np.array(vals)


def _welch(la: np.ndarray, lb: np.ndarray, level: float) -> tuple[float, list[float], float]:
    """Welch's t on run-level logs: (p, CI of the log shift at `level`, pooled SD)."""
    from scipy import stats as sps

    va, vb = float(np.var(la, ddof=1)), float(np.var(lb, ddof=1))
    na, nb = len(la), len(lb)
    d = float(np.mean(lb) - np.mean(la))
    se = math.sqrt(va / na + vb / nb)
    if se == 0:
        return (1.0 if d == 0 else 0.0), [d, d], 0.0
    df = (va / na + vb / nb) ** 2 / (
        (va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1) if va + vb > 0 else 1
    )
    p = float(2 * sps.t.sf(abs(d) / se, df))
    q = float(sps.t.ppf(1 - (1 - level) / 2, df))
    return p, [d - q * se, d + q * se], math.sqrt((va + vb) / 2)


def _between_boot_rows(
    a_runs: list[RunData], b_runs: list[RunData], common: list[str], labels: tuple[str, str]
) -> list[dict[str, Any]]:
    """One row per common cell: Welch t over the runs' log medians (uncorrected)."""
    rows = []
    for name in common:
        la, lb = _run_level(a_runs, name), _run_level(b_runs, name)
        p, ci, sd = _welch(la, lb, 0.95)
        cell = a_runs[0].cells[name]
        med_a = math.exp(float(np.mean(la)))
        ratio = math.exp(float(np.mean(lb) - np.mean(la)))
        rows.append(
            {
                "name": name, "pair": 1, "a": labels[0], "b": labels[1],
                "workload": cell.workload, "size": cell.size, "buf_offset": cell.buf_offset,
                "hook": cell.hook, "design": "between-boot",
                "test": "Welch t over run-level log medians (the run is the unit)",
                "n_a": len(la), "n_b": len(lb),
                "median_a_ns": med_a, "median_b_ns": math.exp(float(np.mean(lb))),
                "ratio": ratio, "ratio_ci95": [math.exp(x) for x in ci],
                "delta_ns": (ratio - 1) * med_a,
                "overhead_pct": (ratio - 1) * 100,
                "overhead_ci95_pct": [math.expm1(x) * 100 for x in ci],
                "p": p, "p_mwu": paired.shift_p(la, lb), "p_welch_log": p,
                "effect_size": None, "p_tost": None, "min_p": 0.0, "sd_log": sd,
                "_la": la, "_lb": lb, "note": "",
            }
        )  # fmt: skip
    return rows


def _simultaneous(rows: list[dict[str, Any]], alpha: float) -> None:
    """After Holm: each row's interval at 1 − α/m beside its decision."""
    level = 1 - alpha / max(len(rows), 1)
    for r in rows:
        _, ci, _ = _welch(r.pop("_la"), r.pop("_lb"), level)
        r["ci_simultaneous_level"] = level
        r["ratio_ci_simultaneous"] = [math.exp(x) for x in ci]
        r["delta_ci95"] = [(x - 1) * r["median_a_ns"] for x in r["ratio_ci95"]]


def _between_boot_changes(
    a_runs: list[RunData],
    analyses: list[dict[str, Any]],
    common: list[str],
    labels: tuple[str, str],
    alpha: float,
) -> list[dict[str, Any]]:
    """Did a hook's paired overhead change between the sides? Welch t over the runs' log
    ratios, Holm over the hooks, intervals at 1 − α/m."""
    n_a = len(a_runs)
    changes = []
    for name in common:
        if a_runs[0].cells[name].hook == "none":
            continue
        oa = _run_overheads(analyses[:n_a], name)
        ob = _run_overheads(analyses[n_a:], name)
        if oa is None or ob is None:
            continue
        changes.append({"name": name, "pair": 1, "a": labels[0], "b": labels[1],
                        "n_a": len(oa), "n_b": len(ob),
                        "overhead_a_pct": math.expm1(float(np.mean(oa))) * 100,
                        "overhead_b_pct": math.expm1(float(np.mean(ob))) * 100,
                        "change_ratio": math.exp(float(np.mean(ob) - np.mean(oa))),
                        "p": _welch(oa, ob, 0.95)[0], "_la": oa, "_lb": ob})  # fmt: skip
    m = len(changes)
    p_holm = holm([c["p"] for c in changes], alpha) if changes else []
    for c, ph in zip(changes, p_holm, strict=True):
        lvl = 1 - alpha / max(m, 1)
        _, ci, _ = _welch(c.pop("_la"), c.pop("_lb"), lvl)
        c.update(change_ci=[math.exp(x) for x in ci], change_ci_level=lvl, p_holm=float(ph),
                 significant=bool(ph < alpha), family_size=m)  # fmt: skip
    return changes


def compare_sides(
    a_dirs: Sequence[Path],
    b_dirs: Sequence[Path],
    alpha: float = 0.01,
    margin: float = 0.02,
    *,
    n_boot: int = DEFAULT_BOOT,
    seed: int = 0,
) -> dict[str, Any]:
    """Side A (several runs, each its own boot) against side B. The unit is the run: each
    run gives one number per cell (log of its median of per-process medians; for a hook's
    overhead, log of its paired ratio), and the sides are compared with Welch's t on those
    (an exact Mann-Whitney over runs, beside it, cannot reach α below 2/C(n_a+n_b, n_a):
    0.1 at 3 runs a side). Holm over the cells; ratio intervals at 95 % and, beside the
    decision, simultaneous at 1 − α/m. With one run per side it is compare_runs, labelled
    within-boot."""
    if not a_dirs or not b_dirs:
        raise BadInput("compare A… -- B…: each side needs at least one run directory")
    if len(a_dirs) == 1 and len(b_dirs) == 1:
        return compare_runs([a_dirs[0], b_dirs[0]], alpha, margin, n_boot=n_boot, seed=seed)
    if min(len(a_dirs), len(b_dirs)) < 2:
        raise BadInput(
            f"compare A… -- B…: side A has {len(a_dirs)} run(s) and side B {len(b_dirs)}: the "
            "between-boot test needs at least 2 runs on each side (or exactly one per side "
            "for the within-boot comparison)"
        )
    check_alpha(alpha, "alpha")
    all_runs, labels, emulated = _load_runs([*a_dirs, *b_dirs])
    n_a = len(a_dirs)
    a_runs, b_runs = all_runs[:n_a], all_runs[n_a:]
    side_labels = (f"A ({len(a_runs)} runs)", f"B ({len(b_runs)} runs)")

    def names(rs: list[RunData]) -> set[str]:
        return set.intersection(*({n for n, c in r.cells.items() if not c.aa_copy} for r in rs))

    na_, nb_ = names(a_runs), names(b_runs)
    common = [n for n in a_runs[0].cells if n in na_ & nb_]
    rows = _between_boot_rows(a_runs, b_runs, common, side_labels)
    apply_family(rows, alpha, margin, m_label="cross-run claims", kind="runs")
    _simultaneous(rows, alpha)
    analyses = [
        analyze_loaded(r, alpha, margin, n_boot=n_boot, seed=seed, variance=False) for r in all_runs
    ]
    result = {
        "schema": SCHEMA,
        "unit": "run (one boot per run)",
        "within_boot": False,
        "unit_note": (
            f"{len(a_runs)} runs against {len(b_runs)}: each run is one boot, and the tests "
            "compare runs, so the p-values include between-boot variance"
        ),
        "alpha": alpha,
        "margin": margin,
        "n_boot": n_boot,
        "sides": {"a": labels[:n_a], "b": labels[n_a:]},
        "emulated": all(emulated),
        "runs": _run_entries(all_runs, labels, analyses, n_a),
        "pairs": [
            {
                "a": side_labels[0],
                "b": side_labels[1],
                "index": 1,
                "common": len(common),
                "only_in_a": sorted(na_ - nb_),
                "only_in_b": sorted(nb_ - na_),
                "same_matrix": na_ == nb_,
                "notes": [],
            }
        ],
        "rows": rows,
        "n_claims": sum(r["p"] is not None for r in rows),
        "significant": sum(r["significant"] for r in rows),
        "hook_overhead": _hook_overheads(analyses),
        "overhead_change": _between_boot_changes(a_runs, analyses, common, side_labels, alpha),
        "overhead_change_skipped": [],
    }
    return json_clean(result)
