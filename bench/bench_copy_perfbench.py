"""Side by side: our copy replicas vs `perf bench mem memcpy` at 4 KiB and 64 KiB.

    python bench/bench_copy_perfbench.py [--rounds 9] [--variants movsb,movsq,unrolled,libc]
                                         [--json]

Alternates one perf bench run and one replica run per (variant, size) per round, in a
shuffled order, and prints the medians, ours/perf GB/s ratio and cycles/byte ratio.
Exit status 1 when a GB/s ratio is outside ±20 % (a replica that does not do the
same job as perf's routine), 0 otherwise; skipped functions are listed.
"""

from __future__ import annotations

import argparse
import json
import sys

from readbench.copy import perf_bench


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--variants", default="movsb,movsq,unrolled,libc")
    p.add_argument("--sizes", default="4096,65536")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    v = perf_bench.validate(
        a.variants.split(","), [int(s) for s in a.sizes.split(",")], rounds=a.rounds
    )
    if a.json:
        json.dump(v, sys.stdout, indent=2)
        print()
    else:
        print(perf_bench.format_table(v))
    return 0 if all(r["agree"] for r in v["results"]) else 1


if __name__ == "__main__":
    sys.exit(main())
