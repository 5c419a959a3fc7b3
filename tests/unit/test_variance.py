"""The mixed model of a paired cell (readbench.analysis.variance) recovers the components a
SYNTHETIC model put in (generated numbers, not measurements), and reads the block orders a
run stores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from readbench.analysis import stats, variance
from tests.synthetic_runs import write_run


def _cell(rng: np.random.Generator, tau: float, position: float = 0.0, n: int = 16, k: int = 8):  # type: ignore[no-untyped-def]
    """log time = process + block drift + arm × (1 % + process's own deviation, SD tau)
    + position + 0.5 % noise."""
    pairs, orders = [], []
    for _ in range(n):
        proc, eff = rng.normal(0, 0.05), 0.01 + rng.normal(0, tau)
        off, on, order = np.empty(k), np.empty(k), []
        for j in range(k):
            drift = rng.normal(0, 0.01)
            blk = "01" if rng.random() < 0.5 else "10"
            order.append(blk)
            for pos, tok in enumerate(blk):
                y = 5.7 + proc + drift + position * pos + rng.normal(0, 0.005)
                if tok == "1":
                    on[j] = np.exp(y + eff)
                else:
                    off[j] = np.exp(y)
        pairs.append((off, on))
        orders.append(order)
    return pairs, orders


def test_components_are_recovered() -> None:
    rng = np.random.default_rng(100)
    res = variance.decompose(*_cell(rng, tau=0.004, position=0.003))
    assert res["available"] and res["converged"]
    assert res["residual_sd_pct"] == pytest.approx(0.5, rel=0.25)
    assert res["block_sd_pct"] == pytest.approx(1.0, rel=0.35)
    assert res["effect_pct"] == pytest.approx(1.0, abs=0.3)
    assert 0.2 <= res["effect_sd_between_pct"] <= 0.7
    assert res["position"]["p"] < 0.01 and res["position"]["pct"] == pytest.approx(0.3, abs=0.2)
    assert res["carryover"] is not None


def test_a_hook_whose_effect_varies_gets_a_sentence() -> None:
    rng = np.random.default_rng(5)
    cells = {tau: _cell(rng, tau=tau) for tau in (0.006, 0.0)}
    varies, steady = (
        variance.decompose(*c, sd_null=stats.paired_claim(c[0], 0.02)["sd_null"])
        for c in cells.values()
    )
    assert varies["heterogeneous"] and "varies between processes" in varies["sentence"]
    assert not steady["heterogeneous"] and steady["sentence"] == ""
    assert steady["position"]["p"] > 0.001  # no position effect put in


def test_runs_without_orders_say_so() -> None:
    rng = np.random.default_rng(6)
    pairs, _ = _cell(rng, tau=0.0)
    res = variance.decompose(pairs, [])
    assert not res["available"] and "no block orders" in res["reason"]


def test_analysis_reads_the_stored_block_orders(tmp_path: Path) -> None:
    run = write_run(tmp_path / "r", workloads=("cached",), sizes=(64,), processes=12, aa=False,
                    block_orders=True)  # fmt: skip
    res = stats.analyze_run(run)
    (c,) = res["comparisons"]
    v = c["variance"]
    assert v["available"] and v["n_obs"] == 12 * 10 * 2
    assert {"residual_sd_pct", "effect_sd_between_pct", "position", "carryover"} <= set(v)
    old = write_run(tmp_path / "o", workloads=("cached",), sizes=(64,), processes=12, aa=False)
    (c,) = stats.analyze_run(old)["comparisons"]
    assert not c["variance"]["available"]


def test_a_significant_carry_over_gets_a_sentence() -> None:
    from readbench.analysis.variance import _carryover_sentence

    t = {"pct": 6.9, "ci95_pct": [4.5, 9.3], "p": 6.3e-9}
    s = _carryover_sentence(t)
    assert s.startswith("values right after a toggle differ by +6.9 % (95% CI +4.5 to +9.3 %")
    assert "attaching or detaching moves the next value" in s
    assert _carryover_sentence({**t, "p": 0.2}) == ""
