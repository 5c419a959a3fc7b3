"""The read-path taxonomy (readbench.model.layers) over real symbol lists: the read-path
functions of Debian's 6.1 and 6.12 kernels and of this project's 6.18 development VM
(tests/fixtures/symbols/, extracted by scripts/read_path_symbols.py), and its call-chain
rules on the chains the sampler records."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from readbench.model import layers
from readbench.model.layers import (
    BLOCK,
    BY_NAME,
    COPY,
    DEVICE,
    DRIVER,
    FILL,
    FS,
    IRQ,
    LAYERS,
    LOCKS,
    LOOKUP,
    MAPPING,
    MM,
    NAMES,
    OFF_CPU,
    OTHER,
    PIPE,
    RULE_ORDER,
    SCHED,
    SYSCALL,
    USER,
    USER_FRAME,
    VFS,
)
from readbench.model.points import function_points, syscall_points
from readbench.model.workloads import REGISTRY

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "symbols"
KERNELS = ("6.1.0-57-amd64", "6.12.117+deb12-amd64", "6.18.44-fc-v857")


def _symbols(release: str) -> set[str]:
    text = (FIXTURES / f"{release}.txt").read_text()
    return {ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")}


SYMBOLS = {k: _symbols(k) for k in KERNELS}

# The layer each function of the read paths belongs to, written from the kernel source (the
# oracle: independent of the rules' prefixes and their order). Names change across these
# kernels: pipe_read became anon_pipe_read (6.15), the copy_user_* routines
# rep_movs_alternative (6.4), allocators took a _noprof suffix (6.10).
EXPECTED = {
    "entry_SYSCALL_64_after_hwframe": SYSCALL, "do_syscall_64": SYSCALL,
    "x64_sys_call": SYSCALL, "__x64_sys_pread64": SYSCALL, "__x64_sys_read": SYSCALL,
    "syscall_exit_to_user_mode": SYSCALL, "exit_to_user_mode_loop": SYSCALL,
    "ksys_read": VFS, "ksys_pread64": VFS, "vfs_read": VFS, "rw_verify_area": VFS,
    "security_file_permission": VFS, "__fsnotify_parent": VFS, "touch_atime": VFS,
    "atime_needs_update": VFS, "fdget_pos": VFS, "__fdget_pos": VFS,
    "pipe_read": PIPE, "anon_pipe_read": PIPE, "anon_pipe_buf_release": PIPE,
    "ext4_file_read_iter": FS,
    "filemap_read": LOOKUP, "filemap_get_pages": LOOKUP, "filemap_get_read_batch": LOOKUP,
    "folio_mark_accessed": LOOKUP, "folio_wait_bit_common": LOOKUP,
    "page_cache_sync_ra": FILL, "page_cache_async_ra": FILL, "ondemand_readahead": FILL,
    "page_cache_ra_unbounded": FILL, "page_cache_ra_order": FILL,
    "force_page_cache_ra": FILL, "read_pages": FILL, "filemap_add_folio": FILL,
    "__filemap_add_folio": FILL, "filemap_alloc_folio": FILL,
    "filemap_alloc_folio_noprof": FILL,
    "ext4_map_blocks": MAPPING, "ext4_ext_map_blocks": MAPPING,
    "ext4_es_lookup_extent": MAPPING, "ext4_iomap_begin": MAPPING,
    "ext4_mpage_readpages": MAPPING, "ext4_readahead": MAPPING, "iomap_iter": MAPPING,
    "iomap_dio_rw": MAPPING, "__iomap_dio_rw": MAPPING, "iomap_dio_bio_iter": MAPPING,
    "submit_bio": BLOCK, "submit_bio_noacct": BLOCK, "blk_mq_submit_bio": BLOCK,
    "blk_finish_plug": BLOCK, "blk_mq_flush_plug_list": BLOCK,
    "blk_mq_dispatch_rq_list": BLOCK, "bio_alloc_bioset": BLOCK, "dd_dispatch_request": BLOCK,
    "virtio_queue_rq": DRIVER, "virtqueue_notify": DRIVER, "vp_notify": DRIVER,
    "virtqueue_add_split": DRIVER, "nvme_queue_rq": DRIVER,
    "virtblk_done": IRQ, "vring_interrupt": IRQ, "blk_mq_end_request": IRQ,
    "blk_update_request": IRQ, "bio_endio": IRQ, "iomap_dio_bio_end_io": IRQ,
    "handle_softirqs": IRQ, "__do_softirq": IRQ, "asm_common_interrupt": IRQ,
    "copy_page_to_iter": COPY, "_copy_to_iter": COPY, "rep_movs_alternative": COPY,
    "copy_user_enhanced_fast_string": COPY, "copy_user_generic_string": COPY,
    "copy_user_generic_unrolled": COPY, "copy_user_short_string": COPY,
    "__check_object_size": COPY,
    "mutex_lock": LOCKS, "mutex_unlock": LOCKS, "mutex_spin_on_owner": LOCKS,
    "__mutex_lock.constprop.0": LOCKS, "_raw_spin_lock": LOCKS,
    "native_queued_spin_lock_slowpath": LOCKS,
    "__schedule": SCHED, "schedule": SCHED, "io_schedule": SCHED,
    "finish_task_switch.isra.0": SCHED, "try_to_wake_up": SCHED,
    "__wake_up_sync_key": SCHED, "autoremove_wake_function": SCHED,
    "__folio_put": MM, "__mem_cgroup_uncharge": MM, "__mem_cgroup_charge": MM,
    "page_counter_uncharge": MM, "free_unref_page": MM, "__free_frozen_pages": MM,
    # the other read kinds: io_uring's submission, splice, an mmap read's page fault
    "io_submit_sqes": SYSCALL, "io_issue_sqe": SYSCALL, "io_read": VFS,
    "__x64_sys_io_uring_enter": SYSCALL, "do_splice": VFS, "vfs_splice_read": VFS,
    "filemap_splice_read": LOOKUP, "asm_exc_page_fault": SYSCALL,
    "exc_page_fault": SYSCALL, "handle_mm_fault": SYSCALL, "filemap_fault": LOOKUP,
    "filemap_map_pages": LOOKUP,
    # allocators are helpers: their caller's layer, memory management on their own
    "folio_alloc": MM, "folio_alloc_noprof": MM, "__alloc_pages": MM,
    "get_page_from_freelist": MM,
}  # fmt: skip
# The same oracle by subsystem: the layers each family of the fixtures may land in.
FAMILY_LAYERS = {
    "pipe_ anon_pipe_": {PIPE},
    "iomap_ __iomap_": {MAPPING, IRQ},
    "filemap_ __filemap_": {LOOKUP, FILL},
    "page_cache_": {LOOKUP, FILL},
    "blk_mq_ submit_bio __submit_bio": {BLOCK, IRQ},
    "virtblk_ virtqueue_ vring_": {DRIVER, IRQ},
    "copy_user_ rep_movs iov_iter_": {COPY, MM},
    "_raw_spin_": {LOCKS},
    "memcg mem_cgroup_ __mem_cgroup_ page_counter_": {MM},
    "ext4_": {FS, MAPPING, IRQ},
}


def test_fixtures_are_the_three_kernels() -> None:
    for release in KERNELS:
        head = (FIXTURES / f"{release}.txt").read_text().splitlines()[:2]
        assert head[0].startswith(f"# The read-path functions of Linux {release}")
        assert head[1].startswith("# Source: ")
        assert len(SYMBOLS[release]) > 500


@pytest.mark.parametrize("release", KERNELS)
def test_every_read_path_function_lands_in_a_named_layer(release: str) -> None:
    unnamed = sorted(f for f in SYMBOLS[release] if layers.function_layer(f) == OTHER)
    assert unnamed == []


@pytest.mark.parametrize("release", KERNELS)
def test_path_functions_land_in_their_layer(release: str) -> None:
    present = {f: layer for f, layer in EXPECTED.items() if f in SYMBOLS[release]}
    assert len(present) > 0.8 * len(EXPECTED) - 8  # the renames above, at most
    wrong = {f: (layers.function_layer(f), want) for f, want in present.items()
             if layers.function_layer(f) != want}  # fmt: skip
    assert wrong == {}


def test_every_expected_function_exists_in_some_kernel() -> None:
    """The table names real functions: each is in at least one of the three kernels."""
    allsyms = set().union(*SYMBOLS.values())
    assert [f for f in EXPECTED if f not in allsyms] == []
    # and the renames are real: each kernel has exactly one of each pair
    for old, new in (("pipe_read", "anon_pipe_read"), ("filemap_alloc_folio",
                                                        "filemap_alloc_folio_noprof")):  # fmt: skip
        for release, syms in SYMBOLS.items():
            assert (old in syms) != (new in syms), (release, old, new)


@pytest.mark.parametrize("release", KERNELS)
def test_families_land_only_in_their_subsystems_layers(release: str) -> None:
    for prefixes, allowed in FAMILY_LAYERS.items():
        rx = re.compile("^(?:" + "|".join(map(re.escape, prefixes.split())) + ")")
        members = [f for f in SYMBOLS[release] if rx.match(f)]
        assert members, prefixes
        stray = {
            f: layers.function_layer(f) for f in members if layers.function_layer(f) not in allowed
        }
        assert stray == {}, prefixes


@pytest.mark.parametrize("release", KERNELS)
def test_the_atlas_layer_column_uses_the_taxonomy(release: str) -> None:
    syms = SYMBOLS[release]
    pipe_fn = "anon_pipe_read" if "anon_pipe_read" in syms else "pipe_read"
    routine = "rep_movs_alternative" if "rep_movs_alternative" in syms else None
    for workload, read_fn in (("cached", "ext4_file_read_iter"), ("pipe", pipe_fn),
                              ("direct", "ext4_file_read_iter")):  # fmt: skip
        points = function_points(workload, read_fn, routine)
        for p in points:
            assert p.layer == layers.function_layer(p.target) or p.layer == p.layer_hint
            assert p.layer != OTHER, p.target
        assert {p.target: p.layer for p in points}[read_fn] == (PIPE if workload == "pipe" else FS)
    assert {p.layer for p in syscall_points("cached")} == {SYSCALL}
    # every read kind of the registry: every point of its path in a named layer
    for w in REGISTRY:
        for p in syscall_points(w.name) + function_points(w.name, "ext4_file_read_iter", None):
            assert p.layer != OTHER, (w.name, p.target)
    # a read function the file did not reveal keeps the layer its place in the path says
    p = function_points("cached", "f_op->read_iter (unknown)", None)
    assert {x.target: x.layer for x in p}["f_op->read_iter (unknown)"] == FS


def test_layers_have_names_orders_and_rules() -> None:
    assert [x.order for x in LAYERS] == list(range(len(LAYERS)))
    assert len(set(NAMES)) == len(NAMES)
    assert set(RULE_ORDER) == {x.name for x in LAYERS if x.rule}
    # the layers, at least
    for name in ("user space", "syscall entry and exit", "fd lookup and VFS",
                 "filesystem read_iter", "page-cache lookup", "page-cache fill and readahead",
                 "filesystem block mapping", "block layer", "device driver",
                 "interrupts and completion", "copy to user", "pipe", "locks and contention",
                 "scheduler and wake-ups", "memory management", "device wait"):  # fmt: skip
        assert name in BY_NAME
    assert not BY_NAME[DEVICE].sampled and not BY_NAME[OFF_CPU].sampled
    assert layers.order([OTHER, COPY, "nonsense", USER]) == [
        USER,
        COPY,
        OTHER,
        "nonsense",
    ]


def test_names_are_normalized() -> None:
    assert layers.normalize("finish_task_switch.isra.0") == "finish_task_switch"
    assert layers.normalize("__mutex_lock.constprop.0.cold") == "__mutex_lock"
    assert layers.normalize("__pfx__copy_to_iter") == "_copy_to_iter"
    assert layers.function_layer("rep movsb (inlined)") == COPY  # the atlas's FSRM point


# --- call chains (innermost first, as classify() takes them) ------------------------------

ENTRY = ("do_syscall_64", "entry_SYSCALL_64_after_hwframe")


def test_the_innermost_owned_frame_decides() -> None:
    assert layers.classify(("_copy_to_iter", "copy_page_to_iter", "filemap_read", *ENTRY)) == (
        COPY, "name")  # fmt: skip
    # a helper takes its caller's layer: the virtio doorbell is the driver's
    assert layers.classify(("iowrite16", "vp_notify", "virtqueue_notify", "virtio_queue_rq")) == (
        DRIVER, "caller")  # fmt: skip
    # the page allocator under readahead is the page-cache fill's
    chain = ("__rmqueue_pcplist", "get_page_from_freelist", "__alloc_frozen_pages_noprof",
             "alloc_pages_mpol", "folio_alloc_noprof", "page_cache_ra_unbounded")  # fmt: skip
    assert layers.classify(chain) == (FILL, "caller")
    # an unknown function is its caller's work
    assert layers.classify(("some_static_helper", "ext4_map_blocks", "ext4_mpage_readpages")) == (
        MAPPING, "caller")  # fmt: skip
    # without a chain, a helper falls back; an unknown function is "other"
    assert layers.classify(("_raw_spin_unlock_irqrestore",)) == (LOCKS, "fallback")
    assert layers.classify(("some_static_helper",)) == (OTHER, "none")
    assert layers.classify(()) == (OTHER, "none")
    assert layers.classify((USER_FRAME,)) == (USER, "name")


def test_the_pipe_wake_up_is_the_schedulers() -> None:
    """The irq-off section a pipe read ends in _raw_spin_unlock_irqrestore is the wait-queue
    lock of its wake-up (the issue's 15.9 % of a 4 KiB pipe read)."""
    chain = ("_raw_spin_unlock_irqrestore", "anon_pipe_read", "vfs_read", "ksys_read", *ENTRY)
    assert layers.classify(chain) == (SCHED, "caller")
    spin = ("mutex_spin_on_owner", "__mutex_lock.constprop.0", "anon_pipe_read")
    assert layers.classify(spin) == (LOCKS, "name")
    preempted = ("__raw_callee_save___kvm_vcpu_is_preempted", "mutex_spin_on_owner")
    assert layers.classify(preempted) == (LOCKS, "name")
    # elsewhere the same unlock is its caller's: the driver's ring lock
    assert layers.classify(("_raw_spin_unlock_irqrestore", "virtio_queue_rq"))[0] == DRIVER


def test_inside_an_interrupt_is_interrupt_time() -> None:
    softirq = ("tmigr_handle_remote", "handle_softirqs", "__irq_exit_rcu",
               "sysvec_apic_timer_interrupt", "asm_sysvec_apic_timer_interrupt",
               "_copy_to_iter", "copy_page_to_iter", "filemap_read", *ENTRY)  # fmt: skip
    assert layers.classify(softirq) == (IRQ, "interrupt")
    # a preemption on the way back to user mode ends the interrupt: the scheduler's
    preempt = ("finish_task_switch.isra.0", "__schedule", "schedule",
               "irqentry_exit_to_user_mode", "asm_sysvec_apic_timer_interrupt")  # fmt: skip
    assert layers.classify(preempt) == (SCHED, "name")


def test_the_harness_ioctl_is_recognised() -> None:
    assert layers.is_harness(("generic_exec_single", "event_function_call", "perf_ioctl",
                         "__x64_sys_ioctl", *ENTRY))  # fmt: skip
    assert not layers.is_harness(("_copy_to_iter", "filemap_read", *ENTRY))


def test_tracepoints_have_layers() -> None:
    assert layers.tracepoint_layer("block", "block_rq_issue") == BLOCK
    assert layers.tracepoint_layer("block", "block_rq_complete") == IRQ
    assert layers.tracepoint_layer("filemap", "mm_filemap_get_pages") == LOOKUP
    assert layers.tracepoint_layer("filemap", "mm_filemap_add_to_page_cache") == FILL
    assert layers.tracepoint_layer("iomap", "iomap_iter") == MAPPING
    assert layers.tracepoint_layer("ext4", "ext4_ext_map_blocks_enter") == MAPPING
    assert layers.tracepoint_layer("ext4", "ext4_read_block_bitmap_load") == FS
    assert layers.tracepoint_layer("raw_syscalls", "sys_enter") == SYSCALL
