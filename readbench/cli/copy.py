"""`readbench copy`: the kernel's copy strategies as user-space replicas, side by side.

    readbench copy [--sizes 8,64,4K] [--variants movsb,movsq,unrolled,libc]
                   [--small] [--src-align N[,M..]] [--dst-align N[,M..]] [--json] [--out FILE]

Prints GB/s and ns per copy per variant and size (pyperf), then the cross-check
against `perf bench mem memcpy` at 4 KiB and 64 KiB (skipped functions are listed).
--json prints {results, perf_bench, skipped, ...} (the results/<run>/copy.json shape).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from readbench.cli.common import emit_json
from readbench.errors import BadInput


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    from readbench.copy import replicas

    p = subparsers.add_parser(
        "copy",
        help="user-space replicas of the kernel copy routines, GB/s per size",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--sizes", default=None, help="comma list (64, 4K, 1M); default: design list")
    p.add_argument("--small", action="store_true", help="add every size 1..128")
    p.add_argument(
        "--variants",
        default=",".join(replicas.DEFAULT_VARIANTS),
        help=f"comma list or 'all' ({', '.join(replicas.VARIANTS)})",
    )
    p.add_argument("--src-align", default="0", help="source misalignment(s) in bytes, 0..4095")
    p.add_argument("--dst-align", default="0", help="destination misalignment(s), 0..4095")
    p.add_argument("--rounds", type=int, default=2, help="shuffled pyperf runs, merged")
    p.add_argument("--processes", type=int, default=2, help="pyperf workers per round")
    p.add_argument("--values", type=int, default=3, help="pyperf values per worker")
    p.add_argument("--min-time", type=float, default=0.01, help="pyperf seconds per value")
    p.add_argument("--no-perf-bench", action="store_true", help="skip the perf bench check")
    p.add_argument("--perf-bench-rounds", type=int, default=7)
    p.add_argument("--pyperf-json", default=None, help="also keep the merged pyperf suite here")
    p.add_argument("--out", default=None, help="write the JSON object to this file too")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=run)
    return p


def _ints(text: str, what: str) -> list[int]:
    try:
        vals = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise BadInput(f"{what} {text!r}: expected integers like 0 or 0,1,7") from None
    if not vals:
        raise BadInput(f"{what} {text!r}: empty")
    return vals


def run(args: argparse.Namespace) -> int:
    from readbench.copy import perf_bench, replicas
    from readbench.copy.sweep import sweep
    from readbench.model import matrix

    sizes = matrix.parse_sizes(args.sizes) if args.sizes else list(matrix.DESIGN_SIZES)
    if args.small:
        sizes = sorted(set(sizes) | set(range(1, 129)))
    variants = (
        list(replicas.VARIANTS)
        if args.variants.strip() == "all"
        else matrix.parse_list(args.variants, "--variants")
    )
    replicas.check_variants(variants)
    src_aligns = [
        replicas.check_align(a, "--src-align") for a in _ints(args.src_align, "--src-align")
    ]
    dst_aligns = [
        replicas.check_align(a, "--dst-align") for a in _ints(args.dst_align, "--dst-align")
    ]
    for name, v in (("--rounds", args.rounds), ("--processes", args.processes)):
        if v < 1:
            raise BadInput(f"{name} {v}: must be at least 1")
    if args.values < 1 or args.min_time <= 0:
        raise BadInput("--values must be >= 1 and --min-time > 0")

    def say(msg: str) -> None:
        if not args.json:
            print(msg, file=sys.stderr)

    out, pb = sweep(sizes, variants, src_aligns, dst_aligns, rounds=args.rounds,
                processes=args.processes, values=args.values, min_time=args.min_time,
                check_perf_bench=not args.no_perf_bench,
                perf_bench_rounds=args.perf_bench_rounds, pyperf_json=args.pyperf_json,
                say=say)  # fmt: skip
    results = out["results"]
    if args.out:
        from readbench.store.rundir import atomic_write_json

        atomic_write_json(Path(args.out), out)
    if args.json:
        emit_json(out)
        return 0
    for sa in src_aligns:
        for da in dst_aligns:
            part = [r for r in results if r["src_align"] == sa and r["dst_align"] == da]
            print(f"\nsrc+{sa} dst+{da}  (pyperf medians)")
            print(replicas.format_table(part))
    if pb is not None:
        print()
        print(perf_bench.format_table(pb))
    r = out["kernel_routine"]
    if r:
        print(f"\nthis kernel copies with: {r['name']} ({r['why']})")
    return 0
