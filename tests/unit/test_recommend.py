"""The atlas recommendation is built from rows, not written in advance: the same code names
vfs_read where fentry attaches and the refusal where it does not (synthetic rows)."""

from __future__ import annotations

from typing import Any

from readbench.analysis.recommend import recommend
from readbench.model.points import (
    Point,
    available,
    function_points,
    hooks_for,
    sees,
    syscall_points,
)


def _row(
    target: str,
    attach: dict[str, bool],
    fires: float | None,
    sees: dict[str, Any],
    ns: float | None = None,
    inspect: float | None = None,
    group: str = "",
) -> dict:
    return {
        "target": target,
        "group": group or None,
        "kind": "tracepoint" if group else "function",
        "attach": {
            t: {"available": ok, "reason": "" if ok else f"{t} refused: errno 1 EPERM"}
            for t, ok in attach.items()
        },
        "fires_per_read": fires,
        "sees": {"file": False, "data": False, "data_before_user_space": False, **sees},
        "overhead_ns": {"empty": ns, "inspect": inspect},
        "overhead_ci95": {
            "empty": [ns - 5, ns + 5] if ns else None,
            "inspect": [inspect - 9, inspect + 9] if inspect else None,
        },
    }


SYS = _row(
    "sys_enter", {"rawtp": True}, 1.0, {"file": "fd number only"}, 60, 900, group="raw_syscalls"
)
EXIT = _row(
    "sys_exit",
    {"rawtp": True},
    1.0,
    {"file": "fd number only", "data": "after"},
    70,
    800,
    group="raw_syscalls",
)


def test_refused_kernel_gets_syscall_points_and_the_refusals() -> None:
    vfs = _row("vfs_read", {"fentry": False, "kprobe": False}, None, {"file": "struct file *"})
    sec = _row(
        "security_file_permission", {"lsm": False, "fentry": False}, None, {"file": "struct file *"}
    )
    cp = _row("copy_page_to_iter", {"fentry": False}, None, {"data": "kernel side"})
    recs = {r["need"]: r for r in recommend([SYS, EXIT, vfs, sec, cp])}
    assert (
        recs["observe"]["point"] == "sys_enter" and "current->files" in recs["observe"]["summary"]
    )
    assert "fentry on vfs_read, is refused here" in recs["observe"]["summary"]
    assert recs["data"]["point"] == "sys_exit" and "after they reach" in recs["data"]["summary"]
    assert recs["control"]["point"] is None and "lsm refused" in recs["control"]["summary"]


def test_permissive_kernel_gets_the_ideal_points() -> None:
    vfs = _row("vfs_read", {"fentry": True}, 1.0, {"file": "struct file *"}, 30, 500)
    sec = _row("security_file_permission", {"lsm": True}, 1.0, {"file": "struct file *"}, 40)
    cp = _row(
        "copy_page_to_iter",
        {"fentry": True},
        1.0,
        {"data": "kernel side", "data_before_user_space": True},
        20,
        300,
    )
    recs = {r["need"]: r for r in recommend([SYS, EXIT, vfs, sec, cp])}
    assert recs["observe"]["point"] == "vfs_read" and recs["observe"]["overhead_ns"] == 30
    assert recs["data"]["point"] == "copy_page_to_iter"
    assert recs["control"]["point"] == "security_file_permission"
    assert "refused" not in recs["control"]["summary"]


def test_points_follow_each_workload_path() -> None:
    cached = [p.target for p in function_points("cached", "ext4_file_read_iter", None)]
    assert (
        cached.index("vfs_read") < cached.index("filemap_get_pages") < cached.index("_copy_to_iter")
    )
    assert "iomap_dio_rw" in [
        p.target for p in function_points("direct", "ext4_file_read_iter", "rep_movs_alternative")
    ]
    pipe = function_points("pipe", "anon_pipe_read", "rep_movs_alternative")
    names = [p.target for p in pipe]
    assert "anon_pipe_read" in names and "filemap_read" not in names
    # the copy is called from the pipe's own read function there
    assert next(p for p in pipe if p.target == "copy_page_to_iter").caller == "anon_pipe_read"
    # the filesystem's read function is the one read from the file, never built from a name
    nine = [p.target for p in function_points("cached", "v9fs_file_read_iter", None)]
    assert "v9fs_file_read_iter" in nine and "9p_file_read_iter" not in nine
    assert [p.target for p in syscall_points("pipe")][1] == "sys_enter_read"


def test_hooks_for_maps_rows_to_measurable_hooks() -> None:
    assert hooks_for(SYS) == {
        "empty": "rawtp:sys_enter:empty",
        "inspect": "rawtp:sys_enter:inspect",
    }
    fm = _row("mm_filemap_get_pages", {"rawtp": True}, 1.0, {}, group="filemap")
    assert hooks_for(fm) == {"empty": "point:rawtp:filemap/mm_filemap_get_pages", "inspect": None}
    assert hooks_for(_row("vfs_read", {"fentry": False}, None, {})) == {}


def _with_ci(row: dict, body: str, ns: float, ci: list[float]) -> dict:
    return {
        **row,
        "overhead_ns": {**row["overhead_ns"], body: ns},
        "overhead_ci95": {**row["overhead_ci95"], body: ci},
    }


def test_unresolved_costs_rank_by_what_the_run_can_vouch_for() -> None:
    """At 1 MiB (measured: a classic tracepoint at -161 ns, CI -748..542, beside rawtp
    sys_enter at +222, CI -1..432) the estimate's order is noise; the upper bound is not,
    and neither cost may be printed as a cost."""
    classic = _with_ci(
        _row("sys_exit_pread64", {"tp": True}, 1.0, {"file": "fd number only"}, group="syscalls"),
        "empty",
        -161,
        [-748, 542],
    )
    raw = _with_ci(SYS, "empty", 222, [-1, 432])
    rec = {r["need"]: r for r in recommend([classic, raw])}["observe"]
    assert rec["point"] == "sys_enter"
    assert "not resolved at this size: at most 432 ns per read" in rec["summary"]


def test_a_hook_measured_faster_is_a_confound_never_the_cheapest() -> None:
    faster = _with_ci(SYS, "empty", -80, [-120, -40])
    other = _with_ci(
        _row("sys_enter_pread64", {"tp": True}, 1.0, {"file": "fd number only"}, group="syscalls"),
        "empty",
        250,
        [240, 260],
    )
    assert {r["need"]: r for r in recommend([faster, other])}["observe"]["point"] == (
        "sys_enter_pread64"
    )
    alone = {r["need"]: r for r in recommend([faster])}["observe"]
    assert "a confound to find, not a cost" in alone["summary"]


SEC_BOTH = _row(
    "security_file_permission",
    {"fentry": True, "kprobe": True, "lsm": True},
    1.0,
    {"file": "struct file *"},
    35,
)


def test_deny_or_modify_names_lsm_or_fmod_ret_never_fentry() -> None:
    """The 6.1 guest printed 'deny or modify a read: fentry on security_file_permission':
    fentry cannot deny anything. Only lsm or fmod_ret may serve that need."""
    sec = {**SEC_BOTH, "overhead_by_attach": {"lsm": {"ns": 48.0, "ci95": [41.0, 55.0]}}}
    rec = {r["need"]: r for r in recommend([SYS, EXIT, sec])}["control"]
    assert rec["attach"] == "lsm" and rec["point"] == "security_file_permission"
    assert rec["overhead_ns"] == 48.0  # the lsm program's own cost, not fentry's
    assert "deny" in rec["summary"] and rec["summary"].startswith("lsm on ")
    only_fmod = _row(
        "security_file_permission", {"fentry": True, "fmod_ret": True}, 1.0, {"file": "x"}
    )
    rec = {r["need"]: r for r in recommend([SYS, only_fmod])}["control"]
    assert rec["attach"] == "fmod_ret" and "overhead not measured" in rec["summary"]
    tracing_only = _row("security_file_permission", {"fentry": True, "kprobe": True}, 1.0, {})
    rec = {r["need"]: r for r in recommend([SYS, tracing_only])}["control"]
    assert rec["point"] is None and "no point that attaches here can deny" in rec["summary"]


def test_a_point_that_never_fires_is_never_recommended() -> None:
    silent = _row("filemap_get_pages", {"fentry": True}, 0.0, {"file": "struct file *"}, 1)
    cp = _row("copy_page_to_iter", {"fentry": True}, 0.0, {"data": "kernel side"}, 2, 3)
    lsm_silent = {**SEC_BOTH, "fires_by_attach": {"fentry": 1.0, "lsm": 0.0}}
    recs = {r["need"]: r for r in recommend([SYS, EXIT, silent, cp, lsm_silent])}
    # the silent filemap_get_pages (1 ns) loses to fentry on security_file_permission (35 ns)
    assert recs["observe"]["point"] == "security_file_permission"
    assert recs["data"]["point"] == "sys_exit"
    assert recs["control"]["point"] is None


class _Calls:
    source = "/proc/kcore"
    reason = ""

    def __init__(self, table: dict[tuple[str, str], bool | None]) -> None:
        self.table = table

    def __call__(self, caller: str, callee: str) -> bool | None:
        return self.table.get((caller, callee))


def test_silent_points_explain_themselves_from_evidence() -> None:
    from readbench.model.points import explain_silent

    points = function_points("cached", "ext4_file_read_iter", None)
    rows = [
        {"target": p.target, "fires_per_read": f, "fires_note": f"counted: {f}"}
        for p, f in zip(points, [1.0] * len(points), strict=True)
    ]
    by = {r["target"]: r for r in rows}
    by["sys_enter"] = {"target": "sys_enter", "fires_per_read": 1.0, "fires_note": ""}
    rows.append(by["sys_enter"])
    by["filemap_get_pages"]["fires_per_read"] = 0.0  # inlined into filemap_read
    by["touch_atime"]["fires_per_read"] = 0.0  # called, skipped at run time
    by["ksys_pread64"]["fires_per_read"] = 0.0  # no text to check
    calls = _Calls(
        {("filemap_read", "filemap_get_pages"): False, ("filemap_read", "touch_atime"): True}
    )
    explain_silent(rows, points, calls)
    fg = by["filemap_get_pages"]["fires_note"]
    assert by["filemap_get_pages"]["silent"] and "filemap_read fires 1.00 per read" in fg
    assert "holds no direct call to it: it is inlined into filemap_read" in fg
    at = by["touch_atime"]["fires_note"]
    assert "calls it directly" in at and "runtime condition" in at and "O_NOATIME" in at
    ks = by["ksys_pread64"]["fires_note"]
    assert "__x64_sys_pread64 fires 1.00 per read" in ks and "could not be checked" in ks
    assert "silent" not in by["vfs_read"]


def test_without_overheads_the_ideal_point_wins_the_tie() -> None:
    """--no-overhead: every cost is unmeasured, so cost cannot rank. The ideal point
    (fentry on vfs_read) is named, not the first row (sys_enter, which gets an fd only)."""
    sys_ = _row("sys_enter", {"rawtp": True}, 1.0, {"file": "fd number only"}, group="raw_syscalls")
    vfs = _row("vfs_read", {"fentry": True}, 1.0, {"file": "struct file *"})
    rw = _row("rw_verify_area", {"fentry": True}, 1.0, {"file": "struct file *"})
    for rows in ([sys_, rw, vfs], [rw, vfs, sys_]):
        obs = next(r for r in recommend(rows) if r["need"] == "observe")
        assert obs["point"] == "vfs_read" and obs["attach"] == "fentry", obs
        assert (
            "overhead not measured" in obs["summary"] and "no overhead measured" in obs["ranked_by"]
        )
    # without the ideal point, one given the struct file beats one given the fd
    obs = next(r for r in recommend([sys_, rw]) if r["need"] == "observe")
    assert obs["point"] == "rw_verify_area" and "current->files" not in obs["summary"]
    # a measured cost still ranks first: sys_enter measured beats vfs_read unmeasured
    sys_m = _row("sys_enter", {"rawtp": True}, 1.0, {"file": "fd number only"}, 60, group="x")
    obs = next(r for r in recommend([sys_m, vfs]) if r["need"] == "observe")
    assert obs["point"] == "sys_enter"


def test_an_output_batch_is_data_only_at_exit() -> None:
    """filemap_read hands filemap_get_pages an empty folio batch that the call fills: the
    bytes are there at exit, so only fexit can serve 'see the bytes read' there (the 6.1
    guest's atlas had recommended fentry on filemap_get_pages); a tracepoint's folio is one
    being added or read, before its I/O fills it: a folio, not the data."""
    batch = [{"name": "iocb", "type": "struct kiocb *"},
             {"name": "iter", "type": "struct iov_iter *"},
             {"name": "fbatch", "type": "struct folio_batch *"}]  # fmt: skip
    s = sees(Point("filemap_get_pages", "function", True), batch)
    assert s["data_at"] == "exit" and "at exit only (fexit)" in s["data"]
    src = [{"name": "page", "type": "struct page *"}, {"name": "bytes", "type": "size_t"}]
    assert sees(Point("copy_page_to_iter", "function", True), src)["data_at"] == "entry"
    tp = sees(Point("mm_filemap_add_to_page_cache", "tracepoint", True, group="filemap"),
              [{"name": "folio", "type": "struct folio *"}])  # fmt: skip
    assert tp["folio"] and not tp["data"] and tp["data_at"] is None

    cp = _row("copy_page_to_iter", {"fentry": False, "kprobe": False}, None, {})
    gp = _row("filemap_get_pages", {"fentry": True, "kprobe": True, "fexit": True}, 1.0,
              {"file": "struct kiocb *", **s})  # fmt: skip
    # as in an atlas taken with --no-overhead: no costs, so the struct file breaks the tie
    bare_exit = _row("sys_exit", {"rawtp": True}, 1.0, {"file": "fd number only", "data": "after"},
                     group="raw_syscalls")  # fmt: skip
    recs = {r["need"]: r for r in recommend([bare_exit, gp, cp], "cached")}
    assert (recs["data"]["point"], recs["data"]["attach"]) == ("filemap_get_pages", "fexit")
    assert available(gp, "observe")[0] == "fentry"  # the other needs keep the cheapest
    # without fexit the batch is never seen filled: the exit side of the syscall serves
    gp["attach"]["fexit"] = {"available": False, "reason": "fexit refused: errno 1 EPERM"}
    recs = {r["need"]: r for r in recommend([bare_exit, gp, cp], "cached")}
    assert recs["data"]["point"] == "sys_exit"


def test_without_costs_the_cheaper_mechanism_wins_the_tie() -> None:
    """Nothing measured, neither point ideal, both given only the fd: the attach type's
    published dispatch cost decides (the 6.1 guest's pipe atlas named the classic
    tracepoint sys_exit_read, listed first, over the raw sys_exit)."""
    classic = _row("sys_exit_read", {"tp": True}, 1.0, {"file": "fd number only", "data": "after"},
                   group="syscalls")  # fmt: skip
    raw = _row("sys_exit", {"rawtp": True}, 1.0, {"file": "fd number only", "data": "after"},
               group="raw_syscalls")  # fmt: skip
    recs = {r["need"]: r for r in recommend([classic, raw], "pipe")}
    assert (recs["data"]["point"], recs["data"]["attach"]) == ("sys_exit", "rawtp")
    assert "dispatch cost" in recs["data"]["ranked_by"]
