"""Where a paired claim's variance comes from (issue 14): a linear mixed model of every value
of a paired cell, fitted with statsmodels MixedLM (REML):

    log time ~ arm + position + after_toggle + (1 + arm | process) + (1 | process:block)

arm: 1 with the hook attached; position: the value's place in its block (0 or 1);
after_toggle: 1 when the previous value of the process had the other arm (a link was just
attached or detached and a settling batch ran), 0 when the same arm ran twice across a block
boundary. It separates the within-block residual (what a uniform overhead is judged
against), the block-to-block drift, the between-process spread of the baseline, and the
between-process SD of the hook's effect (a hook whose cost differs between processes: buffer
placement, CPU, a second mode), and tests position and carry-over, which the random block
order should have made zero. Needs the block orders the paired worker stores
(`readbench_block_orders`); runs without them say so."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

MODEL = "log time ~ arm + position + after_toggle + (1 + arm | process) + (1 | process:block)"


def _frame(pairs: Sequence[tuple[np.ndarray, np.ndarray]], orders: Sequence[Sequence[str]]):  # type: ignore[no-untyped-def]
    import pandas as pd

    rows = []
    for p, ((off, on), order) in enumerate(zip(pairs, orders, strict=True)):
        prev = None
        for j, blk in enumerate(order):
            for pos, tok in enumerate(blk):
                arm = int(tok)  # arms are stored as indices: 0 = off, 1 = on
                y = math.log((on if arm else off)[j])
                rows.append(
                    {"process": p, "block": j, "arm": arm, "position": pos,
                     "after_toggle": int(prev is not None and prev != arm), "y": y}
                )  # fmt: skip
                prev = arm
    return pd.DataFrame(rows)


def _valid(pairs: Sequence[tuple[np.ndarray, np.ndarray]], orders: Sequence[Sequence[str]]) -> str:
    if not orders or len(orders) != len(pairs):
        return "no block orders stored for this cell (a run made before they were recorded)"
    for (off, _on), order in zip(pairs, orders, strict=True):
        if len(order) != len(off) or any(sorted(b) != ["0", "1"] for b in order):
            return "block orders do not match the values (not an off/on paired cell)"
    if len(pairs) < 3:
        return f"{len(pairs)} processes: too few for a between-process variance"
    return ""


def decompose(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    orders: Sequence[Sequence[str]],
    *,
    sd_null: float | None = None,
) -> dict[str, Any]:
    """The fit's components in percent of the read (SDs on the log scale × 100), with
    Wald tests of position and carry-over. `sd_null`: the claim's null spread of one
    process's statistic, to judge whether the effect varies between processes by more than
    one process can resolve."""
    why = _valid(pairs, orders)
    if why:
        return {"available": False, "reason": why, "model": MODEL}
    import statsmodels.formula.api as smf

    df = _frame(pairs, orders)
    fixed = "y ~ arm + position + after_toggle"
    if df["after_toggle"].nunique() < 2:
        fixed = "y ~ arm + position"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter; `converged` is reported
        try:
            model = smf.mixedlm(fixed, df, groups="process", re_formula="~arm",
                                vc_formula={"block": "0 + C(block)"})  # fmt: skip
            fit = model.fit(reml=True)
        except (ValueError, np.linalg.LinAlgError) as e:
            return {"available": False, "reason": f"MixedLM failed: {e}", "model": MODEL}
    cov = np.asarray(fit.cov_re)
    tau = math.sqrt(max(float(cov[1, 1]), 0.0))
    sd_proc = math.sqrt(max(float(cov[0, 0]), 0.0))
    sd_block = math.sqrt(max(float(np.asarray(fit.vcomp)[0]), 0.0)) if len(fit.vcomp) else 0.0
    sd_res = math.sqrt(float(fit.scale))
    ci = fit.conf_int().loc["arm"].tolist()
    beta = float(fit.params["arm"])

    def term(name: str) -> dict[str, Any] | None:
        if name not in fit.params:
            return None
        lo, hi = fit.conf_int().loc[name].tolist()
        return {"pct": math.expm1(float(fit.params[name])) * 100,
                "ci95_pct": [math.expm1(lo) * 100, math.expm1(hi) * 100],
                "p": float(fit.pvalues[name])}  # fmt: skip

    # "Varies a lot": the per-process statistics spread more than the null spread of one
    # process's statistic explains (χ² test of Var(lr) = sd_null², at 0.01) and the fitted
    # between-process SD of the effect is a quarter of the effect or more.
    lr = np.array([float(np.median(np.log(on / off))) for off, on in pairs])
    hetero_p = None
    if sd_null is not None and math.isfinite(sd_null) and sd_null > 0:
        from scipy import stats as sps

        stat = (len(lr) - 1) * float(np.var(lr, ddof=1)) / sd_null**2
        hetero_p = float(sps.chi2.sf(stat, len(lr) - 1))
    hetero = bool(hetero_p is not None and hetero_p < 0.01 and tau >= 0.25 * abs(beta))
    out = {
        "available": True,
        "model": MODEL,
        "method": "statsmodels MixedLM, REML",
        "n_obs": len(df),
        "n_processes": int(df["process"].nunique()),
        "converged": bool(fit.converged),
        "effect_pct": math.expm1(beta) * 100,
        "effect_ci95_pct": [math.expm1(ci[0]) * 100, math.expm1(ci[1]) * 100],
        "residual_sd_pct": sd_res * 100,
        "block_sd_pct": sd_block * 100,
        "process_sd_pct": sd_proc * 100,
        "effect_sd_between_pct": tau * 100,
        "position": term("position"),
        "carryover": term("after_toggle"),
        "carryover_sentence": _carryover_sentence(term("after_toggle")),
        "heterogeneity_p": hetero_p,
        "heterogeneous": hetero,
        "sentence": (
            f"the hook's effect varies between processes: SD {tau * 100:.2f} % of the read "
            f"against an effect of {math.expm1(beta) * 100:+.2f} % (more than the noise of "
            f"one process explains, p = {hetero_p:.2g}); the pseudo-median is a typical "
            "process, not every process"
        )
        if hetero
        else "",
    }
    return out


def _carryover_sentence(t: dict[str, Any]) -> str:
    """A value right after a toggle that differs from one after the same arm (p < 0.01):
    attaching or detaching moved the next value, so the toggle is in the claim."""
    if t["p"] >= 0.01:
        return ""
    return (
        f"values right after a toggle differ by {t['pct']:+.1f} % (95% CI "
        f"{t['ci95_pct'][0]:+.1f} to {t['ci95_pct'][1]:+.1f} %, p = {t['p']:.2g}) from values "
        "after the same arm: attaching or detaching moves the next value on this read"
    )
