"""The anatomy of a read (analysis/anatomy.py) and its icicle (render/flame.py) on made-up
perf objects whose every number is known: layers from call chains, the device wait beside
wall − CPU, the measured path, the call tree, and the fallback for runs without chains."""

from __future__ import annotations

from typing import Any

import pytest

from readbench.analysis import anatomy
from readbench.model import layers
from readbench.render import flame

E = "entry_SYSCALL_64_after_hwframe;do_syscall_64;__x64_sys_pread64;vfs_read"
UNCACHED = {
    f"{E};filemap_read;copy_page_to_iter;_copy_to_iter": 300,
    f"{E};filemap_read;filemap_get_pages;force_page_cache_ra;page_cache_ra_unbounded;"
    "read_pages;blk_finish_plug;blk_mq_flush_plug_list;virtio_queue_rq;virtqueue_notify;"
    "vp_notify;iowrite16": 250,
    f"{E};filemap_read;filemap_get_pages;force_page_cache_ra;page_cache_ra_unbounded;"
    "read_pages;ext4_mpage_readpages;ext4_map_blocks": 50,
    f"{E};filemap_read;filemap_get_pages;folio_wait_bit_common;io_schedule;schedule;"
    "__schedule;finish_task_switch.isra.0": 200,
    f"{E};filemap_read;some_unknown_function": 50,
    "entry_SYSCALL_64_after_hwframe;do_syscall_64": 100,
    "[user]": 40,
    "unknown_root_only_frame": 10,
    # the harness's ioctl around the timed loop: not part of a read
    "entry_SYSCALL_64_after_hwframe;do_syscall_64;__x64_sys_ioctl;perf_ioctl;"
    "generic_exec_single": 77,
}


def perf(stacks: dict[str, int], wall: float = 100_000, cpu: float = 40_000,
         device: float | None = 50_000) -> dict[str, Any]:  # fmt: skip
    dw: dict[str, Any] = {"available": False, "reason": "refused: test"}
    if device is not None:
        dw = {"available": True, "source": "test", "reads": 500, "device_ns_per_read": device,
              "requests_per_read": 1.0, "request_ns_mean": device, "bytes_per_read": 65536,
              "wall_ns_per_read": wall, "wall_minus_cpu_ns": wall - cpu}  # fmt: skip
    return {
        "workload": "uncached",
        "size": 65536,
        "callchains": {"folded": [[k, v] for k, v in stacks.items()]},
        "functions": [],
        "counting": {"ops": 1000, "syscalls": 1000, "loop_ns": int(wall * 1000)},
        "counters": [{"name": "task-clock", "per_op": cpu, "supported": True}],
        "device_wait": dw,
        "null_syscall_ns": 80.0,
    }


def by_layer(a: dict[str, Any]) -> dict[str, float]:
    return {x["layer"]: x["ns"] for x in a["layers"]}


def test_layers_from_call_chains_sum_to_the_wall_clock() -> None:
    a = anatomy.of_perf(perf(UNCACHED))
    assert a is not None
    n = sum(UNCACHED.values()) - 77
    assert a["samples"] == n and a["harness_samples"] == 77 and a["by_call_chain"]
    ns = by_layer(a)
    assert sum(ns.values()) == pytest.approx(100_000)
    per = 40_000 / n  # ns per sample
    assert ns[layers.COPY] == pytest.approx(300 * per)
    assert ns[layers.DRIVER] == pytest.approx(250 * per)  # iowrite16 is the doorbell's helper
    assert ns[layers.MAPPING] == pytest.approx(50 * per)
    assert ns[layers.SCHED] == pytest.approx(200 * per)
    assert ns[layers.LOOKUP] == pytest.approx(50 * per)  # the unknown function: its caller's
    assert ns[layers.USER] == pytest.approx(40 * per)
    assert ns[layers.OTHER] == pytest.approx(10 * per)
    assert a["other_functions"] == [
        {"name": "unknown_root_only_frame", "samples": 10, "share_of_read": 10 * per / 100_000}
    ]
    assert a["classified_by"]["caller"] == 250 + 50  # the doorbell and the unknown function
    # off the CPU: the measured device wait, and the rest of wall − CPU
    assert ns[layers.DEVICE] == pytest.approx(50_000) and ns[layers.OFF_CPU] == pytest.approx(
        10_000
    )
    dw = a["device_wait"]
    assert dw["measured_ns"] == 50_000 and dw["wall_minus_cpu_ns"] == pytest.approx(60_000)


def test_device_wait_never_exceeds_wall_minus_cpu_in_the_stack() -> None:
    """Two passes: a measured wait above this pass's wall − CPU fills the off-CPU time (the
    stack still sums to wall) and stays visible, unclamped, beside it."""
    a = anatomy.of_perf(perf(UNCACHED, device=75_000))
    assert a is not None
    ns = by_layer(a)
    assert ns[layers.DEVICE] == pytest.approx(60_000) and ns[layers.OFF_CPU] == pytest.approx(0)
    assert a["device_wait"]["measured_ns"] == 75_000
    # nothing measured: all of wall − CPU is "other off-CPU time", and it says why
    a = anatomy.of_perf(perf(UNCACHED, device=None))
    assert a is not None
    assert by_layer(a)[layers.DEVICE] == 0 and by_layer(a)[layers.OFF_CPU] == pytest.approx(60_000)
    assert a["device_wait"]["available"] is False and "refused" in a["device_wait"]["reason"]


def test_off_cpu_splits_into_runnable_device_and_other() -> None:
    """The device pass measured the reader off the CPU 66,000 ns per read, 13,200 of them
    runnable (20 %) and the device busy 40,000 (60.6 %): those shares of this pass's
    wall − CPU (60,000) are "waiting for a CPU" and "device wait"; a device busier than the
    reader slept (readahead beside it) is capped at the rest; the stack sums to wall."""
    p = perf(UNCACHED, device=40_000)
    p["device_wait"].update(off_cpu_ns_per_read=66_000, runnable_ns_per_read=13_200,
                            switches_per_read=1.0)  # fmt: skip
    a = anatomy.of_perf(p)
    assert a is not None
    ns = by_layer(a)
    assert ns[layers.RUNQ] == pytest.approx(12_000)
    assert ns[layers.DEVICE] == pytest.approx(40_000 / 66_000 * 60_000)
    assert ns[layers.OFF_CPU] == pytest.approx(60_000 - 12_000 - 40_000 / 66_000 * 60_000)
    assert sum(ns.values()) == pytest.approx(100_000)
    assert a["device_wait"]["pass_off_cpu_ns"] == 66_000
    p["device_wait"]["device_ns_per_read"] = 55_000
    ns = by_layer(anatomy.of_perf(p) or {})
    assert ns[layers.DEVICE] == pytest.approx(48_000) and ns[layers.OFF_CPU] == 0
    # a run from before the scheduler was measured: no runnable layer, as before
    ns = by_layer(anatomy.of_perf(perf(UNCACHED)) or {})
    assert ns[layers.RUNQ] == 0 and ns[layers.DEVICE] == pytest.approx(50_000)


def test_measured_paths_to_the_copy_and_to_the_device() -> None:
    a = anatomy.of_perf(perf(UNCACHED))
    assert a is not None
    paths = {p["to"]: p for p in a["paths"]}
    n = sum(UNCACHED.values()) - 77
    copy = [f["function"] for f in paths["copy routine"]["frames"]]
    assert copy == ["entry_SYSCALL_64_after_hwframe", "do_syscall_64", "__x64_sys_pread64",
                    "vfs_read", "filemap_read", "copy_page_to_iter", "_copy_to_iter"]  # fmt: skip
    dev = paths["device"]["frames"]
    assert [f["function"] for f in dev][-3:] == ["virtio_queue_rq", "virtqueue_notify", "vp_notify"]
    # inclusive: a function counts every sample with it anywhere on the chain
    incl = {f["function"]: f for f in dev}
    assert incl["filemap_read"]["samples"] == 300 + 250 + 50 + 200 + 50
    assert incl["filemap_get_pages"]["samples"] == 250 + 50 + 200
    assert incl["read_pages"]["samples"] == 300
    assert incl["read_pages"]["ns"] == pytest.approx(300 / n * 40_000)
    assert (
        incl["read_pages"]["layer"] == layers.FILL and incl["vp_notify"]["layer"] == layers.DRIVER
    )
    assert paths["device"]["reach_share"] == pytest.approx(250 / n)


def test_a_target_few_samples_reach_has_no_path() -> None:
    stacks = {f"{E};filemap_read;copy_page_to_iter;_copy_to_iter": 999,
              f"{E};filemap_read;virtio_queue_rq": 1}  # fmt: skip
    a = anatomy.of_perf(perf(stacks, device=0))
    assert a is not None
    assert [p["to"] for p in a["paths"]] == ["copy routine"]


def test_runs_without_call_chains_use_the_sampled_functions() -> None:
    p = perf({}, wall=400, cpu=400)
    p["callchains"] = None
    p["functions"] = [{"name": "_copy_to_iter", "samples": 60}, {"name": "[user]", "samples": 20},
                      {"name": "(other)", "samples": 20}]  # fmt: skip
    a = anatomy.of_perf(p)
    assert a is not None and not a["by_call_chain"] and a["paths"] == []
    ns = by_layer(a)
    assert ns[layers.COPY] == pytest.approx(240) and ns[layers.OTHER] == pytest.approx(80)
    assert anatomy.call_tree(p) is None
    assert anatomy.of_perf({**p, "counting": {"ops": 0}}) is None


def test_call_tree_and_icicle_layout() -> None:
    tree = anatomy.call_tree(perf(UNCACHED))
    assert tree is not None and tree["name"] == "read()"
    n = sum(UNCACHED.values()) - 77
    assert tree["samples"] == n
    kids = {k["name"]: k for k in tree["children"]}
    assert kids["entry_SYSCALL_64_after_hwframe"]["samples"] == n - 40 - 10
    frames, height = flame.layout(tree, 40_000)
    top = frames[0]
    assert top.w == flame.WIDTH and "40,000 ns on CPU per read" in top.label
    by = {f.title.split(" · ")[0]: f for f in frames}
    # widths are inclusive shares; a helper frame takes its caller's colour
    assert by["filemap_get_pages"].w == pytest.approx(500 / n * flame.WIDTH, abs=0.1)
    assert by["iowrite16"].css == flame.layer_class(layers.DRIVER)
    assert by["vp_notify"].css == flame.layer_class(layers.DRIVER)
    assert by["_copy_to_iter"].css == flame.layer_class(layers.COPY)
    # children sit inside their parent, left to right
    fr, kid = by["filemap_read"], by["filemap_get_pages"]
    assert fr.x <= kid.x and kid.x + kid.w <= fr.x + fr.w + 0.2 and kid.y == fr.y + flame.ROW
    # the deepest chain sets the height; labels never overflow their frame
    assert height == (1 + E.count(";") + 1 + 11) * flame.ROW  # read(), E, then 11 frames
    for f in frames:
        assert len(f.label) * flame.CHAR <= f.w
    # frames under the drawing threshold are left out
    few, _ = flame.layout(tree, 40_000, min_fraction=0.2)
    assert {f.title.split(" · ")[0] for f in few} >= {"read()", "filemap_read"}
    assert "ext4_map_blocks" not in {f.title.split(" · ")[0] for f in few}
