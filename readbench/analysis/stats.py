"""Statistics over one run's results directory (design §6, anchors §5).

The worker process is the unit of replication: values inside one pyperf run are
correlated, so every test works on per-process statistics. Paired hook claims (the design
since the paired worker) use exact one-sample statistics (analysis/paired.py): the signed-rank
test, the pseudo-median and its exact interval, with Δ ns derived from the ratio. Cell
summaries and unpaired claims (runs before the paired design, cross-run compare) take their
95 % intervals from a two-level bootstrap (resample processes, then values inside each
chosen process).

Public API:
    analyze_run(run_dir, alpha=0.01, margin=0.02) -> dict   (JSON-able)
    compare_groups(a_runs, b_runs, ...) -> dict             (one B-vs-A comparison, uncorrected)
    bootstrap_two_level(runs, ...) -> (medians, means)      (bootstrap replicates)
    paired.shift_estimate(a, b) -> float
    holm(pvalues) / bh(pvalues) -> adjusted p-values
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttost_ind

from readbench.analysis import machine_state, paired
from readbench.analysis.headline import headlines
from readbench.analysis.variance import decompose
from readbench.model.schema import OFF_SUFFIX, check_alpha, check_margin
from readbench.store.load import CellSamples, RunData, load_run

DEFAULT_BOOT = 2000
POWER = paired.POWER  # the MDE is the effect the exact test detects this often
SCHEMA = "readbench.analysis/1"


# --------------------------------------------------------------------------- estimators


def per_process_medians(runs: Sequence[np.ndarray]) -> np.ndarray:
    return np.array([float(np.median(r)) for r in runs])


def per_process_means(runs: Sequence[np.ndarray]) -> np.ndarray:
    return np.array([float(np.mean(r)) for r in runs])


def _padded(runs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    lens = np.array([len(r) for r in runs])
    mat = np.full((len(runs), int(lens.max())), np.nan)
    for i, r in enumerate(runs):
        mat[i, : len(r)] = r
    return mat, lens


def bootstrap_process_medians(
    runs: Sequence[np.ndarray], *, n_boot: int = DEFAULT_BOOT, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Two-level bootstrap: resample processes with replacement, then values with
    replacement inside each chosen process (libkalibera's scheme). Returns the
    replicates' per-process medians and means, each shaped (n_boot, n_processes)."""
    mat, lens = _padded(runs)
    p, vmax = mat.shape
    out_pm = np.empty((n_boot, p))
    out_pmean = np.empty((n_boot, p))
    # chunk so B×P×V stays near 4M floats whatever the run's size
    chunk = max(1, int(4_000_000 // max(1, p * vmax)))
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        procs = rng.integers(0, p, size=(b, p))
        n_i = lens[procs]  # (b, p)
        # ragged processes: draw an index below each process's own length
        idx = np.floor(rng.random((b, p, vmax)) * n_i[..., None]).astype(np.int64)
        vals = mat[procs[..., None], idx]  # (b, p, vmax); columns past n_i repeat draws
        mask = np.arange(vmax)[None, None, :] < n_i[..., None]
        vals = np.where(mask, vals, np.nan)
        out_pm[start : start + b] = np.nanmedian(vals, axis=2)
        out_pmean[start : start + b] = np.nanmean(vals, axis=2)
    return out_pm, out_pmean


def bootstrap_two_level(
    runs: Sequence[np.ndarray], *, n_boot: int = DEFAULT_BOOT, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Replicates of (median of per-process medians, mean of per-process means)."""
    pm, pmean = bootstrap_process_medians(runs, n_boot=n_boot, rng=rng)
    return np.median(pm, axis=1), np.mean(pmean, axis=1)


def bootstrap_hl_log(
    a_runs: Sequence[np.ndarray],
    b_runs: Sequence[np.ndarray],
    *,
    n_boot: int = DEFAULT_BOOT,
    rng: np.random.Generator,
) -> np.ndarray:
    """Replicates of the Hodges-Lehmann shift of log per-process medians (B over A),
    each arm resampled at both levels independently."""
    la = np.log(bootstrap_process_medians(a_runs, n_boot=n_boot, rng=rng)[0])
    lb = np.log(bootstrap_process_medians(b_runs, n_boot=n_boot, rng=rng)[0])
    out = np.empty(n_boot)
    # chunk the (B, nb, na) pairwise differences like the bootstrap itself
    chunk = max(1, int(4_000_000 // max(1, la.shape[1] * lb.shape[1])))
    for start in range(0, n_boot, chunk):
        sl = slice(start, min(n_boot, start + chunk))
        d = lb[sl, :, None] - la[sl, None, :]
        out[sl] = np.median(d.reshape(d.shape[0], -1), axis=1)
    return out


def _ci(reps: np.ndarray, level: float = 0.95) -> list[float]:
    lo, hi = np.quantile(reps, [(1 - level) / 2, 1 - (1 - level) / 2])
    return [float(lo), float(hi)]


def holm(pvalues: Sequence[float], alpha: float = 0.05) -> np.ndarray:
    p = np.asarray(pvalues, dtype=float)
    if p.size == 0:
        return p
    return multipletests(p, alpha=alpha, method="holm")[1]


def bh(pvalues: Sequence[float], alpha: float = 0.05) -> np.ndarray:
    p = np.asarray(pvalues, dtype=float)
    if p.size == 0:
        return p
    return multipletests(p, alpha=alpha, method="fdr_bh")[1]


def mde_pct(sd_log: float, n1: int, n2: int, alpha: float, power: float = POWER) -> float | None:
    """Minimum detectable effect (percent) of a two-sample test on log per-process
    medians: (t_{1-α/2} + t_{power}) · sd · √(1/n1 + 1/n2), df = n1+n2-2."""
    if n1 < 2 or n2 < 2 or not np.isfinite(sd_log):
        return None
    df = n1 + n2 - 2
    q = sps.t.ppf(1 - alpha / 2, df) + sps.t.ppf(power, df)
    return float((math.exp(q * sd_log * math.sqrt(1 / n1 + 1 / n2)) - 1) * 100)


def summarize_cell(
    runs: Sequence[np.ndarray], *, n_boot: int = DEFAULT_BOOT, rng: np.random.Generator
) -> tuple[dict[str, Any], np.ndarray]:
    """Per-cell numbers; also returns the bootstrap replicates of the median so a
    comparison can reuse them for the ratio CI."""
    med = per_process_medians(runs)
    means = per_process_means(runs)
    reps_med, reps_mean = bootstrap_two_level(runs, n_boot=n_boot, rng=rng)
    allv = np.concatenate(list(runs))
    sd_log = float(np.std(np.log(med), ddof=1)) if len(med) > 1 else float("nan")
    out = {
        "n_processes": len(runs),
        "n_values": int(allv.size),
        "median_ns": float(np.median(med)),
        "mean_ns": float(np.mean(means)),
        "ci95_ns": _ci(reps_med),
        "mean_ci95_ns": _ci(reps_mean),
        "min_ns": float(allv.min()),
        "process_median_ns": [float(x) for x in med],
        # CV of per-process medians: the between-process spread the tests see
        "cv_between_pct": float(sd_log * 100) if np.isfinite(sd_log) else None,
        # within-process spread (median over processes of each process's CV)
        "cv_within_pct": float(
            np.median([np.std(r, ddof=1) / np.mean(r) for r in runs if len(r) > 1]) * 100
        )
        if any(len(r) > 1 for r in runs)
        else None,
        # pyperf's own outlier rule (±50 % of the mean); flagged, never removed
        "outlier_processes": int(np.sum(np.abs(med - np.mean(med)) > 0.5 * np.mean(med))),
    }
    return out, reps_med


def compare_groups(
    a_runs: Sequence[np.ndarray],
    b_runs: Sequence[np.ndarray],
    *,
    margin: float = 0.02,
    n_boot: int = DEFAULT_BOOT,
    rng: np.random.Generator | None = None,
) -> dict[str, Any]:
    """B vs A (e.g. hooked vs baseline), uncorrected: the caller applies Holm over
    its family. Works with any number of processes; tests that need more report None
    and say why in `note`."""
    rng = rng or np.random.default_rng(0)
    a = per_process_medians(a_runs)
    b = per_process_medians(b_runs)
    na, nb = len(a), len(b)
    med_a, med_b = float(np.median(a)), float(np.median(b))
    la, lb = np.log(a), np.log(b)
    # The ratio is the Hodges-Lehmann shift on log per-process medians: the estimator
    # that goes with the Mann-Whitney test, and robust when processes fall into two
    # modes (a noisy host), where a ratio of medians jumps between the modes.
    log_ratio = paired.shift_estimate(la, lb)
    ratio = math.exp(log_ratio)
    log_ratio_reps = bootstrap_hl_log(a_runs, b_runs, n_boot=n_boot, rng=rng)
    out: dict[str, Any] = {
        "n_a": na,
        "n_b": nb,
        "median_a_ns": med_a,
        "median_b_ns": med_b,
        # one estimand: Δ is the ratio (and its interval) times A's median
        "delta_ns": (ratio - 1) * med_a,
        "delta_ci95": [float((x - 1) * med_a) for x in np.exp(_ci(log_ratio_reps))],
        "delta_hl_ns": paired.shift_estimate(a, b),  # the ns-scale shift, a cross-check
        "delta_median_ns": med_b - med_a,
        "ratio": ratio,
        "ratio_ci95": [float(x) for x in np.exp(_ci(log_ratio_reps))],
        # ratio of medians of per-process medians, shown as a cross-check
        "ratio_of_medians": med_b / med_a,
        "overhead_pct": (ratio - 1) * 100,
        "overhead_ci95_pct": [float((x - 1) * 100) for x in np.exp(_ci(log_ratio_reps))],
        "design": "unpaired",
        "test": "exact Mann-Whitney U over per-process medians",
        "p": None,
        "p_mwu": None,
        "u_stat": None,
        "prob_b_gt_a": None,
        "effect_size": None,
        "effect_size_name": "cliffs_delta",
        "p_welch_log": None,
        "p_brunner_munzel": None,
        "p_tost": None,
        "min_p": paired.shift_min_p(na, nb),
        "sd_log": None,
        "note": "",
    }
    notes = []
    if na >= 1 and nb >= 1 and (na + nb) >= 3:
        # Exact null distribution when there are no ties and it is cheap: scipy's "auto" only
        # goes exact below 8 per side, and the normal approximation's floor (1.8e-4 at 10 vs
        # 10, against 1.1e-5 exact) would cost power under Holm.
        ties = len(np.unique(np.concatenate([a, b]))) < na + nb
        method = "exact" if not ties and na + nb <= 60 else "auto"
        res = sps.mannwhitneyu(b, a, alternative="two-sided", method=method)
        u = float(res.statistic)
        out["p"] = out["p_mwu"] = float(res.pvalue)
        out["u_stat"] = u
        # U/(n1·n2) = P(B > A) + ½P(tie): the effect size pyperf #22 asked for
        out["prob_b_gt_a"] = u / (na * nb)
        out["effect_size"] = 2 * u / (na * nb) - 1
    else:
        notes.append(f"Mann-Whitney U needs ≥ 3 processes in total (have {na}+{nb})")
    if na >= 2 and nb >= 2:
        var_a, var_b = float(np.var(la, ddof=1)), float(np.var(lb, ddof=1))
        sd_log = math.sqrt((var_a + var_b) / 2)
        out["sd_log"] = sd_log
        with warnings.catch_warnings():
            # constant samples give NaN p-values with a RuntimeWarning; we report None
            warnings.simplefilter("ignore")
            lam, lbm = np.log(per_process_means(a_runs)), np.log(per_process_means(b_runs))
            if np.var(lam) + np.var(lbm) > 0:
                out["p_welch_log"] = float(sps.ttest_ind(lbm, lam, equal_var=False).pvalue)
            if var_a + var_b > 0:
                d = math.log1p(margin)
                out["p_tost"] = float(ttost_ind(lb, la, -d, d, usevar="unequal")[0])
            if na >= 3 and nb >= 3 and var_a + var_b > 0:
                p_bm = float(sps.brunnermunzel(b, a).pvalue)
                out["p_brunner_munzel"] = p_bm if np.isfinite(p_bm) else None
    else:
        notes.append(f"Welch t and TOST need ≥ 2 processes per arm (have {na} and {nb})")
    out["note"] = "; ".join(notes)
    return out


def paired_claim(pairs: Sequence[tuple[np.ndarray, np.ndarray]], margin: float) -> dict[str, Any]:
    """Hook on vs off inside each process (design §6), uncorrected: the caller applies Holm.

    One estimand: per process, the median over blocks of log(on/off). Across processes: the
    exact Wilcoxon signed-rank test, the pseudo-median as the estimate and its exact 95 %
    interval (the same null distribution, so it excludes 0 exactly when p ≤ 0.05). Δ ns is
    that ratio and interval times the hook-off median (the median of the per-process
    hook-off medians), so Δ and the ratio never disagree about "excludes no change"."""
    diffs = [np.log(on / off) for off, on in pairs]
    lr = np.array([float(np.median(d)) for d in diffs])
    dn = np.array([float(np.median(on - off)) for off, on in pairs])
    off_med = np.array([float(np.median(off)) for off, _ in pairs])
    on_med = np.array([float(np.median(on)) for _, on in pairs])
    n = len(lr)
    ci_lr = paired.pseudo_median_ci(lr)
    ratio = math.exp(paired.pseudo_median(lr)) if n else float("nan")
    base = float(np.median(off_med)) if n else None
    out: dict[str, Any] = {
        "design": "paired",
        "test": "exact Wilcoxon signed-rank over per-process median log(on/off)",
        "estimand": "per-process median log(on/off); Δ ns = (ratio − 1) × hook-off median",
        "n_a": n,
        "n_b": n,
        "n_processes": n,
        "n_pairs": int(sum(len(off) for off, _ in pairs)),
        "median_a_ns": base,
        "median_b_ns": float(np.median(on_med)) if n else None,
        "delta_ns": (ratio - 1) * base if base is not None else None,
        "delta_ci95": [math.expm1(x) * base for x in ci_lr] if ci_lr and base else None,
        "ratio": ratio,
        "ratio_ci95": [math.exp(x) for x in ci_lr] if ci_lr else None,
        "overhead_pct": (ratio - 1) * 100,
        "overhead_ci95_pct": [math.expm1(x) * 100 for x in ci_lr] if ci_lr else None,
        "p": paired.signed_rank_p(lr) if n else None,
        "p_tost": paired.tost_p(lr, math.log1p(margin)) if n else None,
        "min_p": paired.min_p(n),
        "sd_log": paired.robust_sd(lr) if n > 1 else None,
        # the noise a uniform overhead faces: within-process block differences, pooled
        "sd_null": paired.null_spread(diffs) if n > 1 else None,
        "blocks_per_process": int(np.median([len(d) for d in diffs])) if n else 0,
        "process_log_ratio": [float(x) for x in lr],
        # per-process median on − off (ns): shown in figures, not a second estimate
        "process_delta_ns": [float(x) for x in dn],
        "note": "" if ci_lr else f"{n} processes: too few for a 95 % interval",
    }
    return out


def _finite(x: Any) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def json_clean(obj: Any) -> Any:
    """JSON-able: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(obj, dict):
        return {str(k): json_clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def cell_rng(name: str, seed: int) -> np.random.Generator:
    # deterministic per cell so a report rebuilt from the same results is identical
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


# A significant negative hook overhead is a confound (something the toggle or the order
# changed), never a saving: this word goes everywhere a verdict is printed.
CONFOUND = "confound (faster with the hook)"


def verdict(c: dict[str, Any], margin: float, kind: str = "hook") -> str:
    """The claim's word. kind: "hook" (hook on vs off), "aa" (a sham toggle against
    nothing: any significant result is a false positive), "runs" (B vs A, across runs)."""
    if c.get("significant"):
        up = c["delta_ns"] > 0
        if kind == "aa":
            return "false positive (A/A: " + ("slower" if up else "faster") + ")"
        if kind == "runs":
            return "B slower" if up else "B faster"
        return "slower" if up else CONFOUND
    if c.get("equivalent"):
        return f"equivalent (±{margin * 100:g} %)"
    if c.get("underpowered"):
        return "underpowered"
    return "inconclusive"


def binomial_ci(k: int, n: int, level: float = 0.95) -> list[float] | None:
    """Exact (Clopper-Pearson) interval of a rate of k in n."""
    if n == 0:
        return None
    ci = sps.binomtest(k, n).proportion_ci(confidence_level=level, method="exact")
    return [float(ci.low), float(ci.high)]


def _paired_mde_pct(spread: Any, n: int, alpha: float) -> float | None:
    d = paired.mde(spread, n, alpha) if _finite(spread) else None
    return math.expm1(d) * 100 if d is not None else None


def apply_family(
    comps: list[dict[str, Any]],
    alpha: float,
    margin: float,
    *,
    m_label: str = "claims",
    kind: str = "hook",
) -> None:
    """Holm over the family for difference claims and, separately, for equivalence
    claims; BH q-values for the exploratory heatmap only; MDE at α/m (Holm's strictest
    step, what the family guarantees) for the test each claim used; and, for paired
    claims, the simultaneous interval at 1 − α/m (Bonferroni: all m hold at once with
    probability ≥ 1 − α; one that excludes no change implies Holm's rejection). Mutates
    `comps`."""
    idx = [i for i, c in enumerate(comps) if _finite(c.get("p"))]
    m = len(idx)
    p_holm = holm([comps[i]["p"] for i in idx], alpha)
    q_bh = bh([comps[i]["p"] for i in idx], alpha)
    for c in comps:
        c.update(p_holm=None, q_bh=None, significant=False, significant_bh=False)
    for j, i in enumerate(idx):
        comps[i]["p_holm"] = float(p_holm[j])
        comps[i]["q_bh"] = float(q_bh[j])
        comps[i]["significant"] = bool(p_holm[j] < alpha)
        comps[i]["significant_bh"] = bool(q_bh[j] < alpha)
    m_eff = max(m, 1)
    # Equivalence only where the one-sided exact tests can reach α/m at all: with fewer
    # processes "equivalent" could never be earned honestly (and TOST's error rate breaks).
    n_eq = paired.min_processes_for(alpha / m_eff)
    tidx = [
        i
        for i, c in enumerate(comps)
        if _finite(c.get("p_tost")) and min(c["n_a"], c["n_b"]) >= n_eq
    ]
    p_tost_holm = holm([comps[i]["p_tost"] for i in tidx], alpha)
    for c in comps:
        c.update(p_tost_holm=None, equivalent=False, equivalence_min_processes=n_eq)
    for j, i in enumerate(tidx):
        comps[i]["p_tost_holm"] = float(p_tost_holm[j])
        comps[i]["equivalent"] = bool(p_tost_holm[j] < alpha) and not comps[i]["significant"]
    level = 1 - alpha / m_eff
    for c in comps:
        lr = c.get("process_log_ratio")
        ci = paired.pseudo_median_ci(np.asarray(lr), level) if lr else None
        base = c.get("median_a_ns")
        c["ci_simultaneous_level"] = level
        c["ratio_ci_simultaneous"] = [math.exp(x) for x in ci] if ci else None
        c["delta_ci_simultaneous"] = [math.expm1(x) * base for x in ci] if ci and base else None
    for c in comps:
        sd = c.get("sd_log")
        c["family_size"] = m
        if c.get("design") == "paired":
            # MDE of a uniform overhead: the exact test's power against a shift under the
            # machine's noise (sd_null); and, beside it, under the claim's observed spread
            n, sd0 = c["n_processes"], c.get("sd_null")
            c["mde_pct"] = _paired_mde_pct(sd0, n, alpha / m_eff)
            c["mde_pct_unadjusted"] = _paired_mde_pct(sd0, n, alpha)
            c["mde_pct_observed_spread"] = _paired_mde_pct(sd, n, alpha / m_eff)
        else:
            c["mde_pct"] = mde_pct(sd, c["n_a"], c["n_b"], alpha / m_eff) if _finite(sd) else None
            c["mde_pct_unadjusted"] = (
                mde_pct(sd, c["n_a"], c["n_b"], alpha) if _finite(sd) else None
            )
        reasons = []
        if c["n_a"] < 2 or c["n_b"] < 2:
            reasons.append(f"only {c['n_a']} and {c['n_b']} processes")
        if c["min_p"] > alpha / m_eff:
            reasons.append(
                f"smallest attainable p {c['min_p']:.2g} > α/m = {alpha / m_eff:.2g} "
                f"(m = {m} {m_label})"
            )
        c["underpowered"] = bool(reasons)
        c["power_note"] = "; ".join(reasons)
        c["verdict"] = verdict(c, margin, kind)


# --------------------------------------------------------------------------- run


def baseline_of(cell: CellSamples, cells: dict[str, CellSamples]) -> CellSamples | None:
    """`W/S/HOOK` and `W/S/none#aa` compare against `W/S/none` of the same run."""
    for other in cells.values():
        if other.key == cell.key and other.hook == "none" and not other.aa_copy:
            return other
    return None


def _summaries(run: RunData, n_boot: int, seed: int) -> list[dict[str, Any]]:
    out = []
    for name, cell in run.cells.items():
        s, _ = summarize_cell(cell.runs, n_boot=n_boot, rng=cell_rng(name, seed))
        out.append({
            "name": name, "workload": cell.workload, "size": cell.size,
            "buf_offset": cell.buf_offset, "hook": cell.hook, "aa_copy": cell.aa_copy,
            "status": cell.status, **s,
        })  # fmt: skip
    return out


def _claims(
    run: RunData, margin: float, n_boot: int, seed: int, variance: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """Every hooked cell's claim and every A/A copy's, uncorrected, and the hooked cells
    with no baseline to compare against (unpaired runs only)."""
    comps: list[dict[str, Any]] = []
    aa: list[dict[str, Any]] = []
    no_baseline: list[str] = []
    for name, cell in run.cells.items():
        if cell.hook == "none" and not cell.aa_copy:
            continue
        if cell.pairs:  # the paired design: hook off and on inside each process
            base_name = name + OFF_SUFFIX
            c = paired_claim(cell.pairs, margin)
            if variance:
                c["variance"] = decompose(cell.pairs, cell.orders, sd_null=c["sd_null"])
        else:  # runs made before the paired design: hooked vs baseline cell, unpaired
            base = baseline_of(cell, run.cells)
            if base is None:
                no_baseline.append(name)
                continue
            base_name = base.name
            c = compare_groups(
                base.runs,
                cell.runs,
                margin=margin,
                n_boot=n_boot,
                rng=cell_rng(name + "|cmp", seed),
            )
        c = {
            "name": name, "baseline": base_name, "workload": cell.workload,
            "size": cell.size, "buf_offset": cell.buf_offset, "hook": cell.hook,
            "toggle": cell.toggle, **c,
        }  # fmt: skip
        (aa if cell.aa_copy else comps).append(c)
    return comps, aa, no_baseline


def _toggle_confounds(comps: list[dict[str, Any]], aa: list[dict[str, Any]]) -> list[str]:
    """A claim on a read whose A/A sham copy failed carries the toggle's own effect (the
    sham attaches and detaches like a hook and never fires): it is marked, with the A/A's
    Δ, for the headline and the claims table; one warning per such read."""
    failed = {(a["workload"], a["size"], a["buf_offset"]): a for a in aa if a.get("significant")}
    warnings = []
    for key, a in failed.items():
        ci = a.get("delta_ci95") or [a["delta_ns"], a["delta_ns"]]
        said = (
            f"the A/A sham toggle alone moved this read {a['delta_ns']:+.0f} ns (95% CI "
            f"{ci[0]:.0f} to {ci[1]:.0f}, {a['name']}): its Δ includes the toggle's own "
            "effect, a confound to find"
        )
        hit = [c for c in comps if (c["workload"], c["size"], c["buf_offset"]) == key]
        for c in hit:
            c["toggle_confound"] = {"aa": a["name"], "delta_ns": a["delta_ns"],
                                    "delta_ci95": ci, "sentence": said}  # fmt: skip
        if hit:
            warnings.append(f"{len(hit)} claim(s) on {a['name'].split('#')[0]}: {said}")
    return warnings


def _aa_summary(run: RunData, aa: list[dict[str, Any]], alpha: float) -> dict[str, Any]:
    """The A/A family's rates (after apply_family): Holm-adjusted, uncorrected with its
    exact interval (the one that means something: Holm makes the other ~0 by
    construction), and what a pooled-values t-test would have flagged."""
    rate = unc = pooled_rate = unc_ci = None
    n_tested = 0
    if aa:
        rate = sum(c["significant"] for c in aa) / len(aa)
        tested = [c for c in aa if _finite(c["p"])]
        n_tested = len(tested)
        k = sum(c["p"] < alpha for c in tested)
        unc = k / n_tested if tested else None
        unc_ci = binomial_ci(k, n_tested)
        # pyperf compare_to's style: shows why the process, not the value, is the unit
        pooled = []
        for c in aa:
            cell = run.cells[c["name"]]
            if cell.pairs:
                va = np.concatenate([off for off, _ in cell.pairs])
                vb = np.concatenate([on for _, on in cell.pairs])
            else:
                va = np.concatenate(run.cells[c["baseline"]].runs)
                vb = np.concatenate(cell.runs)
            if va.size > 1 and vb.size > 1 and np.var(va) + np.var(vb) > 0:
                pooled.append(float(sps.ttest_ind(vb, va, equal_var=False).pvalue) < alpha)
        pooled_rate = sum(pooled) / len(pooled) if pooled else None
    warning = None
    if unc_ci and unc_ci[0] > alpha:  # a lower bound above α: the procedure's size is broken
        warning = (
            f"A/A: {unc:.1%} of {n_tested} sham-toggle claims significant uncorrected "
            f"(exact 95 % CI {unc_ci[0]:.1%}–{unc_ci[1]:.1%}), above α = {alpha:g}: "
            "toggling itself moves the read here, so hook claims near their MDE are suspect"
        )
    return {
        "aa_false_positive_rate": rate,
        "aa_uncorrected_rate": unc,
        "aa_uncorrected_ci95": unc_ci,
        "aa_toggle": sorted({c.get("toggle") or "nothing" for c in aa}),
        "aa_warning": warning,
        "aa_pooled_values_rate": pooled_rate,
        "aa_n": len(aa),
    }


def analyze_loaded(
    run: RunData,
    alpha: float = 0.01,
    margin: float = 0.02,
    *,
    n_boot: int = DEFAULT_BOOT,
    seed: int = 0,
    variance: bool = True,
) -> dict[str, Any]:
    """`variance`: fit each paired cell's mixed model (analysis.variance; about 0.4 s a
    cell); compare, which only reads verdicts, turns it off."""
    check_alpha(alpha, "alpha")
    check_margin(margin, "margin")
    comps, aa, no_baseline = _claims(run, margin, n_boot, seed, variance)
    apply_family(comps, alpha, margin)
    # A/A is its own family: it calibrates the procedure, it makes no claims
    apply_family(aa, alpha, margin, m_label="A/A comparisons", kind="aa")
    aa_summary = _aa_summary(run, aa, alpha)
    toggle_warnings = _toggle_confounds(comps, aa)
    state = run.manifest.get("system_state")
    ncpu = ((run.manifest.get("probe") or {}).get("cpu") or {}).get("count")
    heterogeneous = [
        {"name": c["name"], "sentence": c["variance"]["sentence"]}
        for c in comps
        if (c.get("variance") or {}).get("heterogeneous")
    ]
    result = {
        "schema": SCHEMA,
        "run_id": run.manifest.get("run_id", run.run_dir.name),
        "run_dir": str(run.run_dir),
        "status": run.manifest.get("status"),
        "alpha": alpha,
        "margin": margin,
        "power": POWER,
        "n_boot": n_boot,
        "cells": _summaries(run, n_boot, seed),
        "comparisons": comps,
        "aa": aa,
        "n_claims": sum(_finite(c["p"]) for c in comps),
        "significant": sum(c["significant"] for c in comps),
        "equivalent": sum(c["equivalent"] for c in comps),
        "underpowered": sum(c["underpowered"] for c in comps),
        "headlines": headlines(comps, margin),
        "heterogeneous": heterogeneous,
        **aa_summary,
        "no_data": run.no_data,
        "no_baseline": no_baseline,
        "unlisted": run.unlisted,
        "matrix_alpha": (run.manifest.get("matrix", {}) or {}).get("alpha"),
        "machine_state": {
            "recorded": bool(state),
            "summary": machine_state.summarize(state),
            "settings": (state or {}).get("settings"),
            "before": (state or {}).get("before"),
            "warnings": machine_state.warnings(state, ncpu),
        },
    }
    result["warnings"] = [
        *([aa_summary["aa_warning"]] if aa_summary["aa_warning"] else []),
        *toggle_warnings,
        *(
            f"{c['name']}: {c['variance']['carryover_sentence']}"
            for c in comps
            if (c.get("variance") or {}).get("carryover_sentence")
        ),
        *(f"{h['name']}: {h['sentence']}" for h in heterogeneous),
        *(f"machine state: {w}" for w in result["machine_state"]["warnings"]),
    ]
    return json_clean(result)


def analyze_run(
    run_dir: Path,
    alpha: float = 0.01,
    margin: float = 0.02,
    *,
    n_boot: int = DEFAULT_BOOT,
    seed: int = 0,
) -> dict[str, Any]:
    """Statistics of one results directory (see module doc). JSON-able dict with
    `cells`, `comparisons`, `aa`, `significant`, `aa_false_positive_rate`, `alpha`,
    `margin` and more. Raises BadInput for a missing or malformed run directory."""
    return analyze_loaded(load_run(Path(run_dir)), alpha, margin, n_boot=n_boot, seed=seed)
