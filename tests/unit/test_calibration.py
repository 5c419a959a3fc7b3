"""Calibration's pure parts: independent seeds, the MDE check's arithmetic on SYNTHETIC
trials (numbers drawn from a known model, not measurements), and the per-machine store."""

from __future__ import annotations

import itertools
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

from readbench.analysis import calibration, paired
from readbench.store import calibration_history


def _orders(seed: int, processes: int, blocks: int = 10) -> list[str]:
    """The block orders the paired worker's processes draw (measure.paired.measure_process)."""
    from readbench.measure.paired import child_seed

    out = []
    for k in range(processes):
        rng = random.Random(child_seed(seed, k))
        seq = ""
        for _ in range(blocks):
            o = [0, 1]
            rng.shuffle(o)
            seq += "".join(map(str, o))
        out.append(seq)
    return out


def test_consecutive_trials_share_no_block_orders() -> None:
    """seed + k made trial s's process k+1 replay trial s+1's process k (9 of 10 shared)."""
    from readbench.measure.calibrate import trial_seed

    seeds = [trial_seed(0, t) for t in range(20)]
    assert len(set(seeds)) == 20
    shared = 0
    for a, b in itertools.pairwise(seeds):
        shared += len(set(_orders(a, 10)) & set(_orders(b, 10)))
    # 2^10 possible sequences per process: a chance match is rare, never systematic
    assert shared <= 3
    # consecutive integer seeds (the runner's crc32 seeds are not, but a user's may be)
    assert len(set(_orders(5, 10)) & set(_orders(6, 10))) <= 1


def _trial(arm: str, rng: np.random.Generator, effect: float, sd: float, n: int = 16) -> dict:
    lr = rng.normal(effect, sd, n)
    return {"arm": arm, "n": n, "blocks": 8, "p": paired.signed_rank_p(lr),
            "log_effect": paired.pseudo_median(lr), "delta_ns": 300 * math.expm1(effect),
            "median_off_ns": 300.0, "sd_null": sd, "sd_log": sd}  # fmt: skip


def test_mde_check_agrees_when_the_model_is_right() -> None:
    rng = np.random.default_rng(1)
    sd, n, alpha, m = 0.01, 16, 0.01, 26
    mde = calibration.predicted_mde_log(sd, n, alpha, m)
    pcts = calibration.effects_from_mde(mde, [1.0, 1.5, 2.0])
    effects = [{"arm": f"d{e:.4g}", "effect_pct": e, "multiple": k}
               for e, k in zip(pcts, (1.0, 1.5, 2.0), strict=True)]  # fmt: skip
    trials = [_trial("aa", rng, 0.0, sd) for _ in range(60)]
    for e in effects:
        trials += [_trial(e["arm"], rng, math.log1p(e["effect_pct"] / 100), sd)
                   for _ in range(60)]  # fmt: skip
    res = calibration.summarize(trials, alpha=alpha, family_size=m, effects=effects)
    assert res["mde_pct"] == pytest.approx(math.expm1(mde) * 100)
    one = res["mde_check"][0]
    assert one["predicted_power_nominal"] == pytest.approx(0.8, abs=0.02)
    assert one["predicted_power"] == pytest.approx(0.8, abs=0.1)  # at the realized effect
    assert res["agree"], res["mde_check"]
    assert res["aa"]["uncorrected"]["of"] == 60 and not res["warnings"]


def test_mde_check_disagrees_when_the_noise_was_underestimated() -> None:
    """Trials whose real spread is 1.6× what the null spread says: detection falls short."""
    rng = np.random.default_rng(2)
    sd, n, alpha, m = 0.01, 16, 0.01, 26
    mde = calibration.predicted_mde_log(sd, n, alpha, m)
    effects = [{"arm": "d1", "effect_pct": math.expm1(mde) * 100, "multiple": 1.0}]
    trials = [{**_trial("d1", rng, mde, 1.6 * sd), "sd_null": sd} for _ in range(80)]
    res = calibration.summarize(trials, alpha=alpha, family_size=m, effects=effects)
    assert not res["agree"] and any("not this machine's" in w for w in res["warnings"])


def test_aa_warning_when_the_lower_bound_exceeds_alpha() -> None:
    rng = np.random.default_rng(3)
    trials = [_trial("aa", rng, 0.02, 0.01) for _ in range(20)]  # a toggle that costs 2 %
    res = calibration.summarize(trials, alpha=0.01, family_size=1, effects=[])
    assert res["aa"]["uncorrected"]["rate_ci95"][0] > 0.01
    assert any("toggling itself" in w for w in res["warnings"])


def test_store_accumulates_per_machine_and_design(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("READBENCH_CALIBRATION_DIR", str(tmp_path))
    probe = {"cpu": {"model": "X", "flags": ["b", "a"]}, "kernel": {"release": "6.1"}}
    ident = calibration_history.identity(probe)
    design = {"workload": "cached", "size": 64, "processes": 16}
    recs = [{"arm": "aa", "p": 0.5}, {"arm": "aa", "p": 0.001}, {"arm": "d1", "p": 0.0}]
    path, all1 = calibration_history.add(ident, design, recs)
    _, all2 = calibration_history.add(ident, design, recs[:1])
    assert len(all1) == 3 and len(all2) == 4
    pooled = calibration.pool_aa(all2, 0.01)
    assert (pooled["count"], pooled["of"]) == (1, 3)
    assert pooled["trials_for_2alpha"] == 183  # 0 of n bounds the rate ≤ 2α from n = 183
    # another design, or another machine (a guest: virtualization), is another pool
    _, other = calibration_history.add(ident, {**design, "processes": 8}, recs[:1])
    assert len(other) == 1
    virt = {"hypervisor": True, "accel": "tcg", "emulated": True,
            "guest": {"cpu_model": "max", "accel_reason": "wording may change"}}  # fmt: skip
    guest = calibration_history.identity({**probe, "virtualization": virt})
    assert calibration_history.key(guest) != calibration_history.key(ident)
    reworded = {**virt, "guest": {**virt["guest"], "accel_reason": "other words"}}
    assert calibration_history.key(
        calibration_history.identity({**probe, "virtualization": reworded})
    ) == calibration_history.key(guest)
    obj = json.loads(path.read_text())
    assert obj["identity"]["flags"] == ["a", "b"] and len(obj["designs"]) == 2
    assert not list(tmp_path.glob("*.tmp"))  # atomic: no temp file left


def test_report_shows_the_mde_check_and_says_when_calibration_is_old(tmp_path: Path) -> None:
    """A run's calibration.json in the new format is rendered side by side (predicted power,
    observed rate with its exact interval, agree); an old-format one is named as not the
    claims' design. SYNTHETIC run and trials."""
    from synthetic_runs import write_run

    from readbench.render import report
    from readbench.store.rundir import atomic_write_json

    run = write_run(tmp_path / "r", workloads=("cached",), sizes=(64,), processes=16,
                    aa=True, block_orders=True)  # fmt: skip
    rng = np.random.default_rng(8)
    sd, mde = 0.01, calibration.predicted_mde_log(0.01, 16, 0.01, 26)
    effects = [{"arm": "d1", "effect_pct": math.expm1(mde) * 100, "multiple": 1.0}]
    trials = [_trial("aa", rng, 0.0, sd) for _ in range(10)]
    trials += [_trial("d1", rng, mde, sd) for _ in range(10)]
    res = calibration.summarize(trials, alpha=0.01, family_size=26, effects=effects)
    atomic_write_json(run / "calibration.json", {
        "workload": "cached", "size": 64, "alpha": 0.01, "trials": 10,
        "processes_per_trial": 16, "pairs_per_process": 8, "toggle": "point:rawtp:task/task_rename",
        "seconds": 1.0, **res})  # fmt: skip
    html = report.write_report(run, tmp_path / "rep").read_text()
    assert "predicted power" in html and "observed rate [exact 95 % CI]" in html
    assert "Where the variance comes from" in html and "residual SD %" in html
    assert "point:rawtp:task/task_rename" in html
    atomic_write_json(run / "calibration.json", {"workload": "cached", "size": 64, "trials": 40,
                                                 "alpha": 0.01, "aa": {}, "power": []})  # fmt: skip
    html = report.write_report(run, tmp_path / "rep2").read_text()
    assert "not the claims' design" in html
