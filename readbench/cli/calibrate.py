"""`readbench calibrate [--workload W] [--size N] [--effects 1,2,5] [--trials K] [--json]`:
the A/A false-positive rate and the power against known injected slowdowns of the paired
hook test, measured on this machine (readbench.measure.calibrate)."""

from __future__ import annotations

import argparse
from typing import Any

from readbench.cli.common import add_common_cell_args, emit_json, fraction
from readbench.errors import BadInput
from readbench.model.schema import DEFAULT_ALPHA


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "calibrate", help="A/A false-positive rate and power of the hook test, measured here"
    )
    p.add_argument("--workload", default="cached")
    p.add_argument("--size", default="64")
    p.add_argument("--effects", default="1,2,5", help="injected slowdowns, %% of a read")
    p.add_argument("--trials", type=int, default=20, help="claims per arm (A/A and each effect)")
    p.add_argument("--processes", type=int, default=10, help="worker processes per trial")
    p.add_argument("--pairs", type=int, default=10, help="blocks per process")
    p.add_argument("--min-time", type=float, default=0.01, help="seconds per value")
    p.add_argument("--alpha", type=fraction("--alpha"), default=DEFAULT_ALPHA)
    p.add_argument("--seed", type=int, default=0)
    add_common_cell_args(p)
    p.set_defaults(func=run)
    return p


def effects_of(text: str) -> list[float]:
    out = []
    for t in text.split(","):
        try:
            e = float(t)
        except ValueError:
            raise BadInput(f"--effects {text!r}: {t!r} is not a number") from None
        if not 0 < e < 100:
            raise BadInput(f"--effects {text!r}: each effect must be within (0, 100) %")
        out.append(e)
    return out


def run(args: argparse.Namespace) -> int:
    from readbench.measure import calibrate, datafiles
    from readbench.model.matrix import check_workload, parse_size

    workload = check_workload(args.workload)
    size = parse_size(args.size, "--size")
    effects = effects_of(args.effects)
    for flag, v, lo in (("--trials", args.trials, 1), ("--processes", args.processes, 2),
                        ("--pairs", args.pairs, 2)):  # fmt: skip
        if v < lo:
            raise BadInput(f"{flag} {v}: must be >= {lo}")
    from readbench.model.workloads import REGISTRY, get

    if not get(workload).calibrate:
        ok = ", ".join(w.name for w in REGISTRY if w.calibrate)
        raise BadInput(
            f"--workload {workload}: calibrate needs a workload whose op time is stable "
            f"between batches ({ok})"
        )
    data_dir = args.data_dir or datafiles.default_data_dir()
    datafiles.check_workload_fs(data_dir, [workload])
    datafiles.check_data_dir(data_dir)
    path = datafiles.ensure(data_dir, workload)
    from readbench.render.terminal import console

    res = calibrate.calibrate(
        workload=workload,
        size=size,
        data=str(path) if path else "",
        effects=effects,
        trials=args.trials,
        processes=args.processes,
        pairs=args.pairs,
        min_time=args.min_time,
        alpha=args.alpha,
        seed=args.seed,
        progress=lambda t, k: console.print(f"calibration trial {t}/{k}"),
    )
    if args.json:
        emit_json(res)
        return 0
    aa = res["aa"]
    lo, hi = aa["rate_ci95"]
    print(
        f"{workload}/{size}: {res['trials']} trials × {res['processes_per_trial']} processes, "
        f"α = {res['alpha']:g} uncorrected, {res['seconds']:.0f} s"
    )
    print(
        f"  A/A: {aa['false_positives']} of {aa['claims']} claims significant "
        f"(rate {aa['rate']:.1%}, 95% CI {lo:.1%}–{hi:.1%})"
    )
    for row in res["power"]:
        lo, hi = row["rate_ci95"]
        print(
            f"  +{row['effect_pct']:g}% injected ({row['injected_ns']:.1f} ns): detected "
            f"{row['detected']}/{row['trials']} (power {row['rate']:.0%}, "
            f"95% CI {lo:.0%}–{hi:.0%}); measured Δ {row['delta_ns_median']:.1f} ns"
        )
    return 0
