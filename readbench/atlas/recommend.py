"""Which point to hook, built from the measured atlas rows (pure): for each of three needs,
the cheapest point that attaches here and what it costs; and the ideal point, named with the
kernel's refusal where this kernel refuses it. Nothing here is written in advance: a kernel
that permits fentry or LSM gets a different answer from the same code."""

from __future__ import annotations

from typing import Any

from readbench.atlas.points import available

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


def _fires(row: dict[str, Any], via: str) -> float | None:
    """Firings per read counted with `via` (the row's own count for its primary type)."""
    return (row.get("fires_by_attach") or {}).get(via, row.get("fires_per_read"))


def _overhead(row: dict[str, Any], body: str, via: str) -> tuple[Any, Any]:
    """(ns, 95% CI) of a `body` program attached by `via` at `row`: the row's own overhead
    when `via` is its primary type, else the one measured for that type, else (None, None)."""
    by = (row.get("overhead_by_attach") or {}).get(via)
    if by is not None:
        return by.get("ns"), by.get("ci95")
    if via != (available(row) or [None])[0]:
        return None, None
    return (row.get("overhead_ns") or {}).get(body), (row.get("overhead_ci95") or {}).get(body)


def _cost(row: dict[str, Any], body: str, via: str) -> tuple[float, float]:
    """Rank key: the upper 95% bound, then the estimate. Where costs are not resolved (a
    1 MiB read's noise is ±600 ns) the estimate orders them at random; the bound ranks by what
    the run can vouch for. A cost whose whole CI is below zero is a confound: never ranked."""
    v, ci = _overhead(row, body, via)
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


def _once(f: float | None) -> bool:
    return f is not None and 0.99 <= f <= 1.01


def _fires_here(f: float | None) -> bool:
    """A point that attaches but never fired on this workload is never recommended."""
    return f is not None and f > 0


def recommend(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_target = {r["target"]: r for r in rows}
    out = []
    for need, text in NEEDS:
        body = "inspect" if need == "data" else "empty"
        cands: list[tuple[dict[str, Any], str]] = []
        for r in rows:
            via = next(iter(available(r, need)), None)
            if via is None or not _fires_here(_fires(r, via)):
                continue
            if need == "observe" and not (_once(_fires(r, via)) and r["sees"]["file"]):
                continue
            if need == "data" and not r["sees"]["data"]:
                continue
            cands.append((r, via))
        best = min(
            cands,
            key=lambda rv: (*_cost(rv[0], body, rv[1]), *_cost(rv[0], "empty", rv[1])),
            default=None,
        )
        ideal_target, ideal_type = IDEAL[need]
        ideal_row = by_target.get(ideal_target)
        ideal: dict[str, Any] = {"point": ideal_target, "attach": ideal_type}
        if ideal_row is None:
            ideal.update(available=False, reason="not on this workload's read path")
        else:
            verdict = ideal_row["attach"].get(ideal_type) or {}
            ideal.update(available=bool(verdict.get("available")), reason=verdict.get("reason"))
            if ideal["available"] and not _fires_here(_fires(ideal_row, ideal_type)):
                ideal.update(available=False, reason="attaches but never fires on this "
                             f"workload: {ideal_row.get('fires_note')}")  # fmt: skip
        rec: dict[str, Any] = {"need": need, "text": text, "ideal": ideal}
        if best is None:
            rec.update(point=None, summary=(
                f"no point that attaches here can {text}; the ideal one, {ideal_type} on "
                f"{ideal_target}, is refused: {ideal.get('reason')}"))  # fmt: skip
        else:
            row, via = best
            cost, ci = _overhead(row, body, via)
            cost_txt = _cost_text(cost, ci)
            caveat = ""
            if row["sees"]["file"] and str(row["sees"]["file"]).startswith("fd number"):
                caveat = "; it gets the fd, and the struct file through current->files"
            if need == "data" and not row["sees"]["data_before_user_space"]:
                caveat = "; it sees the bytes after they reach the user buffer, not before"
            if need == "control":
                caveat = (
                    "; an LSM program returns -EPERM (or another error) to deny the read"
                    if via == "lsm"
                    else "; an fmod_ret program replaces the function's return value"
                )
            rec.update(
                point=row["target"],
                attach=via,
                body=body,
                overhead_ns=cost,
                overhead_ci95=ci,
                fires_per_read=_fires(row, via),
                ranked_by="upper 95% bound of the overhead, then its estimate",
                summary=f"{via} on {row['target']} ({body} body): {cost_txt}{caveat}"
                + (
                    ""
                    if ideal.get("available") or ideal_target == row["target"]
                    else f"; the ideal point, {ideal_type} on {ideal_target}, is refused here: "
                    f"{ideal.get('reason')}"
                ),
            )
        out.append(rec)
    return out
