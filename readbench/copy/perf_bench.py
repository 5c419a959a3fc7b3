"""Cross-check of the copy replicas against `perf bench mem memcpy` (tools/perf/bench).

perf bench times `-l N` copies of the same mmap'd, prefaulted buffers with
gettimeofday; our replica loop (cr_time) does the same, so at 4 KiB and 64 KiB the
GB/s should agree. Runs alternate perf-bench / ours per round (shared, noisy machine)
and each side reports the median over rounds. Functions the installed perf does not
list under `-f help` (newer perf dropped x86-64-movsb) are reported as skipped.
"""

from __future__ import annotations

import random
import re
import shutil
import statistics
import subprocess
from collections.abc import Sequence
from typing import Any

from readbench.copy.replicas import Buffers
from readbench.kernel import perf_event_open

# our variant -> perf bench function and why they are the same job
PAIRS: dict[str, tuple[str, str]] = {
    "movsb": ("x86-64-movsb", "memcpy_erms: one rep movsb (ours takes it too from 64 B)"),
    "rep_movsb": ("x86-64-movsb", "memcpy_erms: one rep movsb"),
    "movsq": ("x86-64-movsq", "__memcpy: rep movsq + rep movsb (ours adds dst alignment)"),
    "unrolled": ("x86-64-unrolled", "memcpy_orig: unrolled movq loop (32 B per iteration)"),
    "libc": ("default", "glibc memcpy"),
}
DEFAULT_SIZES = (4096, 65536)
TOLERANCE = 0.20
TARGET_BYTES = 256 * 1024 * 1024  # per run: ~10 ms at 25 GB/s, far above gettimeofday's µs


def perf_path() -> str | None:
    return shutil.which("perf")


def available_functions(perf: str | None = None) -> tuple[list[str], str]:
    """Function names `perf bench mem memcpy -f help` lists, and perf's version string."""
    perf = perf or perf_path()
    if perf is None:
        return [], ""
    p = subprocess.run(
        [perf, "bench", "mem", "memcpy", "-f", "help"], capture_output=True, text=True
    )
    names = re.findall(r"^\s+(\S+) \.\.\. ", p.stdout + p.stderr, re.M)
    v = subprocess.run([perf, "--version"], capture_output=True, text=True).stdout.strip()
    return names, v


def buffer_layout(perf: str | None = None) -> tuple[str, str]:
    """How the installed perf places its buffers, which matters: on this Zen 4 a rep movsb
    whose destination sits 1..63 bytes past its source (mod 4 KiB) runs ~20x slower.

    perf <= 6.16 allocates dst = zalloc(size) then src = zalloc(size): glibc puts src
    right after dst plus a 16-byte chunk header, so src - dst = size + 16. The 2025
    series that added --page switched to mmap(MAP_POPULATE): both page-aligned.
    """
    perf = perf or perf_path()
    if perf is None:
        return "unknown", ""
    p = subprocess.run([perf, "bench", "mem", "memcpy", "-h"], capture_output=True, text=True)
    if "--page" in p.stdout + p.stderr:
        return "mmap", "page-aligned mmap(MAP_POPULATE) buffers (perf with --page)"
    return "malloc", "zalloc(dst) then zalloc(src): src = dst + size + 16 (glibc chunk header)"


def layout_aligns(layout: str, size: int) -> tuple[int, int]:
    """(src_align, dst_align) for our page-aligned Buffers that reproduce perf's layout."""
    if layout == "malloc":
        return (size + 16) % 4096, 0
    return 0, 0


def run_perf_bench(
    function: str, size: int, loops: int, perf: str | None = None, cycles: bool = False
) -> float:
    """Bytes per second (or, with cycles, cycles per byte) from one `perf bench
    --format=simple mem memcpy` run."""
    perf = perf or perf_path()
    assert perf is not None
    cmd = [perf, "bench", "--format=simple", "mem", "memcpy"]
    cmd += ["-s", f"{size}B", "-l", str(loops), "-f", function] + (["-c"] if cycles else [])
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr.strip()}")
    nums = [ln for ln in p.stdout.splitlines() if re.fullmatch(r"\s*[\d.]+\s*", ln)]
    if not nums:
        raise RuntimeError(f"{' '.join(cmd)}: no number in output {p.stdout!r}")
    return float(nums[-1])


def validate(
    variants: Sequence[str] = ("movsb", "movsq", "unrolled", "libc"),
    sizes: Sequence[int] = DEFAULT_SIZES,
    rounds: int = 7,
    seed: int | None = None,
) -> dict[str, Any]:
    """{'results': [...], 'skipped': [...], 'perf_version': str} with ratio = ours / perf."""
    perf = perf_path()
    offered, version = available_functions(perf)
    skipped: list[dict[str, Any]] = []
    todo = []
    for v in variants:
        if v not in PAIRS:
            skipped.append({"variant": v, "reason": "no perf bench counterpart"})
            continue
        fn, _ = PAIRS[v]
        if perf is None:
            skipped.append({"variant": v, "function": fn, "reason": "perf not installed"})
        elif fn not in offered:
            skipped.append(
                {
                    "variant": v,
                    "function": fn,
                    "reason": f"{version or 'perf'} does not offer {fn} (-f help lists "
                    f"{', '.join(offered) or 'nothing'})",
                }
            )
        else:
            todo.extend((v, fn, s) for s in sizes)
    layout, layout_why = buffer_layout(perf)
    bufs = {s: Buffers(s, *layout_aligns(layout, s)) for s in sizes}
    for v, _, s in todo:
        bufs[s].verify(v)
        bufs[s].time_ns(v, 1000)  # warm, like perf's untimed prefault copy
    ours: dict[tuple[str, int], list[float]] = {k[::2]: [] for k in todo}
    theirs: dict[tuple[str, int], list[float]] = {k[::2]: [] for k in todo}
    # Cycles per byte as well where a cycles counter opens: it counts only while the
    # task runs, so it survives preemption on a shared machine that wall-clock GB/s
    # does not; perf bench -c counts the same way (a per-process cycles counter).
    group = None if perf_event_open.force_software() else perf_event_open.CounterGroup("hardware")
    if group is not None:
        group.open(["cycles"])
        if group.leader < 0:
            group = None
    ours_c: dict[tuple[str, int], list[float]] = {k[::2]: [] for k in todo}
    theirs_c: dict[tuple[str, int], list[float]] = {k[::2]: [] for k in todo}
    rng = random.Random(seed)
    try:
        for _ in range(rounds):
            order = list(todo)
            rng.shuffle(order)
            for v, fn, s in order:
                loops = max(1, TARGET_BYTES // s)
                theirs[(v, s)].append(run_perf_bench(fn, s, loops, perf) / 1e9)
                ours[(v, s)].append(s * loops / bufs[s].time_ns(v, loops))
                if group is not None:
                    theirs_c[(v, s)].append(run_perf_bench(fn, s, loops, perf, cycles=True))
                    ours_c[(v, s)].append(_cycles(group, bufs[s], v, loops) / (s * loops))
    finally:
        if group is not None:
            group.close()
    results = []
    for v, fn, s in todo:
        o, t = statistics.median(ours[(v, s)]), statistics.median(theirs[(v, s)])
        ratio = o / t
        row: dict[str, Any] = {
            "variant": v,
            "perf_function": fn,
            "same_job": PAIRS[v][1],
            "size": s,
            "ours_gbps": o,
            "perf_gbps": t,
            "ratio": ratio,
            "agree": abs(ratio - 1) <= TOLERANCE,
            "rounds": rounds,
            "src_align": layout_aligns(layout, s)[0],
            "dst_align": layout_aligns(layout, s)[1],
            "ours_range": [min(ours[(v, s)]), max(ours[(v, s)])],
            "perf_range": [min(theirs[(v, s)]), max(theirs[(v, s)])],
            "ours_cycles_per_byte": None,
            "perf_cycles_per_byte": None,
            "cycles_ratio": None,
            "cycles_agree": None,
        }
        if ours_c[(v, s)]:
            oc, tc = statistics.median(ours_c[(v, s)]), statistics.median(theirs_c[(v, s)])
            # perf/ours, so that > 1 means ours is faster, as in the GB/s ratio
            row.update(
                ours_cycles_per_byte=oc,
                perf_cycles_per_byte=tc,
                cycles_ratio=tc / oc,
                cycles_agree=abs(tc / oc - 1) <= TOLERANCE,
            )
        results.append(row)
    return {
        "perf_version": version,
        "offered": offered,
        "layout": layout,
        "layout_why": layout_why,
        "tolerance": TOLERANCE,
        "results": results,
        "skipped": skipped,
        "unit": "GB/s = 1e9 bytes/s (perf's simple output is bytes/s)",
    }


def _cycles(group: perf_event_open.CounterGroup, b: Buffers, v: str, loops: int) -> float:
    group.read()
    before = group.counters[0].value or 0
    b.time_ns(v, loops, ctl_fd=group.leader)
    group.read()
    return float((group.counters[0].value or 0) - before)


def format_table(v: dict[str, Any]) -> str:
    lines = [
        f"perf bench mem memcpy cross-check ({v['perf_version'] or 'perf missing'}), "
        f"median of alternating runs, agree = within {v['tolerance']:.0%}",
        f"buffers placed as perf places them: {v['layout_why'] or v['layout']}",
        f"{'variant':>10} {'perf function':>16} {'size':>7} {'ours GB/s':>10} "
        f"{'perf GB/s':>10} {'ratio':>6}  agree {'ours c/B':>9} {'perf c/B':>9} "
        f"{'ratio':>6}  agree",
    ]
    for r in v["results"]:
        lines.append(
            f"{r['variant']:>10} {r['perf_function']:>16} {r['size']:>7} {r['ours_gbps']:10.2f} "
            f"{r['perf_gbps']:10.2f} {r['ratio']:6.3f}  {'yes' if r['agree'] else 'NO ':<5}"
            + (
                f" {r['ours_cycles_per_byte']:9.4f} {r['perf_cycles_per_byte']:9.4f} "
                f"{r['cycles_ratio']:6.3f}  {'yes' if r['cycles_agree'] else 'NO'}"
                if r["cycles_ratio"] is not None
                else "  (no cycles counter)"
            )
        )
    for s in v["skipped"]:
        lines.append(f"skipped {s['variant']}: {s['reason']}")
    return "\n".join(lines)
