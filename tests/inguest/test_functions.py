"""Inside a readbench guest (Debian 6.1 under QEMU: fentry, fexit, kprobes and BPF LSM
attach there, unlike on the CI host): the function points count what the reads do, checked
against the independent C/libbpf counter (bench/point_counter.c). Collected only inside a
guest (tests/conftest.py); tests/guest/ boots the guest and runs this file there."""

from __future__ import annotations

from pathlib import Path

import pytest

from readbench.measure import datafiles, survey
from readbench.measure.readloop import ReadLoop
from tests.conftest import load_bench

READS = 2000
SIZE = {"cached": 4096, "pipe": 64}


@pytest.mark.parametrize("workload", ["cached", "pipe"])
@pytest.mark.parametrize("attach", ["fentry", "kprobe"])
def test_vfs_read_fires_once_per_read(attach: str, workload: str, data_dir: Path) -> None:
    """fentry:vfs_read and kprobe:vfs_read fire exactly once per cached pread and per pipe
    read, in readbench's atlas counter and in the independent one."""
    path = datafiles.ensure(data_dir, workload)
    with ReadLoop(workload, SIZE[workload], path) as loop:
        c = survey.fires_per_read(attach, "vfs_read", "", loop, READS)
    assert c["count"] == c["read_calls"] and c["per_read"] == 1.0, c
    ref = load_bench("point_counter").count(
        f"{attach}:vfs_read", workload, path, SIZE[workload], READS
    )
    assert ref["count_in_read"] == ref["read_calls"] == READS, ref
    assert ref["in_read_per_read_call"] == c["per_read"]


@pytest.mark.parametrize("attach", ["lsm", "fmod_ret"])
def test_programs_that_can_deny_a_read_load_attach_and_count(attach: str, data_dir: Path) -> None:
    """An LSM program on file_permission (bpf in the guest's lsm= list) and fmod_ret on
    security_file_permission: each runs once per read (rw_verify_area asks once)."""
    target = "file_permission" if attach == "lsm" else "security_file_permission"
    path = datafiles.ensure(data_dir, "cached")
    with ReadLoop("cached", 64, path) as loop:
        c = survey.fires_per_read(attach, target, "", loop, READS)
    assert c["count"] == c["read_calls"] == READS, c


def test_notrace_functions_are_refused_with_the_real_reason(data_dir: Path) -> None:
    """Debian 6.1's copy_page_to_iter has no ftrace call site: fentry gets EBUSY and a kprobe
    EINVAL, and each refusal says why (the function is notrace), from this kernel's tracefs
    and text, not a bare errno."""
    from readbench.kernel.tracefs import traceable_functions

    funcs = traceable_functions()
    assert funcs is not None and "vfs_read" in funcs
    notrace = [f for f in ("copy_page_to_iter", "_copy_to_iter") if f not in funcs]
    if not notrace:
        pytest.skip("not-on-this-kind: both copy functions are traceable on this kernel")
    with ReadLoop("cached", 64, datafiles.ensure(data_dir, "cached")) as loop:
        trials = [survey.try_and_count(a, notrace[0], "", loop, 10) for a in ("fentry", "kprobe")]
    for t in trials:
        assert not t["available"], t
        assert (
            "notrace in this kernel" in t["reason"] and "available_filter_functions" in t["reason"]
        ), t["reason"]
