"""Calibration of the paired hook test on this machine (pure: numbers in, numbers out).

The claims' own design: every trial is one paired claim of n processes and k blocks, tested
as a run tests a hook, at α/m for a family of m claims. From the trials:

- the MDE the run would print (paired.mde under the null spread of the trials, the same
  estimator the claims use, analysis.paired.null_spread: the median over trials, and each
  trial's own), and the power it predicts at each injected effect (the mean over that
  arm's trials of the exact test's power under each trial's own null spread), beside the
  detection rate observed there, with its exact binomial interval; they agree when the
  prediction lies inside that interval;
- the A/A sham trials' false-positive rate, uncorrected at α (the test's size) and at α/m,
  each with its exact interval; a warning when the interval's lower bound exceeds α.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from readbench.analysis import paired
from readbench.analysis.stats import POWER, binomial_ci, paired_claim
from readbench.model.schema import DEFAULT_MARGIN

DEFAULT_MULTIPLES = (1.0, 1.5, 2.0)


def trial_claim(pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """The numbers of one trial that calibration keeps (JSON-able)."""
    c = paired_claim(pairs, margin=DEFAULT_MARGIN)  # the margin is unused by what is kept
    lr = np.asarray(c["process_log_ratio"])
    return {
        "n": c["n_processes"],
        "blocks": c["blocks_per_process"],
        "p": c["p"],
        "log_effect": paired.pseudo_median(lr),
        "delta_ns": c["delta_ns"],
        "median_off_ns": c["median_a_ns"],
        "sd_null": c["sd_null"],
        "sd_log": c["sd_log"],
    }


def predicted_mde_log(sd_null: float, n: int, alpha: float, m: int) -> float | None:
    return paired.mde(sd_null, n, alpha / max(m, 1))


def effects_from_mde(mde_log: float, multiples: list[float]) -> list[float]:
    """Injected slowdowns (percent of a read) at multiples of the MDE."""
    return [math.expm1(k * mde_log) * 100 for k in multiples]


def _rate(k: int, n: int) -> dict[str, Any]:
    return {"count": k, "of": n, "rate": k / n if n else None, "rate_ci95": binomial_ci(k, n)}


def summarize(
    trials: list[dict[str, Any]],
    *,
    alpha: float,
    family_size: int,
    effects: list[dict[str, Any]],
    pooled_aa: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """trials: {"arm": "aa" | "dX", **trial_claim}; effects: [{"arm", "effect_pct",
    "multiple"}] in order. Returns the `mde_check`, `aa` and `warnings` parts."""
    m = max(family_size, 1)
    level = alpha / m
    n = int(np.median([t["n"] for t in trials]))
    sd_pool = float(np.median([t["sd_null"] for t in trials if t["sd_null"] is not None]))
    mde_log = paired.mde(sd_pool, n, level)
    # the MDE each trial would have printed as a claim: their spread shows the load's
    mdes = [paired.mde(t["sd_null"], t["n"], level) for t in trials if t["sd_null"] is not None]
    mdes_pct = [math.expm1(x) * 100 for x in mdes if x is not None]
    rows = []
    for e in effects:
        ts = [t for t in trials if t["arm"] == e["arm"]]
        if not ts:
            continue
        det = sum(bool(t["p"] <= level and t["log_effect"] > 0) for t in ts)
        realized = float(np.median([t["log_effect"] for t in ts]))
        nominal = math.log1p(e["effect_pct"] / 100)
        # Each trial faced its own noise (a shared machine's load comes and goes) and power
        # is far from linear in it: the expected detection rate is the mean of each trial's
        # power at the realized effect under that trial's own null spread.
        pred = float(np.mean([paired.power(realized, t["sd_null"], t["n"], level) for t in ts]))
        rate = _rate(det, len(ts))
        lo, hi = rate["rate_ci95"]
        rows.append(
            {
                **e,
                "trials": len(ts),
                "detected": det,
                "observed_rate": rate["rate"],
                "observed_ci95": rate["rate_ci95"],
                "realized_pct": math.expm1(realized) * 100,
                "predicted_power": pred,
                "predicted_power_nominal": float(
                    np.mean([paired.power(nominal, t["sd_null"], t["n"], level) for t in ts])
                ),
                "predicted_power_pooled_spread": paired.power(realized, sd_pool, n, level),
                "agree": bool(lo <= pred <= hi),
                "injected_ns": float(np.median([t["median_off_ns"] for t in ts]))
                * e["effect_pct"]
                / 100,
                "delta_ns_median": float(np.median([t["delta_ns"] for t in ts])),
            }
        )
    aa = [t for t in trials if t["arm"] == "aa"]
    fp = sum(t["p"] < alpha for t in aa)
    fp_m = sum(t["p"] < level for t in aa)
    aa_out = {
        "claims": len(aa),
        "uncorrected": {"alpha": alpha, **_rate(fp, len(aa))},
        "at_family_level": {"alpha": level, **_rate(fp_m, len(aa))},
        "p_values": [t["p"] for t in aa],
    }
    warnings = []
    parts = (("this calibration", aa_out["uncorrected"]),
             ("every calibration stored for this machine", pooled_aa))  # fmt: skip
    for what, part in parts:
        ci = (part or {}).get("rate_ci95")
        if part and ci and ci[0] > alpha:
            warnings.append(
                f"A/A sham toggle, {what}: {part['count']} of {part['of']} significant at "
                f"α = {alpha:g} uncorrected (exact 95 % CI {ci[0]:.1%}–{ci[1]:.1%}): the lower "
                "bound exceeds α, so toggling itself moves the read here"
            )
    bad = [r for r in rows if not r["agree"]]
    if bad:
        warnings.append(
            "predicted power outside the observed 95 % interval at "
            + ", ".join(f"{r['multiple']:g}× MDE" for r in bad)
            + ": the MDE the run prints is not this machine's"
        )
    return {
        "family_size": m,
        "level": level,
        "n_processes": n,
        "sd_null_pooled": sd_pool,
        "mde_pct": math.expm1(mde_log) * 100 if mde_log is not None else None,
        "mde_pct_per_trial": {
            "median": float(np.median(mdes_pct)) if mdes_pct else None,
            "min": min(mdes_pct) if mdes_pct else None,
            "max": max(mdes_pct) if mdes_pct else None,
        },
        "power_target": POWER,
        "mde_check": rows,
        "agree": bool(rows) and all(r["agree"] for r in rows),
        "aa": aa_out,
        "aa_pooled": pooled_aa,
        "warnings": warnings,
    }


def pool_aa(records: list[dict[str, Any]], alpha: float) -> dict[str, Any]:
    """Every stored A/A trial of one design on this machine, at α uncorrected."""
    ps = [r["p"] for r in records if r.get("arm") == "aa" and r.get("p") is not None]
    out = _rate(sum(p < alpha for p in ps), len(ps))
    # how many trials a clean machine needs before the interval's upper end is ≤ 2α
    # (0 false positives: the exact upper bound is 1 − 0.025^(1/n))
    out["trials_for_2alpha"] = math.ceil(math.log(0.025) / math.log(1 - 2 * alpha))
    return {"alpha": alpha, **out}
