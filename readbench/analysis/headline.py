"""The answer first: one sentence per workload, built from the run's measured claims, e.g.
"an empty raw tracepoint on sys_enter adds 54 ns (95% CI 49–59) to a 64-byte cached pread
(+14%)". For each workload it names the cheapest measured empty hook at the smallest hooked
size, so the sentence answers "what does the least I can attach here cost?"."""

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


def _size(n: int) -> str:
    for unit, b in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= b and n % b == 0:
            return f"{n // b} {unit}"
    return f"{n}-byte"


def sentence(c: dict[str, Any]) -> str:
    try:
        spec = parse(c["hook"])
        body = "an empty" if spec.body == "empty" else f"a {spec.body}"
        what = f"{body} {_KIND[spec.attach]} on {spec.target.split('/')[-1]}"
    except BadInput:  # a hook name this version does not know (an older or foreign run)
        what = f"the hook {c['hook']}"
    w = BY_NAME.get(c["workload"])
    op = f"a {_size(c['size'])} {w.phrase if w else c['workload'] + ' read'}"
    ci = c.get("delta_ci95")
    ci_txt = f" (95% CI {ci[0]:.0f}–{ci[1]:.0f})" if ci else ""
    pct = f"{c['overhead_pct']:+.0f}%" if abs(c["overhead_pct"]) >= 1 else (
        f"{c['overhead_pct']:+.1f}%")  # fmt: skip
    if c.get("significant"):
        return f"{what} adds {c['delta_ns']:.0f} ns{ci_txt} to {op} ({pct})"
    if c.get("equivalent"):
        return f"{what} adds nothing detectable to {op}: within ±{c['margin_pct']:g}% ({pct})"
    return (
        f"{what} on {op}: {c['delta_ns']:+.0f} ns{ci_txt}, not significant after Holm "
        f"({c['verdict']})"
    )


def headlines(comparisons: list[dict[str, Any]], margin: float) -> list[dict[str, Any]]:
    out = []
    for w in sorted({c["workload"] for c in comparisons}):
        empty = [c for c in comparisons if c["workload"] == w and c["hook"].endswith(":empty")]
        pool = empty or [c for c in comparisons if c["workload"] == w]
        smallest = min(c["size"] for c in pool)
        at = [c for c in pool if c["size"] == smallest and c.get("delta_ns") is not None]
        if not at:
            continue
        best = min(at, key=lambda c: c["delta_ns"])
        out.append(
            {
                "workload": w,
                "cell": best["name"],
                "text": sentence({**best, "margin_pct": margin * 100}),
            }
        )
    return out
