"""Exact statistics for paired hook overhead (design §6): the one-sample signed-rank family
across processes, and the two-sample Mann–Whitney family for unpaired cells.

Inside one worker process the hook is off and on alternately; each process gives one number
(its median paired log-ratio, or median paired ns difference). Processes are the unit of
replication, so the test is one-sample across processes:

- the exact Wilcoxon signed-rank test (null distribution by counting, no normal approximation),
- the Hodges-Lehmann pseudo-median (median of the Walsh averages) as the estimate,
- the exact confidence interval of the pseudo-median from the same null distribution (Walsh
  averages between the signed-rank critical values), so CI and test always agree,
- power and the minimum detectable effect of that same exact test, by simulation under the
  observed spread of the per-process statistics,
- the TOST equivalence test made of two one-sided signed-rank tests.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

POWER = 0.8
SIM_TRIALS = 4000


@cache
def signed_rank_counts(n: int) -> np.ndarray:
    """counts[w] = number of sign patterns of ranks 1..n whose positive ranks sum to w."""
    top = n * (n + 1) // 2
    counts = np.zeros(top + 1, dtype=np.float64)  # float: 2^n exceeds int64 for n > 62
    counts[0] = 1.0
    for r in range(1, n + 1):
        counts[r:] = counts[r:] + counts[:-r].copy()
    return counts


def _cdf(n: int) -> tuple[np.ndarray, np.ndarray]:
    """P(W+ <= w) and P(W+ >= w) for w = 0..n(n+1)/2 under the null."""
    pmf = signed_rank_counts(n) / 2.0**n
    return np.cumsum(pmf), np.cumsum(pmf[::-1])[::-1]


def w_plus(x: np.ndarray) -> np.ndarray:
    """Signed-rank statistic along the last axis for continuous data (sum of the ranks of |x|
    where x > 0), vectorised for the power simulation. Ties and zeros have probability zero
    there; signed_rank_p handles real data with ties and zeros exactly (mid-ranks, Pratt)."""
    x = np.asarray(x, dtype=float)
    ranks = np.argsort(np.argsort(np.abs(x), axis=-1), axis=-1) + 1
    return np.sum(np.where(x > 0, ranks, 0), axis=-1)


def _pratt_ranks(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Doubled mid-ranks of |x| (integers) with zeros ranked and then dropped (Pratt), and the
    signs of the non-zero values. Doubling keeps half ranks integral for exact counting."""
    from scipy.stats import rankdata

    x = np.asarray(x, dtype=float)
    r2 = np.rint(2 * rankdata(np.abs(x), method="average")).astype(np.int64)
    nz = x != 0
    return r2[nz], np.sign(x[nz])


def _weighted_sign_counts(weights: np.ndarray) -> np.ndarray:
    """counts[w] = number of sign patterns whose positive weights sum to w (exact, any
    integer weights): the conditional null distribution given the observed ranks."""
    counts = np.zeros(int(weights.sum()) + 1)
    counts[0] = 1.0
    for r in weights:
        r = int(r)
        counts[r:] = counts[r:] + counts[: len(counts) - r].copy()
    return counts


def signed_rank_p(x: np.ndarray, alternative: str = "two-sided") -> float:
    """Exact p-value of the Wilcoxon signed-rank test of median 0. Ties get mid-ranks and
    zeros are ranked then dropped (Pratt); with either, the null distribution is counted
    for the observed ranks (conditional and exact), so x and −x give the same two-sided p
    and the one-sided p-values swap."""
    x = np.asarray(x, dtype=float)
    n = len(x)
    if n == 0:
        return float("nan")
    absx = np.abs(x)
    if np.all(x != 0) and len(np.unique(absx)) == n:  # continuous case: the cached tables
        le, ge = _cdf(n)
        w = int(w_plus(x))
    else:
        r2, sign = _pratt_ranks(x)
        if len(r2) == 0:  # every value is zero: no evidence either way
            return 1.0
        pmf = _weighted_sign_counts(r2)
        pmf = pmf / pmf.sum()
        le, ge = np.cumsum(pmf), np.cumsum(pmf[::-1])[::-1]
        w = int(r2[sign > 0].sum())
    if alternative == "greater":
        return float(ge[w])
    if alternative == "less":
        return float(le[w])
    return float(min(1.0, 2 * min(le[w], ge[w])))


def min_p(n: int) -> float:
    """The smallest two-sided p the exact test can give with n processes."""
    return 2.0 / 2.0**n if n else 1.0


def walsh_averages(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    i, j = np.triu_indices(len(x))
    return np.sort((x[i] + x[j]) / 2)


def pseudo_median(x: np.ndarray) -> float:
    """Hodges-Lehmann one-sample estimate: the median of the Walsh averages."""
    return float(np.median(walsh_averages(x))) if len(x) else float("nan")


def pseudo_median_ci(x: np.ndarray, level: float = 0.95) -> list[float] | None:
    """Exact CI of the pseudo-median: the Walsh averages at the signed-rank critical values
    (the interval of shifts the two-sided exact test at 1 - level does not reject). None
    when n is too small for any interval at that level."""
    n = len(x)
    if n == 0:
        return None
    le, _ = _cdf(n)
    # k = number of Walsh averages cut from each end: largest k with P(W+ <= k-1) <= (1-level)/2
    k = int(np.searchsorted(le, (1 - level) / 2 + 1e-12, side="right"))
    if k == 0:
        return None
    a = walsh_averages(x)
    return [float(a[k - 1]), float(a[len(a) - k])]


def _rejects(w: np.ndarray, n: int, alpha: float) -> np.ndarray:
    le, ge = _cdf(n)
    return 2 * np.minimum(le[w], ge[w]) <= alpha


def power(effect: float, sd: float, n: int, alpha: float, trials: int = SIM_TRIALS) -> float:
    """Power of the two-sided exact signed-rank test at `alpha` against a shift `effect`
    of per-process statistics spread normally with `sd` (simulated, seeded)."""
    if n == 0 or min_p(n) > alpha:
        return 0.0
    rng = np.random.default_rng(12345 + n)
    x = rng.normal(effect, sd, size=(trials, n))
    return float(np.mean(_rejects(w_plus(x), n, alpha)))


def mde(sd: float, n: int, alpha: float, target: float = POWER) -> float | None:
    """Smallest shift (in the statistic's units) the exact test detects with `target` power;
    None when n processes can never reach `alpha`. Ranks do not see the scale, so this is
    sd × the MDE at sd = 1 (computed once per n, α and target)."""
    if n == 0 or min_p(n) > alpha or not math.isfinite(sd):
        return None
    if sd == 0:
        return 0.0
    unit = _unit_mde(n, float(alpha), float(target))
    return None if unit is None else sd * unit


@cache
def _unit_mde(n: int, alpha: float, target: float) -> float | None:
    lo, hi = 0.0, 1.0
    while power(hi, 1.0, n, alpha) < target:
        hi *= 2
        if hi > 1e3:
            return None
    for _ in range(30):
        mid = (lo + hi) / 2
        if power(mid, 1.0, n, alpha) >= target:
            hi = mid
        else:
            lo = mid
    return hi


def tost_p(x: np.ndarray, margin: float) -> float:
    """Equivalence within ±margin (same units as x): the larger of the two one-sided exact
    signed-rank p-values (H0: shift <= -margin; H0: shift >= +margin)."""
    x = np.asarray(x, dtype=float)
    return max(signed_rank_p(x + margin, "greater"), signed_rank_p(x - margin, "less"))


def min_processes_for(alpha: float) -> int:
    """Fewest processes with which a one-sided exact test can reach `alpha` (1/2^n <= alpha):
    below it an equivalence verdict is impossible by construction, so none is given."""
    return max(1, math.ceil(math.log2(1 / alpha)))


def robust_sd(x: np.ndarray) -> float:
    """Spread of per-process statistics for power: the sample SD, or the scaled MAD when a
    single process is far off (bimodal hosts), whichever is larger (the cautious choice)."""
    x = np.asarray(x, dtype=float)
    if len(x) < 2:
        return float("nan")
    mad = 1.4826 * float(np.median(np.abs(x - np.median(x))))
    return max(float(np.std(x, ddof=1)), mad)


# -- two runs: did a hook's paired overhead change? ---------------------------------------


@cache
def rank_sum_counts(n1: int, n2: int) -> np.ndarray:
    """counts[u] = number of orderings of n1 xs and n2 ys (distinct) with Mann-Whitney
    U = u (pairs x > y). The largest value is an x (beating all n2 ys) or a y:
    f(i, j)[u] = f(i-1, j)[u-j] + f(i, j-1)[u]."""
    if n1 == 0 or n2 == 0:
        return np.ones(1)
    out = np.zeros(n1 * n2 + 1)
    x_last = rank_sum_counts(n1 - 1, n2)
    out[n2 : n2 + len(x_last)] += x_last
    y_last = rank_sum_counts(n1, n2 - 1)
    out[: len(y_last)] += y_last
    return out


def _rank_sum_null(ranks2: np.ndarray, n1: int) -> np.ndarray:
    """counts[s] = number of ways to choose n1 of the (doubled, integer) ranks with sum s:
    the exact conditional null of the rank sum when ranks are tied."""
    top = int(ranks2.sum())
    table = np.zeros((n1 + 1, top + 1))
    table[0, 0] = 1.0
    for r in ranks2:
        r = int(r)
        table[1:, r:] = table[1:, r:] + table[:-1, : top + 1 - r].copy()
    return table[n1]


def shift_p(a: np.ndarray, b: np.ndarray) -> float:
    """Exact two-sided Mann-Whitney p of b against a. U counts a tie as ½; with ties the null
    is counted for the observed mid-ranks (exact, conditional), so shift_p(a, b) equals
    shift_p(b, a) and shift_p(-a, -b)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n1, n2 = len(b), len(a)
    if n1 == 0 or n2 == 0:
        return float("nan")
    both = np.concatenate([b, a])
    if len(np.unique(both)) == n1 + n2:
        counts = rank_sum_counts(n1, n2)
        u = int(np.sum(b[:, None] > a[None, :]))
        le, ge = counts[: u + 1].sum(), counts[u:].sum()
        return float(min(1.0, 2 * min(le, ge) / counts.sum()))
    from scipy.stats import rankdata

    r2 = np.rint(2 * rankdata(both, method="average")).astype(np.int64)
    counts = _rank_sum_null(r2, n1)
    s = int(r2[:n1].sum())  # 2 × (rank sum of b) = 2U + n1(n1 + 1), U with ties as ½
    total = counts.sum()
    le, ge = counts[: s + 1].sum() / total, counts[s:].sum() / total
    return float(min(1.0, 2 * min(le, ge)))


def shift_ci(a: np.ndarray, b: np.ndarray, level: float) -> list[float] | None:
    """Exact CI of the Hodges-Lehmann shift b − a: the pairwise differences at the
    Mann-Whitney critical values (the inversion of shift_p). None when n is too small."""
    counts = rank_sum_counts(len(b), len(a))
    cdf = np.cumsum(counts) / counts.sum()
    k = int(np.searchsorted(cdf, (1 - level) / 2 + 1e-12, side="right"))
    if k == 0:
        return None
    d = np.sort((np.asarray(b)[:, None] - np.asarray(a)[None, :]).ravel())
    return [float(d[k - 1]), float(d[len(d) - k])]


def shift_estimate(a: np.ndarray, b: np.ndarray) -> float:
    """The two-sample Hodges-Lehmann shift of b over a: median of all pairwise b_i − a_j."""
    return float(np.median(np.asarray(b)[:, None] - np.asarray(a)[None, :]))


def shift_min_p(n1: int, n2: int) -> float:
    """The smallest two-sided exact Mann-Whitney p attainable with n1 and n2 processes."""
    if n1 < 1 or n2 < 1:
        return 1.0
    return min(1.0, 2.0 / math.comb(n1 + n2, n1))


# -- the null spread of the per-process statistic (the MDE's noise) ------------------------


def null_spread(diffs: list[np.ndarray]) -> float:
    """SD across processes of the per-process statistic (the median over k blocks of the
    paired log difference) that a uniform effect would face: the within-process noise only.

    Each process's block differences give their own robust scale (the median absolute
    deviation from their own median, which removes the effect, uniform or not, and the
    process's offset); the root mean square of those scales over processes, on the normal
    scale, times the SD of a median of k standard normal values, is the statistic's SD.
    Per process, so a process hit harder by other load counts with its own noise; robust,
    because the median the test uses shrugs off a preempted value that a variance would
    count. Simulated (tests/unit/test_stats_promises.py, 16 processes): within 3 % of the
    true spread for normal noise and for a third of the processes 5× noisier, 3–5 % above
    it for t₃ tails, 8–29 % above (the cautious side) when a tenth of the values are hit by
    30–100 % slowdowns. The alternatives: successive hook-off ratios overlap (0.66–0.80 of
    the truth, the old estimator); residuals pooled across processes give half of it when
    processes differ in noise; per-process variances give 5–16× it under slowdown spikes."""
    mads = []
    ks = []
    for d in diffs:
        d = np.asarray(d, dtype=float)
        if len(d) >= 2:
            mads.append(float(np.median(np.abs(d - np.median(d)))))
            ks.append(len(d))
    if not mads:
        return float("nan")
    k = int(np.median(ks))
    median_sd, mad_rms = _normal_constants(k)
    return math.sqrt(float(np.mean(np.square(mads)))) / mad_rms * median_sd


@cache
def _normal_constants(k: int) -> tuple[float, float]:
    """For k independent standard normal values: the SD of their median, and the root mean
    square of their median absolute deviation (seeded simulation, 400 000 samples: ±0.2 %)."""
    x = np.random.default_rng(14).normal(0.0, 1.0, (400_000, k))
    med = np.median(x, axis=1)
    mad = np.median(np.abs(x - med[:, None]), axis=1)
    return float(np.std(med)), float(np.sqrt(np.mean(mad**2)))
