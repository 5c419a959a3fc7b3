"""`readbench calibrate`: does the MDE the run prints hold on this machine, and how often does
the A/A sham toggle come out significant? Trials in the claims' own design (two arms, the
run's processes and blocks, α/m for m claims; readbench.measure.calibrate measures them,
readbench.analysis.calibration tests them), accumulated per machine
(readbench.store.calibration_history)."""

from __future__ import annotations

import argparse
import math
import random
import time
from dataclasses import dataclass
from typing import Any

from readbench.cli.common import add_common_cell_args, emit_json, fraction
from readbench.errors import BadInput
from readbench.model.schema import DEFAULT_ALPHA


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "calibrate",
        help="check the printed MDE against injected slowdowns, and the A/A rate, here",
        description="Defaults are the default matrix's design: its processes and blocks per "
        "hooked cell, α/m with m its claim count on this machine.",
    )
    p.add_argument("--workload", default="cached")
    p.add_argument("--size", default="64")
    p.add_argument(
        "--mde-multiples",
        default="1,1.5,2",
        help="injected slowdowns as multiples of the MDE predicted from a first A/A trial",
    )
    p.add_argument(
        "--effects", default=None, help="injected slowdowns in %% of a read (replaces multiples)"
    )
    p.add_argument("--trials", type=int, default=20, help="trials per arm (A/A and each effect)")
    p.add_argument("--processes", type=int, default=None, help="processes per trial")
    p.add_argument("--pairs", type=int, default=None, help="blocks per process")
    p.add_argument("--min-time", type=float, default=None, help="seconds per value")
    p.add_argument("--alpha", type=fraction("--alpha"), default=DEFAULT_ALPHA)
    p.add_argument(
        "--family-size",
        type=int,
        default=None,
        help="m of α/m (default: the default matrix's hook claims that can run here)",
    )
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--allow-concurrent",
        action="store_true",
        help="measure even while another readbench measurement runs here (recorded)",
    )
    p.add_argument(
        "--no-store",
        action="store_true",
        help="do not add these trials to the machine's calibration store",
    )
    add_common_cell_args(p)
    p.set_defaults(func=run)
    return p


def numbers_of(text: str, flag: str, lo: float, hi: float) -> list[float]:
    out = []
    for t in text.split(","):
        try:
            e = float(t)
        except ValueError:
            raise BadInput(f"{flag} {text!r}: {t!r} is not a number") from None
        if not lo < e < hi:
            raise BadInput(f"{flag} {text!r}: each value must be within ({lo:g}, {hi:g})")
        out.append(e)
    return out


def default_design(workload: str) -> tuple[int, int, float, int]:
    """(processes, blocks, value seconds, hook claims here) of the default matrix."""
    from readbench.bpf import support
    from readbench.model import hookspec
    from readbench.model.matrix import load_matrix

    m = load_matrix("default", support.default_hooks)
    claims = 0
    for c in m.cells():
        if c.hook != "none" and not c.aa_copy:
            ok, _ = support.availability(hookspec.parse(c.hook), c.workload)
            claims += ok
    pairs = m.pairs_by_workload.get(workload, m.pairs)
    return m.rounds * m.paired_processes_per_round, pairs, m.min_time, claims


def run(args: argparse.Namespace) -> int:
    from readbench.measure import sysstate

    with sysstate.RunLock("readbench calibrate", args.allow_concurrent) as lock:
        return _run(args, lock)


def _run(args: argparse.Namespace, lock: Any) -> int:
    from readbench.render.terminal import console

    res = run_calibration(args, lock)
    if args.json:
        emit_json(res)
    else:
        print_calibration(res)
    for w in res["warnings"]:
        console.print(f"[yellow]warning[/yellow]: {w}")
    return 0


@dataclass(frozen=True)
class TrialDesign:
    """One calibration's checked design: the cell, the injected effects asked for, and the
    claims' design (processes, blocks, value time, m of α/m)."""

    workload: str
    size: int
    effects_pct: list[float] | None
    multiples: list[float]
    processes: int
    pairs: int
    min_time: float
    family_size: int


def checked_design(args: argparse.Namespace) -> TrialDesign:
    """The arguments against the rules, before anything is measured (exit 2 names the
    flag); unset design flags take the default matrix's."""
    from readbench.analysis import paired
    from readbench.model.matrix import check_workload, parse_size
    from readbench.model.workloads import REGISTRY, get

    workload = check_workload(args.workload)
    size = parse_size(args.size, "--size")
    effects_pct = numbers_of(args.effects, "--effects", 0, 100) if args.effects else None
    multiples = numbers_of(args.mde_multiples, "--mde-multiples", 0, 20)
    if not get(workload).calibrate:
        ok = ", ".join(w.name for w in REGISTRY if w.calibrate)
        raise BadInput(
            f"--workload {workload}: calibrate needs a workload whose op time is stable "
            f"between batches ({ok})"
        )
    d_procs, d_pairs, d_time, d_claims = default_design(workload)
    procs = args.processes or d_procs
    pairs = args.pairs or d_pairs
    m = args.family_size or max(d_claims, 1)
    for flag, v, lo in (("--trials", args.trials, 1), ("--processes", procs, 2),
                        ("--pairs", pairs, 2), ("--family-size", m, 1)):  # fmt: skip
        if v < lo:
            raise BadInput(f"{flag} {v}: must be >= {lo}")
    if paired.min_p(procs) > args.alpha / m:
        raise BadInput(
            f"--processes {procs}: the exact test's smallest p, {paired.min_p(procs):.2g}, "
            f"exceeds α/m = {args.alpha / m:.2g} (m = {m}): it could never detect anything; "
            f"use at least {paired.min_processes_for(args.alpha / m) + 1} processes"
        )
    return TrialDesign(workload, size, effects_pct, multiples, procs, pairs,
                       args.min_time or d_time, m)  # fmt: skip


def run_calibration(args: argparse.Namespace, lock: Any) -> dict[str, Any]:
    """`readbench calibrate`'s trials and their statistics (calibration.json), for the command
    and for a run's calibration pass: a first A/A trial predicts the MDE that sizes the
    injected effects, so measuring and analysing interleave here, above both."""
    from readbench.analysis import calibration, machine_state
    from readbench.measure import calibrate, datafiles, machine, sysstate
    from readbench.measure.paired import sham_hook
    from readbench.render.terminal import console
    from readbench.store import calibration_history

    design_ = checked_design(args)
    workload, size, multiples = design_.workload, design_.size, design_.multiples
    effects_pct = design_.effects_pct
    procs, pairs, min_time, m = (design_.processes, design_.pairs, design_.min_time,
                                 design_.family_size)  # fmt: skip
    data_dir = args.data_dir or datafiles.default_data_dir()
    datafiles.check_workload_fs(data_dir, [workload])
    datafiles.check_data_dir(data_dir)
    path = datafiles.ensure(data_dir, workload)
    probe = machine.probe(data_dir)
    toggle, toggle_why = sham_hook(probe.get("attach_types") or {}, bool(probe.get("root")))
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    state: dict[str, Any] = {"before": sysstate.idle_sample(0.5),
                             "settings": sysstate.cpu_settings(), "concurrent": lock.concurrent,
                             "during": []}  # fmt: skip
    t0 = time.monotonic()
    n_trial = 0

    def trial(arm: str) -> dict[str, Any]:
        nonlocal n_trial
        s = calibrate.trial_seed(seed, n_trial)
        n_trial += 1
        c0 = sysstate.counters()
        pairs_ = calibrate.run_trial(workload=workload, size=size, data=str(path or ""),
                                     arm=arm, toggle=toggle, processes=procs, pairs=pairs,
                                     min_time=min_time, seed=s)  # fmt: skip
        state["during"].append({"trial": n_trial, **sysstate.sample(c0, sysstate.counters())})
        return {"arm": arm, "seed": s, **calibration.trial_claim(pairs_)}

    # A first A/A trial predicts the MDE the effects are set from; it is an A/A trial too.
    trials = [trial("aa")]
    pilot_mde = calibration.predicted_mde_log(trials[0]["sd_null"], trials[0]["n"], args.alpha, m)
    if effects_pct is None:
        if pilot_mde is None:
            raise BadInput("calibrate: the first trial gives no MDE (too few processes)")
        effects_pct = calibration.effects_from_mde(pilot_mde, multiples)
        mults: list[float | None] = list(multiples)
    else:
        mults = [None] * len(effects_pct)
    effects = [
        {"arm": f"d{e:.4g}", "effect_pct": float(f"{e:.4g}"), "multiple": k}
        for e, k in zip(effects_pct, mults, strict=True)
    ]
    total = args.trials * (1 + len(effects))
    console.print(
        f"calibration: {procs} processes × {pairs} blocks per trial, α/m = {args.alpha:g}/{m}; "
        f"first A/A trial predicts an MDE of "
        + (f"{math.expm1(pilot_mde) * 100:.2f} %" if pilot_mde else "–")
        + "; injecting "
        + ", ".join(f"+{e['effect_pct']:.3g} %" for e in effects)
    )
    order = random.Random(seed)
    for t in range(args.trials):
        arms = ([] if t == 0 else ["aa"]) + [e["arm"] for e in effects]
        order.shuffle(arms)
        for arm in arms:
            trials.append(trial(arm))
            console.print(f"calibration trial {len(trials)}/{total} ({arm})")
    design = {"workload": workload, "size": size, "processes": procs, "pairs": pairs,
              "min_time": min_time, "toggle": toggle}  # fmt: skip
    ident = calibration_history.identity(probe)
    pooled = None
    store_path = None
    if not args.no_store:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        keep = ("arm", "p", "log_effect", "sd_null", "seed")
        recs = [{**{k: t[k] for k in keep}, "created": stamp} for t in trials]
        p_store, allrecs = calibration_history.add(ident, design, recs)
        store_path = str(p_store)
        pooled = calibration.pool_aa(allrecs, args.alpha)
    res = calibration.summarize(
        trials, alpha=args.alpha, family_size=m, effects=effects, pooled_aa=pooled
    )
    res = {
        "workload": workload,
        "size": size,
        "alpha": args.alpha,
        "trials": args.trials,
        "processes_per_trial": procs,
        "pairs_per_process": pairs,
        "min_time": min_time,
        "toggle": toggle,
        "toggle_why": toggle_why,
        "seed": seed,
        "test": "exact Wilcoxon signed-rank over per-process median log(arm/off), at α/m",
        "seconds": round(time.monotonic() - t0, 1),
        "pilot_mde_pct": math.expm1(pilot_mde) * 100 if pilot_mde else None,
        **res,
        "system_state": {**state, "summary": machine_state.summarize(state)},
        "machine_key": calibration_history.key(ident),
        "store": store_path,
        "trial_results": trials,
    }
    res["warnings"] += [f"machine state: {w}" for w in machine_state.warnings(state)]
    return res


def print_calibration(res: dict[str, Any]) -> None:
    from rich.table import Table

    from readbench.render.terminal import console

    aa = res["aa"]["uncorrected"]
    lo, hi = aa["rate_ci95"]
    print(
        f"{res['workload']}/{res['size']}: {res['processes_per_trial']} processes × "
        f"{res['pairs_per_process']} blocks per trial, {res['trials']} trials per arm, "
        f"α/m = {res['alpha']:g}/{res['family_size']} = {res['level']:.2g}, "
        f"{res['seconds']:.0f} s; toggle: {res['toggle']}"
    )
    print(
        f"  predicted MDE (80 % power): {res['mde_pct']:.2f} % of the read "
        f"(pooled null spread {res['sd_null_pooled'] * 100:.3f} %)"
    )
    t = Table(title="MDE check: predicted power vs observed detection rate")
    for col in ("injected", "× MDE", "realized", "predicted power", "detected",
                "observed [exact 95 % CI]", "agree"):  # fmt: skip
        t.add_column(col, justify="right")
    for r in res["mde_check"]:
        olo, ohi = r["observed_ci95"]
        t.add_row(
            f"+{r['effect_pct']:.3g} %",
            "–" if r["multiple"] is None else f"{r['multiple']:g}",
            f"{r['realized_pct']:+.2f} %",
            f"{r['predicted_power']:.0%}",
            f"{r['detected']}/{r['trials']}",
            f"{r['observed_rate']:.0%} [{olo:.0%}, {ohi:.0%}]",
            "yes" if r["agree"] else "NO",
        )
    console.print(t)
    print(
        f"  A/A sham toggle: {aa['count']} of {aa['of']} significant at α = {aa['alpha']:g} "
        f"uncorrected (rate {aa['rate']:.1%}, exact 95 % CI {lo:.1%}–{hi:.1%})"
    )
    pooled = res.get("aa_pooled")
    if pooled and pooled["of"]:
        plo, phi = pooled["rate_ci95"]
        print(
            f"  A/A on this machine, all stored calibrations of this design: {pooled['count']} "
            f"of {pooled['of']} (exact 95 % CI {plo:.1%}–{phi:.1%}); a clean machine bounds it "
            f"within 2α after {pooled['trials_for_2alpha']} trials ({res['store']})"
        )
    print("  agree: " + ("yes" if res["agree"] else "NO"))
