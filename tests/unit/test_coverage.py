"""The workload registry, point hooks and the coverage recommendation (pure; synthetic
coverage rows): the cheapest set that sees every read kind, and what each alternative misses."""

from __future__ import annotations

from typing import Any

import pytest

from readbench.analysis.recommend import buffered_check, coverage_recommendation, minimal_covers
from readbench.errors import BadInput
from readbench.model import hookspec
from readbench.model.workloads import REGISTRY, get


def test_point_hooks_round_trip_and_refuse_bad_names() -> None:
    for name in (
        "point:rawtp:filemap/mm_filemap_get_pages",
        "point:fentry:/vfs_read",
        "point:tp:io_uring/io_uring_submit_req",
        "point:lsm:/file_permission",
    ):
        spec = hookspec.parse(name)
        assert spec.point and spec.name == name and spec.body == "count"
    spec = hookspec.parse("point:rawtp:filemap/mm_filemap_fault")
    assert (spec.attach, spec.group, spec.bare_target) == ("rawtp", "filemap", "mm_filemap_fault")
    for bad in (
        "point:rawtp:mm_filemap_fault",
        "point:rawtp:/mm_filemap_fault",
        "point:fentry:filemap/vfs_read",
        "point:bogus:/vfs_read",
        "point:rawtp:a/b;c",
    ):
        with pytest.raises(BadInput, match="hook"):
            hookspec.parse(bad)


def test_syscall_hooks_know_which_read_kinds_have_a_syscall_and_a_buffer() -> None:
    na = hookspec.applicable
    assert na(hookspec.parse("rawtp:sys_enter"), "mmap-fault").startswith("not applicable")
    assert "no plain buffer" in na(hookspec.parse("rawtp:sys_exit:inspect"), "io_uring")
    assert na(hookspec.parse("rawtp:sys_enter"), "io_uring") is None
    assert na(hookspec.parse("tp:syscalls/sys_enter_io_uring_enter"), "io_uring") is None
    assert "issues io_uring_enter()" in na(hookspec.parse("tp:syscalls/sys_enter_read"), "io_uring")
    assert "not on the readv read path" in na(hookspec.parse("fentry:vfs_read"), "readv")
    assert na(hookspec.parse("point:rawtp:filemap/mm_filemap_fault"), "mmap-fault") is None


def test_every_record_is_complete() -> None:
    for w in REGISTRY:
        assert w.op and w.kind and w.phrase and w.shape_sizes, w.name
        assert all(t in hookspec.KPROBE_TARGETS for t in w.path), w.name
        assert all(s in hookspec.SYSCALL_NR for s in w.syscalls), w.name
        for s in w.shape_sizes:
            assert w.cell_rule(s, 0) is None, (w.name, s)
    assert get("mmap-cached").syscall is None and get("io_uring").fd_arg is False


def _row(
    key: str,
    fires: dict[str, float],
    file: Any = "struct address_space *",
    via: str | None = "rawtp",
) -> dict[str, Any]:
    group, _, target = key.rpartition("/")
    return {
        "key": key,
        "target": target,
        "group": group or None,
        "via": via,
        "sees": {"file": file},
        "fires_per_op": fires,
    }


KINDS = [
    {
        "workload": w,
        "fd_arg": get(w).fd_arg and bool(get(w).syscalls),
        "buffered": get(w).data is not None and not get(w).needs_direct_io,
    }
    for w in ("cached", "pipe", "io_uring", "mmap-fault", "mmap-cached")
]
ALL0 = {k["workload"]: 0.0 for k in KINDS}
SYS = _row(
    "raw_syscalls/sys_enter",
    {**ALL0, "cached": 1.0, "pipe": 1.0, "io_uring": 1.0},
    file="fd number only",
)
GET = _row("filemap/mm_filemap_get_pages", {**ALL0, "cached": 1.0, "io_uring": 1.0})
FAULT = _row("filemap/mm_filemap_fault", {**ALL0, "mmap-fault": 1.0})
SUBMIT = _row("io_uring/io_uring_submit_req", {**ALL0, "io_uring": 1.0}, "struct io_kiocb *")
VFS = _row("vfs_read", dict.fromkeys(ALL0), via=None)  # refused: counted nowhere
COV = {"kinds": KINDS, "points": [SYS, GET, FAULT, SUBMIT, VFS], "fs_type": "ext4"}


def test_the_cheapest_covering_set_and_what_the_others_miss() -> None:
    oh = {
        "raw_syscalls/sys_enter": {"ns": 130, "ci95": [120, 140], "on": "cached"},
        "filemap/mm_filemap_get_pages": {"ns": 30, "ci95": [20, 40], "on": "cached"},
        "filemap/mm_filemap_fault": {"ns": 40, "ci95": [-900, 2000], "on": "mmap-fault"},
        "io_uring/io_uring_submit_req": {"ns": 10, "ci95": [5, 15], "on": "io_uring"},
    }
    rec = coverage_recommendation(COV, oh)
    # io_uring_enter's fd is the ring's: sys_enter does not see io_uring reads with their file
    # (a set with sys_enter needs a second point for io_uring: submit_req is the cheaper one)
    assert {p["point"] for p in rec["points"]} == {
        "raw_syscalls:sys_enter",
        "filemap:mm_filemap_fault",
        "io_uring:io_uring_submit_req",
    }
    assert rec["unseen"] == ["mmap-cached"] and "never enter the kernel" in rec["summary"]
    assert "not resolved: at most 2000 ns per mmap-fault op" in rec["summary"]
    alt = {a["point"]: a["misses"] for a in rec["alternatives"]}
    assert alt["filemap:mm_filemap_get_pages"] == ["pipe", "mmap-fault", "mmap-cached"]
    assert sorted(sorted(c) for c in minimal_covers(COV)) == [
        ["filemap/mm_filemap_fault", "filemap/mm_filemap_get_pages", "raw_syscalls/sys_enter"],
        ["filemap/mm_filemap_fault", "io_uring/io_uring_submit_req", "raw_syscalls/sys_enter"],
    ]
    # without measured costs it says so and ranks by the fewest points
    none = coverage_recommendation(COV)["summary"]
    assert "(no overhead measured: ranked by the fewest points, then the fewest firings" in none
    assert "(overhead not measured)" not in none  # said once, not of every point
    # some measured, one not (a default run measures sys_enter at 64 B, the coverage is at
    # 4 KiB): the unmeasured point says so beside its name, the rank rule is named, and no
    # sentence claims that nothing was measured
    part = coverage_recommendation(COV, {k: v for k, v in oh.items() if "sys_enter" not in k})
    s = part["summary"]
    assert "rawtp on raw_syscalls:sys_enter (overhead not measured) + " in s
    assert "ranked by the fewest points of unmeasured overhead" in s
    assert "no overhead measured" not in s


def test_buffered_check_is_measured_not_assumed() -> None:
    chk = buffered_check(COV, ("filemap/mm_filemap_get_pages", "filemap/mm_filemap_fault"))
    assert chk["answer"] == "no" and chk["missed"] == ["mmap-cached"]
    assert chk["kinds"] == ["cached", "io_uring", "mmap-fault", "mmap-cached"]
    fewer = {**COV, "kinds": [k for k in KINDS if k["workload"] != "mmap-cached"]}
    assert buffered_check(fewer, chk["points"])["answer"] == "yes"


def test_a_tracepoint_the_kernel_lacks_is_named_absent_not_silently_missed() -> None:
    # Linux 6.1 has neither filemap tracepoint: the check said only that they miss every kind
    gone = "filemap/mm_filemap_get_pages"
    old = {
        **COV,
        "kernel": "6.1.0-57-amd64",
        "points": [r for r in COV["points"] if r["key"] != gone],
    }
    chk = buffered_check(old, ("filemap/mm_filemap_get_pages", "filemap/mm_filemap_fault"))
    assert chk["answer"] == "no" and chk["absent"] == [gone]
    assert chk["text"].endswith(f"{gone}: not in this kernel (6.1.0-57-amd64)")


def test_headline_phrases_come_from_the_registry_and_point_hooks_read_plainly() -> None:
    from readbench.analysis.headline import sentence

    c = {
        "hook": "point:rawtp:io_uring/io_uring_submit_req",
        "workload": "io_uring",
        "size": 4096,
        "delta_ns": 41.0,
        "delta_ci95": [30.0, 72.0],
        "overhead_pct": 9.8,
        "significant": True,
    }
    assert sentence(c) == (
        "a count raw tracepoint on io_uring_submit_req adds 41 ns (95% CI "
        "30–72) to a 4 KiB cached io_uring read (+10%)"
    )
    c = {**c, "hook": "rawtp:sys_enter:empty", "workload": "mmap-fault"}
    assert "to a 4 KiB mmap page-fault read" in sentence(c)
    assert get("cached").phrase == "cached pread"  # the sentence the report always printed


def test_a_page_fault_point_sees_the_file_and_only_mmap_cached_is_unseen_for_that_reason() -> None:
    """6.1 has no mm_filemap_map_pages tracepoint: there, the fentry on filemap_fault (its
    `struct vm_fault *` reaches vmf->vma->vm_file) is what sees an mmap-fault read with its
    file. 'never enter the kernel' is said of mmap-cached alone (a fault does enter)."""
    from readbench.model.points import function_points, sees

    (fault,) = [p for p in function_points("mmap-fault", None, None) if p.target == "filemap_fault"]
    assert sees(fault, [{"name": "vmf", "type": "struct vm_fault *"}])["file"]
    by_fentry = _row("filemap_fault", {**ALL0, "mmap-fault": 1.0}, "struct vm_fault *", "fentry")
    cov = {**COV, "points": [SYS, GET, by_fentry, SUBMIT]}
    rec = coverage_recommendation(cov, {})
    assert "filemap_fault" in {p["point"] for p in rec["points"]}
    assert rec["unseen"] == ["mmap-cached"]
    nofault = coverage_recommendation({**COV, "points": [SYS, GET, SUBMIT]}, {})
    assert nofault["unseen"] == ["mmap-fault", "mmap-cached"]
    assert "mmap-fault, mmap-cached (reads of pages already mapped" in nofault["summary"]


def test_without_costs_the_point_that_fires_less_wins() -> None:
    """The 6.1 guest's coverage named fentry on handle_mm_fault (2 firings per mmap-fault
    page: a fault that retries after its I/O enters it twice, and it fires on every fault)
    over filemap_fault (1), both unmeasured: firings per op, then the attach type's
    dispatch cost, break the tie."""
    kinds = [{"workload": w, "fd_arg": True} for w in ("cached", "mmap-fault")]
    vfs = _row("rw_verify_area", {"cached": 1.0, "mmap-fault": 0.0}, "struct file *", "fentry")
    hmf = _row("handle_mm_fault", {"cached": 0.0, "mmap-fault": 2.0}, "struct vm_area_struct *",
               "fentry")  # fmt: skip
    ff = _row("filemap_fault", {"cached": 0.0, "mmap-fault": 1.0}, "struct vm_fault *", "kprobe")
    ff_fentry = {**ff, "key": "filemap_fault#fentry", "via": "fentry"}
    cov = {"kinds": kinds, "points": [vfs, hmf, ff]}
    rec = coverage_recommendation(cov)
    assert [p["point"] for p in rec["points"]] == ["rw_verify_area", "filemap_fault"]
    assert "fewest firings per op" in rec["ranked_by"]
    # same firings: the cheaper mechanism (fentry before kprobe)
    cov = {"kinds": kinds, "points": [vfs, ff, ff_fentry]}
    rec = coverage_recommendation(cov)
    assert [p["attach"] for p in rec["points"]] == ["fentry", "fentry"]
