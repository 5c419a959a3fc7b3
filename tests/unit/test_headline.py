"""The answer's sentences (readbench.analysis.headline): the fixed choice rule, the words
for each verdict, and the confound that is never called a cost. Claims are hand-made dicts
in the shape analysis.stats writes (SYNTHETIC numbers, not measurements)."""

from __future__ import annotations

from typing import Any

from readbench.analysis import headline


def claim(hook: str, size: int = 64, workload: str = "cached", **kw: Any) -> dict[str, Any]:
    c = {"name": f"{workload}/{size}/{hook}", "workload": workload, "size": size,
         "hook": hook, "delta_ns": 54.0, "delta_ci95": [49.0, 59.0], "overhead_pct": 14.2,
         "significant": True, "equivalent": False, "verdict": "slower"}  # fmt: skip
    return {**c, **kw}


def test_a_significant_cost_reads_as_an_addition_with_its_interval() -> None:
    text = headline.sentence(claim("rawtp:sys_enter:empty"))
    assert text == (
        "an empty raw tracepoint on sys_enter adds 54 ns (95% CI 49–59) to a 64-byte "
        "cached pread (+14%)"
    )


def test_sizes_read_in_binary_units_and_other_verdicts_have_their_words() -> None:
    eq = claim("tp:syscalls/sys_enter_read:count", size=65536, workload="pipe",
               significant=False, equivalent=True, delta_ns=1.0, overhead_pct=0.4,
               margin_pct=2.0)  # fmt: skip
    text = headline.sentence(eq)
    assert "a count classic tracepoint on sys_enter_read" in text and "64 KiB" in text
    assert "adds nothing detectable" in text and "±2%" in text and "+0.4%" in text
    ns = claim("rawtp:sys_exit:inspect", significant=False, delta_ns=3.0,
               delta_ci95=[-2.0, 8.0], verdict="inconclusive")  # fmt: skip
    text = headline.sentence(ns)
    assert "not significant after Holm (inconclusive)" in text and "−" not in text
    assert "-2 to 8" in text and "adds" not in text


def test_a_hook_measured_faster_is_a_confound_never_a_cost() -> None:
    fast = claim("rawtp:sys_enter:empty", delta_ns=-20.0, delta_ci95=[-30.0, -10.0],
                 overhead_pct=-5.0)  # fmt: skip
    assert headline.is_confound(fast)
    text = headline.sentence(fast)
    assert "confound" in text and "adds" not in text
    (h,) = headline.headlines([fast], 0.02)
    assert h["confound"] and h["cell"] == fast["name"]
    assert not headline.is_confound(claim("rawtp:sys_enter:empty"))


def test_the_rule_takes_empty_hooks_at_the_smallest_size_by_upper_bound() -> None:
    cands = [
        claim("rawtp:sys_enter:empty", delta_ns=40.0, delta_ci95=[10.0, 90.0]),  # lucky, wide
        claim("tpbtf:sys_enter:empty", delta_ns=50.0, delta_ci95=[45.0, 55.0]),  # bounded
        claim("rawtp:sys_enter:count", delta_ns=5.0, delta_ci95=[4.0, 6.0]),  # not empty
        claim("rawtp:sys_enter:empty", size=4096, delta_ns=1.0, delta_ci95=[0.5, 1.5]),
        claim("rawtp:sys_enter:empty", workload="pipe", delta_ns=300.0, delta_ci95=[280.0, 320.0]),
    ]
    by_w = {h["workload"]: h for h in headline.headlines(cands, 0.02)}
    assert by_w["cached"]["cell"] == "cached/64/tpbtf:sys_enter:empty"
    assert by_w["pipe"]["cell"] == "pipe/64/rawtp:sys_enter:empty"
    assert all(h["rule"] == headline.RULE for h in by_w.values())


def test_an_unknown_hook_name_is_named_as_is() -> None:
    text = headline.sentence(claim("uprobe:libc:empty"))
    assert text.startswith("the hook uprobe:libc:empty adds 54 ns")
