"""User-space sweep of the kernel copy strategies (workloads/copy_replicas.c), timed by pyperf.

`sweep()` launches this module as a pyperf script (`python -m readbench.copy.replicas`),
one benchmark per (variant, size), in `rounds` separate pyperf runs whose benchmark
order is shuffled, so drift on a shared machine hits every variant alike; the runs of
all rounds are merged per benchmark. Each pyperf value is one C loop of `loops` copies
of the same hot buffers (like `perf bench mem memcpy -l N`); every replica is checked
byte for byte before it is timed.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from readbench.errors import BadInput, MeasurementError, MissingCapability

# name -> enum cr_variant in copy_replicas.h
VARIANTS: dict[str, int] = {
    "movsb": 0,  # ERMS routine: < 64 short-copy loops, else rep movsb
    "movsq": 1,  # string routine: align dst, rep movsq, rep movsb tail
    "unrolled": 2,  # unrolled routine: 64-byte movq blocks, words, bytes
    "libc": 3,  # glibc memcpy (its own ifunc choice)
    "rep_movsb": 4,  # rep movsb for every length (FSRM path, perf's x86-64-movsb)
    "rma": 5,  # rep_movs_alternative 6.15+ without ERMS (this VM's routine)
}
DEFAULT_VARIANTS = ["movsb", "movsq", "unrolled", "libc"]
DESCRIPTIONS = {
    "movsb": "copy_user_enhanced_fast_string (ERMS, no FSRM): <64 movq/byte loops, else rep movsb",
    "movsq": "copy_user_generic_string: align destination, rep movsq, rep movsb tail",
    "unrolled": "copy_user_generic_unrolled: align destination, 64-byte movq blocks, words, bytes",
    "libc": "glibc memcpy",
    "rep_movsb": "one rep movsb for every length (FSRM inline copy; perf's memcpy_erms)",
    "rma": "rep_movs_alternative, 6.15+ without ERMS: loops <64, dst-aligned rep movsq",
}
BUF_ALIGN = 4096


def _lib() -> Any:
    try:
        from readbench.copy import _replicas
    except ImportError as e:
        raise MissingCapability(
            "readbench.copy._replicas is not built: run `pip install -e . --no-build-isolation` "
            f"(needs a C compiler) [{e}]"
        ) from e
    return _replicas


def check_variants(names: Sequence[str]) -> list[str]:
    bad = [v for v in names if v not in VARIANTS]
    if bad:
        raise BadInput(f"--variants: unknown {', '.join(bad)} (choose from {', '.join(VARIANTS)})")
    if not names:
        raise BadInput("--variants: empty list")
    return list(names)


def check_align(value: int, what: str) -> int:
    if not 0 <= value < BUF_ALIGN:
        raise BadInput(f"{what} {value}: must be 0..{BUF_ALIGN - 1} bytes")
    return value


class Buffers:
    """Page-aligned source and destination (+ misalignment), prefaulted and filled."""

    def __init__(self, size: int, src_align: int = 0, dst_align: int = 0) -> None:
        m = _lib()
        self.ffi, self.lib = m.ffi, m.lib
        self.size = size
        span = size + BUF_ALIGN * 2
        self._src = self.ffi.new("unsigned char[]", span)
        self._dst = self.ffi.new("unsigned char[]", span)
        self.src = self._aligned(self._src) + src_align
        self.dst = self._aligned(self._dst) + dst_align
        pattern = random.Random(size).randbytes(size)
        self.ffi.memmove(self.src, pattern, size)
        self.expected = pattern

    def _aligned(self, p: Any) -> Any:
        return p + (-int(self.ffi.cast("uintptr_t", p))) % BUF_ALIGN

    def verify(self, variant: str) -> None:
        """Copy once and compare: a wrong replica must never be timed."""
        self.ffi.memmove(self.dst, b"\0" * self.size, self.size)
        self.lib.cr_copy(VARIANTS[variant], self.dst, self.src, self.size)
        if bytes(self.ffi.buffer(self.dst, self.size)) != self.expected:
            raise MeasurementError(f"replica {variant} copied wrong bytes at size {self.size}")

    def time_ns(self, variant: str, loops: int, ctl_fd: int = -1) -> int:
        """ns for `loops` copies; ctl_fd: a perf group leader counting only the loop."""
        return int(
            self.lib.cr_time_ctl(VARIANTS[variant], self.dst, self.src, self.size, loops, ctl_fd)
        )


def bench_name(variant: str, size: int, src_align: int, dst_align: int) -> str:
    return f"copy/{variant}/{size}/src+{src_align}/dst+{dst_align}"


def sweep(
    sizes: Sequence[int],
    variants: Sequence[str] = DEFAULT_VARIANTS,
    src_align: int = 0,
    dst_align: int = 0,
    *,
    rounds: int = 2,
    processes: int = 2,
    values: int = 3,
    warmups: int = 1,
    min_time: float = 0.01,
    seed: int | None = None,
    json_out: str | os.PathLike[str] | None = None,
    progress: Any = None,
) -> list[dict[str, Any]]:
    """GB/s (1e9 bytes/s) and ns per copy for every (variant, size), measured with pyperf.

    pyperf workers per benchmark = rounds × processes (plus one calibration worker per
    round). json_out: where to keep the merged pyperf suite (pyperf show/stats read it).
    """
    import pyperf

    variants = check_variants(list(variants))
    check_align(src_align, "--src-align")
    check_align(dst_align, "--dst-align")
    if not sizes or any(s <= 0 for s in sizes):
        raise BadInput("copy sizes must be positive")
    for s in sorted(set(sizes)):
        b = Buffers(s, src_align, dst_align)
        for v in variants:
            b.verify(v)
    rng = random.Random(seed)
    pairs = [(v, s) for s in sizes for v in variants]
    merged: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="readbench-copy-") as tmp:
        for r in range(rounds):
            rng.shuffle(pairs)
            out = Path(tmp) / f"round{r}.json"
            cmd = [
                sys.executable,
                "-m",
                "readbench.copy.replicas",
                "--quiet",
                "--copy-env",
                f"--processes={processes}",
                f"--values={values}",
                f"--warmups={warmups}",
                f"--min-time={min_time}",
                f"--output={out}",
                "--cb-pairs=" + ",".join(f"{v}:{s}" for v, s in pairs),
                f"--cb-src-align={src_align}",
                f"--cb-dst-align={dst_align}",
            ]
            if progress:
                progress(f"round {r + 1}/{rounds}: {len(pairs)} benchmarks")
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode != 0:
                raise MeasurementError(
                    f"pyperf copy sweep failed (exit {p.returncode}): {p.stderr.strip()[-2000:]}"
                )
            suite = pyperf.BenchmarkSuite.load(str(out))
            for bench in suite.get_benchmarks():
                name = bench.get_name()
                if name in merged:
                    merged[name].add_runs(bench)
                else:
                    merged[name] = bench
    if json_out is not None:
        pyperf.BenchmarkSuite(list(merged.values())).dump(str(json_out), replace=True)
    results = []
    for s in sizes:
        for v in variants:
            bench = merged[bench_name(v, s, src_align, dst_align)]
            vals = bench.get_values()  # seconds per copy, one per pyperf value
            med = bench.median() * 1e9
            results.append(
                {
                    "variant": v,
                    "size": s,
                    "src_align": src_align,
                    "dst_align": dst_align,
                    "gbps": s / med,
                    "ns_per_copy": med,
                    "ns_mean": bench.mean() * 1e9,
                    "ns_stdev": bench.stdev() * 1e9 if len(vals) > 1 else None,
                    "values": len(vals),
                    "processes": bench.get_nrun(),
                    "loops": bench.get_runs()[-1].get_loops(),
                    "stat": "median of pyperf values (per-copy time incl. one indirect call)",
                }
            )
    return results


def _main() -> None:
    """pyperf script: one benchmark per (variant, size) pair named on the command line."""
    import pyperf

    def add_args(cmd: list[str], args: Any) -> None:
        cmd.extend(
            [
                f"--cb-pairs={args.cb_pairs}",
                f"--cb-src-align={args.cb_src_align}",
                f"--cb-dst-align={args.cb_dst_align}",
            ]
        )

    runner = pyperf.Runner(
        program_args=("-m", "readbench.copy.replicas"), add_cmdline_args=add_args
    )
    runner.argparser.add_argument("--cb-pairs", required=True)
    runner.argparser.add_argument("--cb-src-align", type=int, default=0)
    runner.argparser.add_argument("--cb-dst-align", type=int, default=0)
    args = runner.parse_args()
    bufs: dict[int, Buffers] = {}

    def time_func(loops: int, variant: str, size: int) -> float:
        b = bufs.get(size)
        if b is None:  # allocated in the worker that times it, outside the timing
            b = bufs[size] = Buffers(size, args.cb_src_align, args.cb_dst_align)
            b.verify(variant)
        return b.time_ns(variant, loops) / 1e9

    for item in args.cb_pairs.split(","):
        v, s = item.split(":")
        runner.bench_time_func(
            bench_name(v, int(s), args.cb_src_align, args.cb_dst_align),
            time_func,
            v,
            int(s),
            metadata={"copy_variant": v, "copy_size": int(s), "unit": "second"},
        )


def format_table(results: list[dict[str, Any]]) -> str:
    variants = list(dict.fromkeys(r["variant"] for r in results))
    sizes = list(dict.fromkeys(r["size"] for r in results))
    by = {(r["variant"], r["size"]): r for r in results}
    head = f"{'size':>8}  " + "  ".join(f"{v:>18}" for v in variants)
    lines = [head, f"{'':>8}  " + "  ".join(f"{'GB/s   ns/copy':>18}" for _ in variants)]
    for s in sizes:
        cells = []
        for v in variants:
            r = by.get((v, s))
            cells.append(f"{r['gbps']:8.2f} {r['ns_per_copy']:9.2f}" if r else f"{'-':>18}")
        lines.append(f"{s:>8}  " + "  ".join(cells))
    return "\n".join(lines)


if __name__ == "__main__":
    _main()
