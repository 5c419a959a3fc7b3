"""Which point to hook, built from the measured atlas rows (pure): for each of three needs,
the cheapest point that attaches here and what it costs; and the ideal point, named with the
kernel's refusal where this kernel refuses it. Nothing here is written in advance: a kernel
that permits fentry or LSM gets a different answer from the same code."""

from __future__ import annotations

from typing import Any

from readbench.model.hookspec import parse
from readbench.model.points import DISPATCH_RANK, available, control_hooks, hooks_for

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


def _via_fd(row: dict[str, Any]) -> bool:
    """The point gets the read's fd only; the struct file takes a walk of current->files."""
    return bool(row["sees"]["file"]) and str(row["sees"]["file"]).startswith("fd number")


def _once(f: float | None) -> bool:
    return f is not None and 0.99 <= f <= 1.01


def _fires_here(f: float | None) -> bool:
    """A point that attaches but never fired on this workload is never recommended."""
    return f is not None and f > 0


def ideal_points(workload: str | None) -> dict[str, tuple[str, str]]:
    """Where each need is best served on `workload`'s path (its record): the function that
    calls the file's read (vfs_read, vfs_readv, io_read, the fault handler), the copy, the
    LSM hook; IDEAL where no workload is given or the path lacks one."""
    from readbench.model.workloads import BY_NAME

    w = BY_NAME.get(workload or "")
    if w is None:
        return dict(IDEAL)
    targets = [s.target for s in w.entry]
    observe = w.fs_caller if w.fs_op else (targets[-1] if targets else IDEAL["observe"][0])
    return {
        "observe": (observe, "fentry"),
        "data": ("copy_page_to_iter", "fentry") if w.copy else IDEAL["data"],
        "control": IDEAL["control"],
    }


def recommend(rows: list[dict[str, Any]], workload: str | None = None) -> list[dict[str, Any]]:
    ideals = ideal_points(workload)
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
        ideal_target, ideal_type = ideals[need]
        # where no cost is measured (--no-overhead, or a refused claim) cost ties; the first
        # row then won, sys_enter before vfs_read. The ideal point, then a point handed the
        # struct file itself rather than an fd, breaks the tie
        best = min(
            cands,
            key=lambda rv: (
                *_cost(rv[0], body, rv[1]),
                *_cost(rv[0], "empty", rv[1]),
                (rv[0]["target"], rv[1]) != (ideal_target, ideal_type),
                _via_fd(rv[0]),
                DISPATCH_RANK.get(rv[1], 9),
            ),
            default=None,
        )
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
            if _via_fd(row):
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
                ranked_by="upper 95% bound of the overhead, then its estimate"
                if cost is not None
                else "no overhead measured: the ideal point where it can serve, then a "
                "point given the struct file itself, then the attach type's published "
                "dispatch cost (raw_tp ≈ fentry < tp_btf, fexit < tp < kprobe < kretprobe)",
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


# -- the coverage matrix: which set of points sees every read kind ---------------------------

SEES_ALL = 0.99  # fires at least this often per op: it sees every op of the kind


def sees_kind(row: dict[str, Any], kind: dict[str, Any]) -> bool:
    """Whether `row` sees every op of read kind `kind` together with the file read: it fires
    on each op, gives access to a file, and (a syscall point) the syscall's fd is the file's
    (io_uring_enter's fd is the ring's)."""
    f = (row.get("fires_per_op") or {}).get(kind["workload"])
    if f is None or f < SEES_ALL or not (row.get("sees") or {}).get("file"):
        return False
    if row.get("group") in ("raw_syscalls", "syscalls"):
        return bool(kind.get("fd_arg", True))
    return True


def _label(row: dict[str, Any]) -> str:
    return f"{row['group']}:{row['target']}" if row.get("group") else row["target"]


def minimal_covers(cov: dict[str, Any], max_set: int = 3) -> list[list[str]]:
    """Every smallest set of point keys that together see every read kind any point sees
    (the candidates whose cost decides the recommendation)."""
    from itertools import combinations

    kinds = [k for k in cov["kinds"] if not k.get("refused")]
    cands = []
    for r in cov["points"]:
        seen = frozenset(k["workload"] for k in kinds if r.get("via") and sees_kind(r, k))
        if seen:
            cands.append((r["key"], seen))
    coverable = frozenset().union(*(s for _, s in cands)) if cands else frozenset()
    for n in range(1, max_set + 1):
        sets = [[k for k, _ in c] for c in combinations(cands, n)
                if frozenset().union(*(s for _, s in c)) == coverable]  # fmt: skip
        if sets:
            return sets
    return []


def _set_cost(
    rows: tuple[dict[str, Any], ...], overheads: dict[str, dict[str, Any]]
) -> tuple[float, int, float, float, int]:
    """A coverage set's rank: measured upper bounds first; where a cost is missing, what it
    is made of: how often the points fire per op (handle_mm_fault fires on every fault,
    twice for one that retries after its I/O; filemap_fault once), then their attach types'
    published dispatch cost."""
    total, missing, fires, dispatch = 0.0, 0, 0.0, 0
    for r in rows:
        o = overheads.get(r["key"]) or {}
        if o.get("ns") is None:
            missing += 1
            fires += sum(float(f or 0) for f in (r.get("fires_per_op") or {}).values())
            dispatch += DISPATCH_RANK.get(r["via"], 9)
        else:
            total += float((o.get("ci95") or [o["ns"], o["ns"]])[1])
    return (missing, len(rows), total, round(fires, 2), dispatch)


def _point_phrase(r: dict[str, Any], o: dict[str, Any], beside_measured: bool) -> str:
    """One point of the chosen set with its measured cost; an unmeasured point beside
    measured ones says so by its name."""
    if o.get("ns") is None:
        return f"{r['via']} on {_label(r)}" + (
            " (overhead not measured)" if beside_measured else ""
        )
    ci = o.get("ci95") or [o["ns"], o["ns"]]
    on = f"per {o.get('on')} op, 95% CI {ci[0]:.0f}–{ci[1]:.0f}"
    cost = f"{o['ns']:.0f} ns {on}" if ci[0] > 0 else f"not resolved: at most {ci[1]:.0f} ns {on}"
    return f"{r['via']} on {_label(r)} ({cost})"


def coverage_recommendation(
    cov: dict[str, Any], overheads: dict[str, dict[str, Any]] | None = None, max_set: int = 3
) -> dict[str, Any]:
    """The cheapest point, or set of points, that sees every read kind of the run with its
    file (pure: from the measured coverage rows). `overheads`: point key -> {ns, ci95, on}
    (the counting program's paired overhead, measured on read kind `on`); a set costs the
    sum of its points' upper 95 % bounds; unmeasured points rank after measured ones, by the
    fewest points. The alternatives name the read kinds each misses."""
    from itertools import combinations

    overheads = overheads or {}
    kinds = [k for k in cov["kinds"] if not k.get("refused")]
    refused = [k for k in cov["kinds"] if k.get("refused")]
    names = [k["workload"] for k in kinds]
    cands = []
    for r in cov["points"]:
        if not r.get("via"):
            continue
        seen = frozenset(k["workload"] for k in kinds if sees_kind(r, k))
        if seen:
            cands.append((r, seen))
    coverable = frozenset().union(*(s for _, s in cands)) if cands else frozenset()
    unseen = [w for w in names if w not in coverable]

    best: tuple[dict[str, Any], ...] | None = None
    for n in range(1, max_set + 1):
        sets = [c for c in combinations(cands, n)
                if frozenset().union(*(s for _, s in c)) == coverable]  # fmt: skip
        if sets:
            best = tuple(
                r for r, _ in min(sets, key=lambda c: _set_cost(tuple(r for r, _ in c), overheads))
            )
            break
    alternatives = []
    for r, seen in sorted(cands, key=lambda rs: (-len(rs[1]), _label(rs[0]))):
        if best and r in best:
            continue
        missed = [w for w in names if w not in seen]
        alternatives.append({"point": _label(r), "attach": r["via"], "misses": missed,
                             "text": f"{r['via']} on {_label(r)} misses "
                             + (", ".join(missed) or "nothing")})  # fmt: skip
        if len(alternatives) >= 6:
            break
    text = "observe every read together with its file"
    tail = []
    if unseen:
        # the reason belongs to mmap-cached alone: a fault does enter the kernel
        why = {"mmap-cached": "mmap-cached (reads of pages already mapped never enter the kernel)"}
        tail.append("no attachable point sees " + ", ".join(why.get(w, w) for w in unseen))
    if refused:
        tail.append("not measured: " + "; ".join(f"{k['workload']} ({k['refused']})"
                                                 for k in refused))  # fmt: skip
    if best is None:
        summary = "no attachable point sees any read kind of this run with its file"
        return {"need": "observe", "text": text, "points": [], "summary": "; ".join(
            [summary, *tail]), "unseen": unseen, "alternatives": alternatives}  # fmt: skip
    parts: list[str] = []
    unmeasured = sum((overheads.get(r["key"]) or {}).get("ns") is None for r in best)
    for r in best:
        parts.append(_point_phrase(r, overheads.get(r["key"]) or {}, unmeasured < len(best)))
    seen_n = len(coverable)
    summary = (" + ".join(parts) + f": together they see {seen_n} of the {len(names)} read "
               "kinds measured with their file")  # fmt: skip
    if unmeasured == len(best):
        summary += (" (no overhead measured: ranked by the fewest points, then the fewest "
                    "firings per op, then the attach types' published dispatch cost)")  # fmt: skip
    elif unmeasured:
        # a set with a measured point beside an unmeasured one: say what the rank rests on
        summary += (" (ranked by the fewest points of unmeasured overhead, then the fewest "
                    "points, then the sum of the measured upper 95% bounds)")  # fmt: skip
    if tail or alternatives:
        summary += "; " + "; ".join([*tail, *(a["text"] for a in alternatives[:3])])  # fmt: skip
    return {
        "need": "observe",
        "text": text,
        "points": [
            {
                "point": _label(r),
                "key": r["key"],
                "attach": r["via"],
                "overhead": overheads.get(r["key"]),
            }
            for r in best
        ],
        "sees": sorted(coverable, key=names.index),
        "unseen": unseen,
        "alternatives": alternatives,
        "ranked_by": "fewest points of unmeasured overhead, then fewest points, then the sum "
        "of their overheads' upper 95% bounds; among unmeasured points, the fewest firings "
        "per op, then the attach types' published dispatch cost",
        "summary": summary,
    }


def buffered_check(cov: dict[str, Any], points: tuple[str, ...]) -> dict[str, Any]:
    """Whether `points` (keys) together see every buffered read of file data in the run
    (kinds with a data file that go through the page cache, mmap included), measured."""
    rows = [r for r in cov["points"] if r["key"] in points]
    buffered = [k for k in cov["kinds"] if k.get("buffered") and not k.get("refused")]
    seen = {k["workload"]: any(sees_kind(r, k) for r in rows) for k in buffered}
    missed = [w for w, ok in seen.items() if not ok]
    # a tracepoint this kernel does not have is no row at all (6.1 has neither of the two)
    absent = [p for p in points if p not in {r["key"] for r in rows}]
    text = f"{' + '.join(points)} on {cov.get('fs_type') or 'this filesystem'}: " + (
        "see every buffered read of file data measured here (" + ", ".join(seen) + ")"
        if not missed
        else "miss " + ", ".join(missed) + " (of " + ", ".join(seen) + ")"
    )
    if absent:
        text += f"; {', '.join(absent)}: not in this kernel ({cov.get('kernel') or '?'})"
    return {
        "points": list(points),
        "attach": sorted({r["via"] for r in rows if r.get("via")}),
        "fs_type": cov.get("fs_type"),
        "kinds": list(seen),
        "missed": missed,
        "absent": absent,
        "answer": "yes" if not missed and not absent else "no",
        "text": text,
    }


def atlas_with_overheads(atlas: dict[str, Any], claims: list[dict[str, Any]]) -> dict[str, Any]:
    """The one place an atlas gets its costs: each point's empty and inspect programs, and the
    types that can deny or modify a read, from paired `claims` (a run's comparisons, or the
    ones `readbench atlas` measured itself) named WORKLOAD/SIZE/HOOK; then the
    recommendations, ranked by those costs."""
    by_name = {c["name"]: c for c in claims}
    w, size = atlas.get("workload"), atlas.get("size")

    def claim(hook: str | None) -> dict[str, Any] | None:
        return by_name.get(f"{w}/{size}/{parse(hook).name}") if hook else None

    for row in atlas.get("points", []):
        ns: dict[str, Any] = {}
        ci: dict[str, Any] = {}
        for body, hook in hooks_for(row).items():
            c = claim(hook)
            ns[body] = c["delta_ns"] if c else None
            ci[body] = c["delta_ci95"] if c else None
        row["overhead_ns"], row["overhead_ci95"] = ns, ci
        for attach, hook in control_hooks(row).items():
            c = claim(hook)
            if c is not None:
                row.setdefault("overhead_by_attach", {})[attach] = {
                    "hook": hook, "body": "empty", "ns": c["delta_ns"], "ci95": c["delta_ci95"],
                }  # fmt: skip
    atlas["recommendations"] = recommend(atlas.get("points", []), w)
    return atlas


def coverage_with_overheads(cov: dict[str, Any], claims: list[dict[str, Any]]) -> dict[str, Any]:
    """The coverage matrix's recommendation costed with paired `claims` at its size: a point's
    counting program (`point:VIA:GROUP/TARGET`), or readbench's empty hook on the raw syscall
    tracepoints, measured on a read kind the point sees (the cheapest such claim)."""
    kinds = {k["workload"]: k for k in cov.get("kinds", [])}
    at_size = [c for c in claims if c.get("size") == cov.get("size")]
    overheads: dict[str, dict[str, Any]] = {}
    for r in cov.get("points", []):
        via = r.get("via")
        if not via:
            continue
        target = "file_permission" if via == "lsm" else r["target"]
        names = {f"point:{via}:{r.get('group') or ''}/{target}"}
        if r.get("group") == "raw_syscalls":
            names.add(f"{via}:{r['target']}:empty")
        for c in sorted(at_size, key=lambda c: (c.get("delta_ci95") or [0, 0])[1] or 0):
            k = kinds.get(c["workload"])
            if c.get("hook") in names and k and sees_kind(r, k) and c.get("delta_ns") is not None:
                overheads[r["key"]] = {
                    "hook": c["hook"], "on": c["workload"], "ns": c["delta_ns"],
                    "ci95": c.get("delta_ci95"),
                }  # fmt: skip
                break
    cov["overheads"] = overheads
    cov["recommendation"] = coverage_recommendation(cov, overheads)
    return cov
