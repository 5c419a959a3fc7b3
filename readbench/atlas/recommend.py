"""Which point to hook, built from the measured atlas rows (pure): for each of three needs,
the cheapest point that attaches here and what it costs; and the ideal point, named with the
kernel's refusal where this kernel refuses it. Nothing here is written in advance: a kernel
that permits fentry or LSM gets a different answer from the same code."""

from __future__ import annotations

from typing import Any

NEEDS = (
    ("observe", "observe every read together with its file"),
    ("data", "see the bytes read"),
    ("control", "deny or modify a read"),
)
# Where each need is best served (fs-independent, once per read, closest to the data):
IDEAL = {
    "observe": ("vfs_read", "fentry"),
    "data": ("copy_page_to_iter", "fentry"),
    "control": ("security_file_permission", "lsm"),
}


def _available(row: dict[str, Any]) -> list[str]:
    return [a for a, v in row["attach"].items() if v.get("available")]


def _cost(row: dict[str, Any], body: str) -> tuple[float, float]:
    """Rank key: the upper 95% bound, then the estimate. Where costs are not resolved (a
    1 MiB read's noise is ±600 ns) the estimate orders them at random; the bound ranks by what
    the run can vouch for. A cost whose whole CI is below zero is a confound: never ranked."""
    v = (row.get("overhead_ns") or {}).get(body)
    ci = (row.get("overhead_ci95") or {}).get(body)
    if v is None or (ci and ci[1] < 0):
        return (float("inf"), float("inf"))
    return (float(ci[1]) if ci else float(v), float(v))


def _cost_text(cost: float | None, ci: list[float] | None) -> str:
    if cost is None:
        return "overhead not measured"
    if not ci:
        return f"{cost:.0f} ns per read (no interval)"
    if ci[1] < 0:
        return (f"measured faster with the hook (95% CI {ci[0]:.0f}–{ci[1]:.0f} ns): a "
                "confound to find, not a cost")  # fmt: skip
    if ci[0] <= 0:
        return (f"not resolved at this size: at most {ci[1]:.0f} ns per read "
                f"(95% CI {ci[0]:.0f}–{ci[1]:.0f})")  # fmt: skip
    return f"{cost:.0f} ns per read (95% CI {ci[0]:.0f}–{ci[1]:.0f})"


def _once(row: dict[str, Any]) -> bool:
    f = row.get("fires_per_read")
    return f is not None and 0.99 <= f <= 1.01


def recommend(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_target = {r["target"]: r for r in rows}
    out = []
    for need, text in NEEDS:
        if need == "observe":
            cands = [r for r in rows if _available(r) and _once(r) and r["sees"]["file"]]
            body = "empty"
        elif need == "data":
            cands = [r for r in rows if _available(r) and r["sees"]["data"]]
            body = "inspect"
        else:  # only an LSM program (or fmod_ret) can change a read's outcome
            cands = [
                r for r in rows if "lsm" in _available(r) or "fmod_ret" in _available(r)
            ]  # fmt: skip
            body = "empty"
        best = min(cands, key=lambda r: (*_cost(r, body), *_cost(r, "empty")), default=None)
        ideal_target, ideal_type = IDEAL[need]
        ideal_row = by_target.get(ideal_target)
        ideal: dict[str, Any] = {"point": ideal_target, "attach": ideal_type}
        if ideal_row is None:
            ideal.update(available=False, reason="not on this workload's read path")
        else:
            verdict = ideal_row["attach"].get(ideal_type) or {}
            ideal.update(available=bool(verdict.get("available")), reason=verdict.get("reason"))
        rec: dict[str, Any] = {"need": need, "text": text, "ideal": ideal}
        if best is None:
            rec.update(point=None, summary=(
                f"no point that attaches here can {text}; the ideal one, {ideal_type} on "
                f"{ideal_target}, is refused: {ideal.get('reason')}"))  # fmt: skip
        else:
            via = _available(best)[0]
            cost = (best.get("overhead_ns") or {}).get(body)
            ci = (best.get("overhead_ci95") or {}).get(body)
            cost_txt = _cost_text(cost, ci)
            caveat = ""
            if best["sees"]["file"] and str(best["sees"]["file"]).startswith("fd number"):
                caveat = "; it gets the fd, and the struct file through current->files"
            if need == "data" and not best["sees"]["data_before_user_space"]:
                caveat = "; it sees the bytes after they reach the user buffer, not before"
            rec.update(
                point=best["target"],
                attach=via,
                body=body,
                overhead_ns=cost,
                overhead_ci95=ci,
                fires_per_read=best["fires_per_read"],
                ranked_by="upper 95% bound of the overhead, then its estimate",
                summary=f"{via} on {best['target']} ({body} body): {cost_txt}{caveat}"
                + (
                    ""
                    if ideal.get("available") or ideal_target == best["target"]
                    else f"; the ideal point, {ideal_type} on {ideal_target}, is refused here: "
                    f"{ideal.get('reason')}"
                ),
            )
        out.append(rec)
    return out
