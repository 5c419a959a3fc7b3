"""Overhead of empty rawtp:sys_enter and tp:syscalls/sys_enter_pread64 on a cached pread,
measured two independent ways, side by side:

  A. readbench itself: readbench.bpf.attach.attach_hook() around the C ReadLoop, in this process.
  B. bench/bpf_crosscheck.c: its own BPF programs, its own libbpf loader (skeleton), its
     own pread loop.

Both run interleaved rounds (none / rawtp / tp in a shuffled order per round; attach ->
warm-up -> batches -> detach) in alternating blocks, so machine drift hits both alike.
Per round the fastest batch's ns/op is kept (least disturbed by other processes on
a shared machine); overhead = hooked - none within the same
round (paired), reported as mean with a 95% t-interval, in ns and %. A separate pass
with BPF_ENABLE_STATS (fd-scoped) splits the overhead into program time and mechanism
(the rest: dispatch, perf-record fill for the classic tracepoint, the
syscall-tracepoint slow path). Program time = run_time_ns over that of the same
program made to return at its first instruction (the floor: what the stats' own clock
reads put inside the measured span), per read. The timing passes run with stats off.

    sudo python bench/bpf_crosscheck.py [--size 64] [--blocks 3] [--rounds 4] [--json out]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from readbench.bpf.attach import AttachedHook, attach_hook
from readbench.measure.readloop import ReadLoop
from readbench.model import hookspec

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import skeleton_build  # noqa: E402  (bench/ is not a package)

HOOKS = ["none", "rawtp:sys_enter", "tp:syscalls/sys_enter_pread64"]


def build_c() -> Path:
    """Compile the cross-check (BPF object, skeleton, loader) into a cache dir."""
    return skeleton_build.build("bpf_crosscheck")


def round_value(rl: ReadLoop, loops: int, batches: int) -> float:
    """Fastest batch of the round: on a shared, busy machine a batch that another
    process preempted is slower, never faster, so the minimum is the least disturbed
    (the C side does the same)."""
    rl.run(loops // 4 + 1)  # warm the hooked path
    return min(rl.run(loops).ns_per_op for _ in range(batches))


def python_rounds(
    path: Path,
    size: int,
    rounds: int,
    loops: int,
    batches: int,
    rng: random.Random,
    names: list[str] = HOOKS,
) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {h: [] for h in names}
    with ReadLoop("cached", size, path) as rl:
        for _ in range(rounds):
            order = names[:]
            rng.shuffle(order)
            for h in order:
                with attach_hook(h, tgid=os.getpid(), workload="cached"):
                    out[h].append(round_value(rl, loops, batches))
    return out


def c_rounds(
    exe: Path, path: Path, size: int, rounds: int, loops: int, batches: int, seed: int
) -> dict[str, list[float]]:
    p = subprocess.run(
        [str(exe), str(path), str(size), str(rounds), str(loops), str(batches), str(seed)],
        capture_output=True,
        text=True,
        check=True,
    )
    d = json.loads(p.stdout)["ns_per_op"]
    return {h: d[h] for h in HOOKS}  # the C program prints the same hook names


def paired_reference(
    exe: Path,
    path: Path,
    size: int,
    *,
    processes: int = 8,
    pairs: int = 10,
    loops: int = 100_000,
    seed: int = 1,
) -> dict[str, Any]:
    """The independent in-process paired measurement of an empty rawtp:sys_enter: each C
    process times `loops` preads with the hook detached and attached, in a random order per
    pair; its statistic is the median paired difference; across processes mean and SE."""
    per_process = []
    for k in range(processes):
        r = c_rounds(exe, path, size, pairs, loops, 1, seed * 1000 + k)
        diffs = [on - off for off, on in zip(r["none"], r["rawtp:sys_enter"], strict=True)]
        per_process.append(statistics.median(diffs))
    mean = statistics.fmean(per_process)
    se = statistics.stdev(per_process) / len(per_process) ** 0.5
    return {
        "hook": "rawtp:sys_enter",
        "size": size,
        "processes": processes,
        "pairs": pairs,
        "loops": loops,
        "delta_ns": mean,
        "se_ns": se,
        "per_process_ns": per_process,
    }


def stats_pass(
    path: Path, size: int, rounds: int, loops: int, batches: int, rng: random.Random
) -> dict[str, Any]:
    """Program time per run from BPF_ENABLE_STATS (fd-scoped), and what stats cost.

    Per round and hook, in shuffled order: the hook with stats off, with stats on, and
    its floor variant (attach_hook(floor=True): same program and attach point, the
    syscall-id filter never matches, so each run returns after one load and compare) with
    stats on; same fastest-batch estimator.
    body_ns_per_op = (run_time_ns - floor x run_cnt) / ops: the program's own time per
    read, over the floor. Stats bracket every run with two clock reads; their cost
    (stats_on - stats_off) is reported too.
    """
    out: dict[str, Any] = {}
    with ReadLoop("cached", size, path) as rl:
        for h in HOOKS[1:]:
            best: dict[str, list[float]] = {"off": [], "on": [], "floor": []}
            runs = {"on": 0, "floor": 0}
            run_ns = {"on": 0, "floor": 0}
            ops = 0
            for _ in range(rounds):
                order = list(best)
                rng.shuffle(order)
                for mode in order:
                    a = attach_hook(
                        h,
                        tgid=os.getpid(),
                        workload="cached",
                        stats=mode != "off",
                        floor=mode == "floor",
                    )

                    def read(a: AttachedHook = a) -> tuple[int, int]:
                        p = a.snapshot()["programs"][0]
                        return p["run_cnt"], p["run_time_ns"]

                    try:
                        rl.run(loops // 4 + 1)
                        c0, t0 = read()
                        v = float("inf")
                        for _ in range(batches):
                            r = rl.run(loops)
                            v = min(v, r.ns_per_op)
                            ops += r.ops if mode == "on" else 0
                        c1, t1 = read()
                    finally:
                        a.close()
                    best[mode].append(v)
                    if mode in runs:
                        runs[mode] += c1 - c0
                        run_ns[mode] += t1 - t0
            floor = run_ns["floor"] / max(runs["floor"], 1)
            out[h] = {
                "runs": runs["on"],
                "ops": ops,
                "runs_per_op": runs["on"] / ops,  # >1: it also ran (filtered out) for others
                "prog_ns_per_run": run_ns["on"] / max(runs["on"], 1),
                "floor_ns_per_run": floor,
                "body_ns_per_op": (run_ns["on"] - floor * runs["on"]) / ops,
                "stats_cost_ns_per_op": paired(best["off"], best["on"])["overhead_ns"],
                "stats_cost_ci95": paired(best["off"], best["on"])["ci95_ns"],
                "floor_vs_on_ns_per_op": paired(best["floor"], best["on"])["overhead_ns"],
            }
    return out


def paired(base: list[float], hooked: list[float]) -> dict[str, float]:
    # Imported here, after measuring: numpy/scipy start worker threads, and a
    # multi-threaded process pays fd reference counting on every pread (fdget).
    from scipy import stats as st

    d = [h - b for h, b in zip(hooked, base, strict=True)]
    pct = [100 * (h / b - 1) for h, b in zip(hooked, base, strict=True)]
    n = len(d)
    t = st.t.ppf(0.975, n - 1)

    def ci(xs: list[float]) -> tuple[float, float, float]:
        m = statistics.fmean(xs)
        half = t * statistics.stdev(xs) / n**0.5
        return m, m - half, m + half

    m, lo, hi = ci(d)
    pm, plo, phi = ci(pct)
    return {
        "n_rounds": n,
        "baseline_ns": statistics.fmean(base),
        "overhead_ns": m,
        "ci95_ns": [lo, hi],
        "overhead_pct": pm,
        "ci95_pct": [plo, phi],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--blocks", type=int, default=3, help="alternations of A and B")
    ap.add_argument("--rounds", type=int, default=4, help="rounds per block per tool")
    ap.add_argument("--loops", type=int, default=2000, help="preads per batch")
    ap.add_argument("--batches", type=int, default=25, help="batches per config per round")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None, help="write all raw values here")
    ap.add_argument(
        "--sweep",
        default=None,
        help="readbench only: comma-separated hooks to compare with none in-process "
        "(e.g. every body), rounds = blocks x rounds; no C cross-check",
    )
    ap.add_argument(
        "--reference",
        action="store_true",
        help="only the C program's in-process paired reference for rawtp:sys_enter "
        "(8 processes x 10 pairs x 100k preads); prints one JSON object",
    )
    args = ap.parse_args(argv)
    assert "scipy" not in sys.modules  # see paired()
    if os.geteuid() != 0:
        print("needs root (BPF)", file=sys.stderr)
        return 3

    data = args.data or Path.home() / ".cache" / "readbench" / "crosscheck-64KiB.bin"
    if not data.exists():
        data.parent.mkdir(parents=True, exist_ok=True)
        data.write_bytes(os.urandom(64 << 10))
    if args.sweep:
        names = ["none"] + [hookspec.parse(h).name for h in args.sweep.split(",")]
        rng = random.Random(args.seed)
        r = python_rounds(
            data, args.size, args.blocks * args.rounds, args.loops, args.batches, rng, names
        )
        summary = {h: paired(r["none"], r[h]) for h in names[1:]}
        print(f"cached pread {args.size} B, in-process, fastest batch per round")
        for h, s in summary.items():
            print(
                f"  {h:40} +{s['overhead_ns']:6.1f} ns [{s['ci95_ns'][0]:6.1f}, "
                f"{s['ci95_ns'][1]:6.1f}]  +{s['overhead_pct']:5.1f}%  (n={s['n_rounds']})"
            )
        if args.json:
            args.json.write_text(json.dumps({"raw": r, "summary": summary}, indent=1))
        return 0
    exe = build_c()
    if args.reference:
        print(json.dumps(paired_reference(exe, data, args.size, seed=args.seed), indent=1))
        return 0
    rng = random.Random(args.seed)
    py: dict[str, list[float]] = {h: [] for h in HOOKS}
    cc: dict[str, list[float]] = {h: [] for h in HOOKS}
    load0 = os.getloadavg()
    t0 = time.time()
    for b in range(args.blocks):
        first_py = b % 2 == 0  # alternate which tool goes first
        for which in ("py", "c") if first_py else ("c", "py"):
            if which == "py":
                r = python_rounds(data, args.size, args.rounds, args.loops, args.batches, rng)
                dst = py
            else:
                r = c_rounds(
                    exe, data, args.size, args.rounds, args.loops, args.batches, args.seed + b
                )
                dst = cc
            for h in HOOKS:
                dst[h].extend(r[h])
    sp = stats_pass(data, args.size, args.blocks * 2, args.loops, args.batches, rng)
    result: dict[str, Any] = {
        "size": args.size,
        "kernel": os.uname().release,
        "wall_s": time.time() - t0,
        "loadavg_before_after": [load0, os.getloadavg()],
        "raw": {"readbench": py, "bpf_crosscheck_c": cc},
        "readbench": {h: paired(py["none"], py[h]) for h in HOOKS[1:]},
        "bpf_crosscheck_c": {h: paired(cc["none"], cc[h]) for h in HOOKS[1:]},
        "stats_pass": sp,
    }
    agree = {}
    for h in HOOKS[1:]:
        a = result["readbench"][h]["overhead_ns"]
        c = result["bpf_crosscheck_c"][h]["overhead_ns"]
        prog = sp[h]["body_ns_per_op"]
        agree[h] = {
            "readbench_ns": a,
            "c_ns": c,
            "rel_diff": abs(a - c) / abs(c),
            "within_25pct": abs(a - c) <= 0.25 * abs(c),
            "program_ns_per_op": prog,
            "mechanism_ns_per_op": a - prog,
            "stats_cost_ns_per_op": sp[h]["stats_cost_ns_per_op"],
        }
    result["agreement"] = agree

    print(f"cached pread {args.size} B, kernel {result['kernel']}, load {load0[0]:.2f}")
    for tool in ("readbench", "bpf_crosscheck_c"):
        for h in HOOKS[1:]:
            s = result[tool][h]
            print(
                f"  {tool:17} {h:32} base {s['baseline_ns']:7.1f} ns  "
                f"+{s['overhead_ns']:6.1f} ns [{s['ci95_ns'][0]:6.1f}, {s['ci95_ns'][1]:6.1f}]  "
                f"+{s['overhead_pct']:5.1f}% [{s['ci95_pct'][0]:5.1f}, {s['ci95_pct'][1]:5.1f}]"
                f"  (n={s['n_rounds']})"
            )
    for h, g in agree.items():
        print(
            f"  {h:32} readbench vs C: {g['rel_diff'] * 100:5.1f}% apart "
            f"({'OK' if g['within_25pct'] else 'DISAGREE'})\n"
            f"      split of readbench's +{g['readbench_ns']:.1f} ns: program body "
            f"{g['program_ns_per_op']:.1f} ns/op + mechanism {g['mechanism_ns_per_op']:.1f}"
            f" ns/op  [stats: {sp[h]['prog_ns_per_run']:.1f} ns/run raw, floor "
            f"{sp[h]['floor_ns_per_run']:.1f} ns/run, {sp[h]['runs_per_op']:.2f} runs/op; "
            f"stats on cost +{g['stats_cost_ns_per_op']:.1f} ns/op; timing on-vs-floor "
            f"+{sp[h]['floor_vs_on_ns_per_op']:.1f} ns/op]"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0 if all(g["within_25pct"] for g in agree.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
