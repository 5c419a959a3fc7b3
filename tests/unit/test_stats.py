"""readbench.analysis.stats on SYNTHETIC data with known effects (see tests/synthetic_runs.py).

Hypothesis runs derandomized so CI is reproducible; each example draws its own
numpy seed, so the properties still cover many data sets.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyperf
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from readbench.analysis import paired, stats
from readbench.errors import BadInput
from readbench.model.matrix import parse_cell_name
from tests.synthetic_runs import write_run

PROPS = settings(
    derandomize=True,
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def make_runs(
    rng: np.random.Generator,
    n_proc: int,
    n_val: int,
    mu: float,
    between_cv: float,
    within_cv: float,
) -> list[np.ndarray]:
    """Two-level model: a process effect, then values around it (ns/op)."""
    out = []
    for _ in range(n_proc):
        proc = mu * rng.lognormal(0, between_cv)
        out.append(proc * rng.lognormal(0, within_cv, size=n_val))
    return out


# --------------------------------------------------------------------- estimators


def test_hodges_lehmann_is_median_of_pairwise_differences() -> None:
    a = np.array([1.0, 2.0, 3.0])
    b = np.array([2.0, 4.0, 9.0])
    brute = np.median([y - x for x in a for y in b])
    assert paired.shift_estimate(a, b) == pytest.approx(brute)
    assert paired.shift_estimate(a, a + 5.0) == pytest.approx(5.0)


@PROPS
@given(
    seed=st.integers(0, 2**32 - 1),
    mu=st.floats(50.0, 20_000.0),
    between=st.floats(0.002, 0.015),
    n_proc=st.integers(12, 20),
)
def test_five_percent_shift_is_detected(seed: int, mu: float, between: float, n_proc: int) -> None:
    rng = np.random.default_rng(seed)
    a = make_runs(rng, n_proc, 10, mu, between, 0.01)
    b = make_runs(rng, n_proc, 10, mu * 1.05, between, 0.01)
    c = stats.compare_groups(a, b, n_boot=300, rng=rng)
    assert c["p_mwu"] < 0.001
    assert c["delta_ns"] > 0
    lo, hi = c["ratio_ci95"]
    assert 1.0 < lo < 1.05 < hi < 1.10
    assert c["ratio"] == pytest.approx(1.05, abs=0.02)
    assert c["effect_size"] > 0.8  # Cliff's δ: nearly every B process slower
    # the cross-check agrees
    assert c["p_welch_log"] < 0.001
    # not "equivalent within 2 %" when it is 5 % slower
    assert c["p_tost"] > 0.05


@settings(PROPS, max_examples=8)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_proc=st.integers(5, 20),
    between=st.floats(0.002, 0.05),
    alpha=st.sampled_from([0.01, 0.05, 0.1]),
)
def test_identical_distributions_false_positive_rate_near_alpha(
    seed: int, n_proc: int, between: float, alpha: float
) -> None:
    """A/A: the per-process MWU rejects ≈ α of the time (never much more), however
    large the between-process variance. Pooling values would not (next test)."""
    rng = np.random.default_rng(seed)
    trials = 250
    rejected = 0
    for _ in range(trials):
        a = make_runs(rng, n_proc, 5, 1000.0, between, 0.01)
        b = make_runs(rng, n_proc, 5, 1000.0, between, 0.01)
        c = stats.compare_groups(a, b, n_boot=10, rng=rng)
        rejected += c["p_mwu"] < alpha
    rate = rejected / trials
    # binomial tolerance: α + 3.5 sd (the exact test is conservative, so no lower bound)
    assert rate <= alpha + 3.5 * math.sqrt(alpha * (1 - alpha) / trials)


def test_pooled_values_would_overstate_significance() -> None:
    """Why the process is the unit: with between-process spread, a t-test over all
    values flags far more than α of A/A pairs; the per-process MWU does not."""
    rng = np.random.default_rng(7)
    pooled = per_process = 0
    trials = 200
    for _ in range(trials):
        a = make_runs(rng, 10, 20, 1000.0, 0.03, 0.005)
        b = make_runs(rng, 10, 20, 1000.0, 0.03, 0.005)
        pooled += sps.ttest_ind(np.concatenate(a), np.concatenate(b)).pvalue < 0.05
        per_process += stats.compare_groups(a, b, n_boot=10, rng=rng)["p_mwu"] < 0.05
    assert pooled / trials > 0.3
    assert per_process / trials < 0.1


def test_bootstrap_ci_covers_the_true_median() -> None:
    rng = np.random.default_rng(11)
    hits = 0
    trials = 120
    for _ in range(trials):
        runs = make_runs(rng, 12, 10, 500.0, 0.02, 0.01)
        s, _ = stats.summarize_cell(runs, n_boot=400, rng=rng)
        lo, hi = s["ci95_ns"]
        hits += lo <= 500.0 <= hi
    # a percentile bootstrap of a median with 12 units under-covers a little
    assert hits / trials >= 0.85


def test_equivalence_claimed_only_with_evidence() -> None:
    rng = np.random.default_rng(3)
    a = make_runs(rng, 20, 10, 1000.0, 0.003, 0.005)
    b = make_runs(rng, 20, 10, 1000.0, 0.003, 0.005)
    c = stats.compare_groups(a, b, n_boot=300, rng=rng, margin=0.02)
    assert c["p_tost"] < 0.001
    # same data, few processes: no equivalence claim possible
    c2 = stats.compare_groups(a[:2], b[:2], n_boot=100, rng=rng, margin=0.02)
    fam = [c2]
    stats.apply_family(fam, 0.01, 0.02)
    assert not fam[0]["equivalent"]


def test_mde_matches_anchor_formula() -> None:
    # anchors §5.6: CV 2 %, n = 20, α 0.05, power 0.8 -> about 1.8 % (z); t is a bit wider
    m = stats.mde_pct(0.02, 20, 20, 0.05)
    assert m is not None and 1.7 < m < 2.0
    # more processes, smaller MDE; stricter α, larger MDE
    assert stats.mde_pct(0.02, 40, 40, 0.05) < m < stats.mde_pct(0.02, 20, 20, 0.05 / 500)
    assert stats.mde_pct(0.02, 1, 5, 0.05) is None


def test_min_mwu_p_matches_anchor_table() -> None:
    # anchors §5.4: 0.0079 at n=5, 1.6e-4 at 8, 1.1e-5 at 10
    assert paired.shift_min_p(5, 5) == pytest.approx(0.0079, rel=0.01)
    assert paired.shift_min_p(8, 8) == pytest.approx(1.6e-4, rel=0.05)
    assert paired.shift_min_p(10, 10) == pytest.approx(1.1e-5, rel=0.05)


@pytest.mark.parametrize("na,nb", [(1, 1), (1, 2), (2, 2), (3, 1)])
def test_few_processes_do_not_crash_and_say_underpowered(na: int, nb: int) -> None:
    rng = np.random.default_rng(0)
    a = make_runs(rng, na, 3, 100.0, 0.01, 0.01)
    b = make_runs(rng, nb, 3, 130.0, 0.01, 0.01)
    c = stats.compare_groups(a, b, n_boot=50, rng=rng)
    fam = [c]
    stats.apply_family(fam, 0.01, 0.02)
    assert fam[0]["underpowered"]
    assert fam[0]["verdict"] == "underpowered"
    assert not fam[0]["significant"]
    assert fam[0]["n_a"] == na and fam[0]["n_b"] == nb
    if na + nb < 3:
        assert fam[0]["p_mwu"] is None and fam[0]["note"]
    assert fam[0]["power_note"]


def test_constant_values_give_no_nan() -> None:
    a = [np.full(5, 100.0) for _ in range(4)]
    b = [np.full(5, 100.0) for _ in range(4)]
    c = stats.compare_groups(a, b, n_boot=50)
    json.dumps(stats.json_clean(c), allow_nan=False)
    assert c["ratio"] == 1.0 and c["delta_ns"] == 0.0


def test_holm_is_at_least_raw_and_bh_between() -> None:
    p = [0.001, 0.01, 0.02, 0.5]
    h, q = stats.holm(p), stats.bh(p)
    assert all(hi >= pi for hi, pi in zip(h, p, strict=True))
    assert all(pi <= qi <= hi for pi, qi, hi in zip(p, q, h, strict=True))


@pytest.mark.parametrize(
    "name,expected",
    [
        ("cached/64/none", ("cached", 64, 0, "none", False)),
        ("pipe/4096+7/none#aa", ("pipe", 4096, 7, "none", True)),
        (
            "cached/64/tp:syscalls/sys_enter_pread64:count",
            ("cached", 64, 0, "tp:syscalls/sys_enter_pread64:count", False),
        ),
    ],
)
def test_parse_cell_name(name: str, expected: tuple) -> None:
    assert parse_cell_name(name) == expected


# --------------------------------------------------------------------- analyze_run


def test_analyze_run_finds_exactly_the_costly_hooks(tmp_path: Path) -> None:
    # SYNTHETIC: rawtp costs a made-up 60 ns (20 % at cached/64, ~1 % at 64K), fentry nothing
    run = write_run(
        tmp_path / "r",
        sizes=(64, 65536),
        processes=12,
        hooks=("none", "rawtp:sys_enter:empty", "fentry:vfs_read:count"),
        hook_cost={"rawtp:sys_enter:empty": (60.0, 0.0), "fentry:vfs_read:count": (0.0, 0.0)},
    )
    res = stats.analyze_run(run)
    json.dumps(res, allow_nan=False)
    by = {c["name"]: c for c in res["comparisons"]}
    assert len(by) == 8 and all(c["design"] == "paired" for c in by.values())
    for w in ("cached", "pipe"):
        for s in (64, 65536):
            rawtp = by[f"{w}/{s}/rawtp:sys_enter:empty"]
            # pairing inside processes finds even the 1 % at 64 KiB
            assert rawtp["significant"], rawtp
            assert rawtp["delta_ns"] == pytest.approx(60, rel=0.1)
            lo, hi = rawtp["delta_ci95"]
            assert lo <= rawtp["delta_ns"] <= hi
            assert not by[f"{w}/{s}/fentry:vfs_read:count"]["significant"]
    assert res["significant"] == sum(c["significant"] for c in res["comparisons"]) == 4
    assert res["alpha"] == 0.01 and res["margin"] == 0.02
    for c in res["cells"]:
        for k in ("name", "workload", "size", "hook", "n_processes", "n_values", "median_ns"):
            assert k in c
        assert c["ci95_ns"][0] <= c["median_ns"] <= c["ci95_ns"][1]
        assert c["n_processes"] == 12 and c["n_values"] == 120
    for c in res["comparisons"]:
        for k in ("delta_ns", "delta_ci95", "ratio", "ratio_ci95", "p", "p_holm", "mde_pct"):
            assert k in c
        assert {"significant", "equivalent", "verdict"} <= set(c)
    # A/A: the baseline paired against itself, its own family
    assert res["aa_n"] == 4
    assert res["aa_false_positive_rate"] == sum(c["significant"] for c in res["aa"]) / 4


def test_analyze_run_without_aa_has_no_rate(tmp_path: Path) -> None:
    res = stats.analyze_run(write_run(tmp_path / "r", aa=False, sizes=(64,), processes=4))
    assert res["aa_false_positive_rate"] is None
    assert res["aa"] == []


def test_analyze_run_two_processes_per_cell(tmp_path: Path) -> None:
    res = stats.analyze_run(write_run(tmp_path / "r", sizes=(64,), processes=2, values=3))
    assert all(c["underpowered"] for c in res["comparisons"])
    assert res["significant"] == 0
    assert all(c["n_processes"] == 2 for c in res["cells"])


def test_paired_cell_needs_no_baseline_but_an_unpaired_one_does(tmp_path: Path) -> None:
    """A paired cell carries its own hook-off arm; a hooked cell of a run made before the
    paired design (no #off benchmark) is compared with the baseline cell, or listed."""
    run = write_run(tmp_path / "r", sizes=(64,), hooks=("rawtp:sys_enter:empty",), aa=False)
    res = stats.analyze_run(run)
    assert {c["design"] for c in res["comparisons"]} == {"paired"} and res["no_baseline"] == []
    suite = pyperf.BenchmarkSuite.load(str(run / "suite.json"))
    kept = [b for b in suite.get_benchmarks() if not b.get_name().endswith("#off")]
    (run / "suite.json").unlink()
    pyperf.BenchmarkSuite(kept).dump(str(run / "suite.json"))
    res = stats.analyze_run(run)
    assert res["comparisons"] == []
    assert res["no_baseline"] == [
        "cached/64/rawtp:sys_enter:empty",
        "pipe/64/rawtp:sys_enter:empty",
    ]


def test_missing_run_dir(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="does not exist"):
        stats.analyze_run(tmp_path / "nope")


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"manifest\.json: missing"):
        stats.analyze_run(tmp_path)


@pytest.mark.parametrize(
    "text,rule",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"cells": 3}', "schema_version None"),  # the version is the first rule
    ],
)
def test_malformed_manifest(tmp_path: Path, text: str, rule: str) -> None:
    run = write_run(tmp_path / "r", sizes=(64,), processes=2)
    (run / "manifest.json").write_text(text)
    with pytest.raises(BadInput, match=rule) as e:
        stats.analyze_run(run)
    assert "manifest.json" in str(e.value)


@pytest.mark.parametrize(
    "key,value,rule",
    [
        ("cells", 3, "'cells' must be a list"),
        ("cells", [{"nom": 1}], r"cells\[0\] must be an object with a string 'name'"),
        ("cells", [{"name": "no-slashes"}], "is not WORKLOAD/SIZE"),
        ("probe", [], "'probe' must be an object"),
        ("analysis", {"alpha": 2, "margin": 0.02}, "analysis.alpha 2: must be within"),
    ],
)
def test_manifest_rules(tmp_path: Path, key: str, value: object, rule: str) -> None:
    """A current-version manifest with one field broken: the message names file and rule."""
    run = write_run(tmp_path / "r", sizes=(64,), processes=2)
    m = json.loads((run / "manifest.json").read_text())
    m[key] = value
    (run / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BadInput, match=rule) as e:
        stats.analyze_run(run)
    assert "manifest.json" in str(e.value)


def test_missing_or_corrupt_suite(tmp_path: Path) -> None:
    run = write_run(tmp_path / "r", sizes=(64,), processes=2)
    (run / "suite.json").write_text('{"benchmarks": "x"}')
    with pytest.raises(BadInput, match="not a pyperf BenchmarkSuite"):
        stats.analyze_run(run)
    (run / "suite.json").unlink()
    with pytest.raises(BadInput, match=r"suite\.json: missing"):
        stats.analyze_run(run)


def test_bad_alpha(tmp_path: Path) -> None:
    run = write_run(tmp_path / "r", sizes=(64,), processes=2)
    with pytest.raises(BadInput, match="alpha"):
        stats.analyze_run(run, alpha=1.5)


def test_paired_mde_is_for_a_uniform_overhead_under_the_machines_noise(tmp_path: Path) -> None:
    """SYNTHETIC: 1 % noise per value. The MDE uses the spread of the no-hook statistic
    (off against the next block's off), and the claim's own spread is reported beside it."""
    run = write_run(tmp_path / "r", sizes=(64,), processes=16, values=10, aa=False,
                    hooks=("none", "rawtp:sys_enter:empty"))  # fmt: skip
    res = stats.analyze_run(run)
    for c in res["comparisons"]:
        assert c["sd_null"] > 0 and c["mde_pct"] is not None and c["mde_pct"] < 5
        assert c["mde_pct_observed_spread"] is not None
        assert c["mde_pct_unadjusted"] <= c["mde_pct"]
