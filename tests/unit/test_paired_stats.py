"""The exact one-sample statistics of the paired design (readbench.analysis.paired), checked
against scipy as an independent reference and against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats as sps

from readbench.analysis import paired


@pytest.mark.parametrize("n", [1, 2, 5, 8, 12])
def test_null_distribution_by_brute_force(n: int) -> None:
    counts = np.zeros(n * (n + 1) // 2 + 1)
    for signs in itertools.product((0, 1), repeat=n):
        counts[sum(r for r, s in zip(range(1, n + 1), signs, strict=True) if s)] += 1
    assert np.array_equal(paired.signed_rank_counts(n), counts)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("n", [6, 10, 16])
def test_p_values_match_scipy_exact(seed: int, n: int) -> None:
    x = np.random.default_rng(seed).normal(0.3, 1.0, n)
    for alt in ("two-sided", "greater", "less"):
        ref = sps.wilcoxon(x, alternative=alt, method="exact").pvalue
        assert paired.signed_rank_p(x, alt) == pytest.approx(ref, rel=1e-9)


def test_smallest_p_and_processes_for_alpha() -> None:
    assert paired.min_p(8) == pytest.approx(2 / 256)
    assert paired.signed_rank_p(np.arange(1.0, 9.0)) == pytest.approx(2 / 256)
    assert paired.min_processes_for(0.01) == 7  # 1/2^7 = 0.0078 <= 0.01 < 1/2^6


def test_pseudo_median_and_its_ci_agree_with_the_test() -> None:
    """The CI is the set of shifts the two-sided test at 0.05 does not reject."""
    rng = np.random.default_rng(3)
    for _ in range(50):
        x = rng.normal(rng.uniform(-1, 1), 1.0, 10)
        lo, hi = paired.pseudo_median_ci(x)
        assert lo <= paired.pseudo_median(x) <= hi
        assert (lo > 0 or hi < 0) == (paired.signed_rank_p(x) <= 0.05)
        for shift in (lo - 1e-9, hi + 1e-9):  # just outside: rejected
            assert paired.signed_rank_p(x - shift) <= 0.05
        for shift in (lo + 1e-9, hi - 1e-9):  # just inside: not rejected
            assert paired.signed_rank_p(x - shift) > 0.05
    assert paired.pseudo_median_ci(np.array([1.0, 2.0, 3.0])) is None  # n = 3: none at 95 %


def test_ci_covers_the_true_shift_at_its_level() -> None:
    rng = np.random.default_rng(11)
    cover = 0
    for _ in range(2000):
        lo, hi = paired.pseudo_median_ci(rng.standard_t(4, 9) + 2.0)
        cover += lo <= 2.0 <= hi
    assert 0.94 <= cover / 2000 <= 0.99  # exact: >= 95 % by construction, never far above


def test_power_and_mde_are_those_of_the_exact_test() -> None:
    rng = np.random.default_rng(5)
    n, sd, alpha = 10, 0.02, 0.01
    d = paired.mde(sd, n, alpha)
    assert d is not None and 0 < d < 5 * sd
    # a fresh simulation at the MDE rejects ~80 % of the time with the exact p-values
    hits = sum(paired.signed_rank_p(rng.normal(d, sd, n)) <= alpha for _ in range(1500))
    assert 0.75 <= hits / 1500 <= 0.86
    assert paired.mde(sd, 6, alpha) is None  # 2/2^6 > 0.01: this n can never detect anything
    assert paired.power(0.0, sd, n, alpha) <= alpha


def test_tost() -> None:
    rng = np.random.default_rng(2)
    tiny = rng.normal(0.0, 0.001, 12)
    assert paired.tost_p(tiny, 0.02) == pytest.approx(1 / 2**12)
    assert paired.tost_p(tiny + 0.05, 0.02) > 0.5


# -- ties and zeros (issue 14, item 7) -------------------------------------------------------

TIED = np.array([0.0, 0.0, 1.0, 1.0, 2.0, -2.0, 3.0, -1.0, 4.0, 5.0, 5.0, 6.0])


def _brute_signed_rank_p(x: np.ndarray) -> float:
    """Reference: every sign flip of the non-zero values, Pratt mid-ranks, two-sided."""
    r = sps.rankdata(np.abs(x))
    nz = x != 0
    r, pos = r[nz], x[nz] > 0
    w = r[pos].sum()
    sums = np.array(
        [sum(ri for ri, s in zip(r, signs, strict=True) if s)
         for signs in itertools.product((0, 1), repeat=len(r))]
    )  # fmt: skip
    return min(1.0, 2 * min(np.mean(sums <= w + 1e-9), np.mean(sums >= w - 1e-9)))


@pytest.mark.parametrize("x", [TIED, TIED[2:], np.array([0.0, 1, 1, 1, 2, 2, -3, 4, 4])])
def test_signed_rank_is_symmetric_and_exact_under_ties_and_zeros(x: np.ndarray) -> None:
    p, q = paired.signed_rank_p(x), paired.signed_rank_p(-x)
    assert p == pytest.approx(q, rel=1e-12)
    assert p == pytest.approx(_brute_signed_rank_p(x), rel=1e-9)
    assert paired.signed_rank_p(x, "greater") == pytest.approx(paired.signed_rank_p(-x, "less"))


def test_signed_rank_all_zero_is_no_evidence() -> None:
    assert paired.signed_rank_p(np.zeros(9)) == 1.0


def _brute_shift_p(a: np.ndarray, b: np.ndarray) -> float:
    """Reference: every split of the pooled mid-ranks into the two samples."""
    both = np.concatenate([b, a])
    r = sps.rankdata(both)
    s = r[: len(b)].sum()
    sums = np.array([r[list(c)].sum() for c in itertools.combinations(range(len(r)), len(b))])
    return min(1.0, 2 * min(np.mean(sums <= s + 1e-9), np.mean(sums >= s - 1e-9)))


def test_shift_p_counts_ties_as_half_and_is_symmetric() -> None:
    a = np.array([1.0, 2.0, 2.0, 3.0, 4.0, 4.0])
    b = np.array([2.0, 3.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    p = paired.shift_p(a, b)
    assert p == pytest.approx(paired.shift_p(b, a), rel=1e-12)
    assert p == pytest.approx(paired.shift_p(-a, -b), rel=1e-12)
    assert p == pytest.approx(_brute_shift_p(a, b), rel=1e-9)
    # without ties: the exact tables, as scipy's exact Mann-Whitney
    x, y = np.arange(6.0), np.arange(6.0) + 2.5
    ref = sps.mannwhitneyu(y, x, method="exact").pvalue
    assert paired.shift_p(x, y) == pytest.approx(ref, rel=1e-9)
