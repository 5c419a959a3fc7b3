"""The answer first: one sentence per workload, built from the run's measured claims, e.g.
"an empty raw tracepoint on sys_enter adds 54 ns (95% CI 49–59) to a 64-byte cached pread
(+14%)".

The rule is fixed in advance, so the sentence cannot be chosen by the noise: per workload,
the hooks with an empty body (or every hook, when none is empty) at the smallest hooked size;
among them the one whose cost the run bounds lowest, i.e. ranked by the upper end of the
95 % interval of Δ, then by the estimate (as the atlas ranks points,
readbench.analysis.recommend). Ranking by the estimate itself would pick the luckiest draw
(the winner's curse). A claim measured faster with its hook is a confound, never ranked as
a cost; when every candidate is one, the sentence says so. "adds" is only ever said of a
significant positive Δ."""

from __future__ import annotations

from typing import Any

from readbench.errors import BadInput
from readbench.model.hookspec import parse
from readbench.model.workloads import BY_NAME

_KIND = {
    "rawtp": "raw tracepoint",
    "tp": "classic tracepoint",
    "tpbtf": "BTF tracepoint",
    "fentry": "fentry program",
    "fexit": "fexit program",
    "kprobe": "kprobe",
    "kretprobe": "kretprobe",
}
RULE = (
    "per workload: the empty-body hooks at the smallest hooked size, ranked by the upper end "
    "of Δ's 95 % interval, then by Δ; a claim measured faster with its hook (a confound) is "
    "never ranked as a cost"
)


def _size(n: int) -> str:
    for unit, b in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= b and n % b == 0:
            return f"{n // b} {unit}"
    return f"{n}-byte"


def _range(lo: float, hi: float) -> str:
    # "−20 to −5" reads where "-20–-5" does not
    return f"{lo:.0f} to {hi:.0f}" if lo < 0 or hi < 0 else f"{lo:.0f}–{hi:.0f}"


def is_confound(c: dict[str, Any]) -> bool:
    """Significant and faster with the hook, or a whole interval below zero."""
    ci = c.get("delta_ci95")
    d = c.get("delta_ns")
    return bool((c.get("significant") and d is not None and d < 0) or (ci and ci[1] < 0))


def sentence(c: dict[str, Any]) -> str:
    """The claim in words; a claim whose read's A/A sham toggle failed says so."""
    tc = c.get("toggle_confound")
    return _sentence(c) + (f"; but {tc['sentence']}" if tc else "")


def _sentence(c: dict[str, Any]) -> str:
    try:
        spec = parse(c["hook"])
        body = "an empty" if spec.body == "empty" else f"a {spec.body}"
        what = f"{body} {_KIND[spec.attach]} on {spec.target.split('/')[-1]}"
    except BadInput:  # a hook name this version does not know (an older or foreign run)
        what = f"the hook {c['hook']}"
    w = BY_NAME.get(c["workload"])
    op = f"a {_size(c['size'])} {w.phrase if w else c['workload'] + ' read'}"
    ci = c.get("delta_ci95")
    ci_txt = f" (95% CI {_range(ci[0], ci[1])})" if ci else ""
    pct = f"{c['overhead_pct']:+.0f}%" if abs(c["overhead_pct"]) >= 1 else (
        f"{c['overhead_pct']:+.1f}%")  # fmt: skip
    if is_confound(c):
        return (
            f"{what} on {op} measured faster with the hook, {c['delta_ns']:+.0f} ns{ci_txt}: "
            "a confound to find (the toggle or the order changed something), not a cost"
        )
    if c.get("significant") and c["delta_ns"] > 0:
        return f"{what} adds {c['delta_ns']:.0f} ns{ci_txt} to {op} ({pct})"
    if c.get("equivalent"):
        return f"{what} adds nothing detectable to {op}: within ±{c['margin_pct']:g}% ({pct})"
    return (
        f"{what} on {op}: {c['delta_ns']:+.0f} ns{ci_txt}, not significant after Holm "
        f"({c['verdict']})"
    )


def _rank(c: dict[str, Any]) -> tuple[float, float]:
    ci = c.get("delta_ci95")
    return (float(ci[1]) if ci else float("inf"), float(c["delta_ns"]))


def headlines(comparisons: list[dict[str, Any]], margin: float) -> list[dict[str, Any]]:
    out = []
    for w in sorted({c["workload"] for c in comparisons}):
        empty = [c for c in comparisons if c["workload"] == w and c["hook"].endswith(":empty")]
        pool = empty or [c for c in comparisons if c["workload"] == w]
        smallest = min(c["size"] for c in pool)
        at = [c for c in pool if c["size"] == smallest and c.get("delta_ns") is not None]
        if not at:
            continue
        costs = [c for c in at if not is_confound(c)]
        best = min(costs or at, key=_rank)
        out.append(
            {
                "workload": w,
                "cell": best["name"],
                "rule": RULE,
                "confound": is_confound(best),
                "text": sentence({**best, "margin_pct": margin * 100}),
            }
        )
    return out
