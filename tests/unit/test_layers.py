"""The read-path taxonomy (readbench.model.layers) over real symbol lists: the read-path
functions of Debian's 6.1 and 6.12 kernels and of this project's 6.18 development VM
(tests/fixtures/symbols/, extracted by scripts/read_path_symbols.py), and its call-chain
rules on the chains the sampler records."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from readbench.model import layers as L
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
    "entry_SYSCALL_64_after_hwframe": L.SYSCALL, "do_syscall_64": L.SYSCALL,
    "x64_sys_call": L.SYSCALL, "__x64_sys_pread64": L.SYSCALL, "__x64_sys_read": L.SYSCALL,
    "syscall_exit_to_user_mode": L.SYSCALL, "exit_to_user_mode_loop": L.SYSCALL,
    "ksys_read": L.VFS, "ksys_pread64": L.VFS, "vfs_read": L.VFS, "rw_verify_area": L.VFS,
    "security_file_permission": L.VFS, "__fsnotify_parent": L.VFS, "touch_atime": L.VFS,
    "atime_needs_update": L.VFS, "fdget_pos": L.VFS, "__fdget_pos": L.VFS,
    "pipe_read": L.PIPE, "anon_pipe_read": L.PIPE, "anon_pipe_buf_release": L.PIPE,
    "ext4_file_read_iter": L.FS,
    "filemap_read": L.LOOKUP, "filemap_get_pages": L.LOOKUP, "filemap_get_read_batch": L.LOOKUP,
    "folio_mark_accessed": L.LOOKUP, "folio_wait_bit_common": L.LOOKUP,
    "page_cache_sync_ra": L.FILL, "page_cache_async_ra": L.FILL, "ondemand_readahead": L.FILL,
    "page_cache_ra_unbounded": L.FILL, "page_cache_ra_order": L.FILL,
    "force_page_cache_ra": L.FILL, "read_pages": L.FILL, "filemap_add_folio": L.FILL,
    "__filemap_add_folio": L.FILL, "filemap_alloc_folio": L.FILL,
    "filemap_alloc_folio_noprof": L.FILL,
    "ext4_map_blocks": L.MAPPING, "ext4_ext_map_blocks": L.MAPPING,
    "ext4_es_lookup_extent": L.MAPPING, "ext4_iomap_begin": L.MAPPING,
    "ext4_mpage_readpages": L.MAPPING, "ext4_readahead": L.MAPPING, "iomap_iter": L.MAPPING,
    "iomap_dio_rw": L.MAPPING, "__iomap_dio_rw": L.MAPPING, "iomap_dio_bio_iter": L.MAPPING,
    "submit_bio": L.BLOCK, "submit_bio_noacct": L.BLOCK, "blk_mq_submit_bio": L.BLOCK,
    "blk_finish_plug": L.BLOCK, "blk_mq_flush_plug_list": L.BLOCK,
    "blk_mq_dispatch_rq_list": L.BLOCK, "bio_alloc_bioset": L.BLOCK, "dd_dispatch_request": L.BLOCK,
    "virtio_queue_rq": L.DRIVER, "virtqueue_notify": L.DRIVER, "vp_notify": L.DRIVER,
    "virtqueue_add_split": L.DRIVER, "nvme_queue_rq": L.DRIVER,
    "virtblk_done": L.IRQ, "vring_interrupt": L.IRQ, "blk_mq_end_request": L.IRQ,
    "blk_update_request": L.IRQ, "bio_endio": L.IRQ, "iomap_dio_bio_end_io": L.IRQ,
    "handle_softirqs": L.IRQ, "__do_softirq": L.IRQ, "asm_common_interrupt": L.IRQ,
    "copy_page_to_iter": L.COPY, "_copy_to_iter": L.COPY, "rep_movs_alternative": L.COPY,
    "copy_user_enhanced_fast_string": L.COPY, "copy_user_generic_string": L.COPY,
    "copy_user_generic_unrolled": L.COPY, "copy_user_short_string": L.COPY,
    "__check_object_size": L.COPY,
    "mutex_lock": L.LOCKS, "mutex_unlock": L.LOCKS, "mutex_spin_on_owner": L.LOCKS,
    "__mutex_lock.constprop.0": L.LOCKS, "_raw_spin_lock": L.LOCKS,
    "native_queued_spin_lock_slowpath": L.LOCKS,
    "__schedule": L.SCHED, "schedule": L.SCHED, "io_schedule": L.SCHED,
    "finish_task_switch.isra.0": L.SCHED, "try_to_wake_up": L.SCHED,
    "__wake_up_sync_key": L.SCHED, "autoremove_wake_function": L.SCHED,
    "__folio_put": L.MM, "__mem_cgroup_uncharge": L.MM, "__mem_cgroup_charge": L.MM,
    "page_counter_uncharge": L.MM, "free_unref_page": L.MM, "__free_frozen_pages": L.MM,
    # the other read kinds: io_uring's submission, splice, an mmap read's page fault
    "io_submit_sqes": L.SYSCALL, "io_issue_sqe": L.SYSCALL, "io_read": L.VFS,
    "__x64_sys_io_uring_enter": L.SYSCALL, "do_splice": L.VFS, "vfs_splice_read": L.VFS,
    "filemap_splice_read": L.LOOKUP, "asm_exc_page_fault": L.SYSCALL,
    "exc_page_fault": L.SYSCALL, "handle_mm_fault": L.SYSCALL, "filemap_fault": L.LOOKUP,
    "filemap_map_pages": L.LOOKUP,
    # allocators are helpers: their caller's layer, memory management on their own
    "folio_alloc": L.MM, "folio_alloc_noprof": L.MM, "__alloc_pages": L.MM,
    "get_page_from_freelist": L.MM,
}  # fmt: skip
# The same oracle by subsystem: the layers each family of the fixtures may land in.
FAMILY_LAYERS = {
    "pipe_ anon_pipe_": {L.PIPE},
    "iomap_ __iomap_": {L.MAPPING, L.IRQ},
    "filemap_ __filemap_": {L.LOOKUP, L.FILL},
    "page_cache_": {L.LOOKUP, L.FILL},
    "blk_mq_ submit_bio __submit_bio": {L.BLOCK, L.IRQ},
    "virtblk_ virtqueue_ vring_": {L.DRIVER, L.IRQ},
    "copy_user_ rep_movs iov_iter_": {L.COPY, L.MM},
    "_raw_spin_": {L.LOCKS},
    "memcg mem_cgroup_ __mem_cgroup_ page_counter_": {L.MM},
    "ext4_": {L.FS, L.MAPPING, L.IRQ},
}


def test_fixtures_are_the_three_kernels() -> None:
    for release in KERNELS:
        head = (FIXTURES / f"{release}.txt").read_text().splitlines()[:2]
        assert head[0].startswith(f"# The read-path functions of Linux {release}")
        assert head[1].startswith("# Source: ")
        assert len(SYMBOLS[release]) > 500


@pytest.mark.parametrize("release", KERNELS)
def test_every_read_path_function_lands_in_a_named_layer(release: str) -> None:
    unnamed = sorted(f for f in SYMBOLS[release] if L.function_layer(f) == L.OTHER)
    assert unnamed == []


@pytest.mark.parametrize("release", KERNELS)
def test_path_functions_land_in_their_layer(release: str) -> None:
    present = {f: layer for f, layer in EXPECTED.items() if f in SYMBOLS[release]}
    assert len(present) > 0.8 * len(EXPECTED) - 8  # the renames above, at most
    wrong = {f: (L.function_layer(f), want) for f, want in present.items()
             if L.function_layer(f) != want}  # fmt: skip
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
        stray = {f: L.function_layer(f) for f in members if L.function_layer(f) not in allowed}
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
            assert p.layer == L.function_layer(p.target) or p.layer == p.layer_hint
            assert p.layer != L.OTHER, p.target
        assert {p.target: p.layer for p in points}[read_fn] == (
            L.PIPE if workload == "pipe" else L.FS
        )
    assert {p.layer for p in syscall_points("cached")} == {L.SYSCALL}
    # every read kind of the registry: every point of its path in a named layer
    for w in REGISTRY:
        for p in syscall_points(w.name) + function_points(w.name, "ext4_file_read_iter", None):
            assert p.layer != L.OTHER, (w.name, p.target)
    # a read function the file did not reveal keeps the layer its place in the path says
    p = function_points("cached", "f_op->read_iter (unknown)", None)
    assert {x.target: x.layer for x in p}["f_op->read_iter (unknown)"] == L.FS


def test_layers_have_names_orders_and_rules() -> None:
    assert [x.order for x in L.LAYERS] == list(range(len(L.LAYERS)))
    assert len(set(L.NAMES)) == len(L.NAMES)
    assert set(L.RULE_ORDER) == {x.name for x in L.LAYERS if x.rule}
    # the layers, at least
    for name in ("user space", "syscall entry and exit", "fd lookup and VFS",
                 "filesystem read_iter", "page-cache lookup", "page-cache fill and readahead",
                 "filesystem block mapping", "block layer", "device driver",
                 "interrupts and completion", "copy to user", "pipe", "locks and contention",
                 "scheduler and wake-ups", "memory management", "device wait"):  # fmt: skip
        assert name in L.BY_NAME
    assert not L.BY_NAME[L.DEVICE].sampled and not L.BY_NAME[L.OFF_CPU].sampled
    assert L.order([L.OTHER, L.COPY, "nonsense", L.USER]) == [L.USER, L.COPY, L.OTHER, "nonsense"]


def test_names_are_normalized() -> None:
    assert L.normalize("finish_task_switch.isra.0") == "finish_task_switch"
    assert L.normalize("__mutex_lock.constprop.0.cold") == "__mutex_lock"
    assert L.normalize("__pfx__copy_to_iter") == "_copy_to_iter"
    assert L.function_layer("rep movsb (inlined)") == L.COPY  # the atlas's FSRM point


# --- call chains (innermost first, as classify() takes them) ------------------------------

ENTRY = ("do_syscall_64", "entry_SYSCALL_64_after_hwframe")


def test_the_innermost_owned_frame_decides() -> None:
    assert L.classify(("_copy_to_iter", "copy_page_to_iter", "filemap_read", *ENTRY)) == (
        L.COPY, "name")  # fmt: skip
    # a helper takes its caller's layer: the virtio doorbell is the driver's
    assert L.classify(("iowrite16", "vp_notify", "virtqueue_notify", "virtio_queue_rq")) == (
        L.DRIVER, "caller")  # fmt: skip
    # the page allocator under readahead is the page-cache fill's
    chain = ("__rmqueue_pcplist", "get_page_from_freelist", "__alloc_frozen_pages_noprof",
             "alloc_pages_mpol", "folio_alloc_noprof", "page_cache_ra_unbounded")  # fmt: skip
    assert L.classify(chain) == (L.FILL, "caller")
    # an unknown function is its caller's work
    assert L.classify(("some_static_helper", "ext4_map_blocks", "ext4_mpage_readpages")) == (
        L.MAPPING, "caller")  # fmt: skip
    # without a chain, a helper falls back; an unknown function is "other"
    assert L.classify(("_raw_spin_unlock_irqrestore",)) == (L.LOCKS, "fallback")
    assert L.classify(("some_static_helper",)) == (L.OTHER, "none")
    assert L.classify(()) == (L.OTHER, "none")
    assert L.classify((L.USER_FRAME,)) == (L.USER, "name")


def test_the_pipe_wake_up_is_the_schedulers() -> None:
    """The irq-off section a pipe read ends in _raw_spin_unlock_irqrestore is the wait-queue
    lock of its wake-up (the issue's 15.9 % of a 4 KiB pipe read)."""
    chain = ("_raw_spin_unlock_irqrestore", "anon_pipe_read", "vfs_read", "ksys_read", *ENTRY)
    assert L.classify(chain) == (L.SCHED, "caller")
    assert L.classify(("mutex_spin_on_owner", "__mutex_lock.constprop.0", "anon_pipe_read")) == (
        L.LOCKS, "name")  # fmt: skip
    assert L.classify(("__raw_callee_save___kvm_vcpu_is_preempted", "mutex_spin_on_owner")) == (
        L.LOCKS, "name")  # fmt: skip
    # elsewhere the same unlock is its caller's: the driver's ring lock
    assert L.classify(("_raw_spin_unlock_irqrestore", "virtio_queue_rq"))[0] == L.DRIVER


def test_inside_an_interrupt_is_interrupt_time() -> None:
    softirq = ("tmigr_handle_remote", "handle_softirqs", "__irq_exit_rcu",
               "sysvec_apic_timer_interrupt", "asm_sysvec_apic_timer_interrupt",
               "_copy_to_iter", "copy_page_to_iter", "filemap_read", *ENTRY)  # fmt: skip
    assert L.classify(softirq) == (L.IRQ, "interrupt")
    # a preemption on the way back to user mode ends the interrupt: the scheduler's
    preempt = ("finish_task_switch.isra.0", "__schedule", "schedule",
               "irqentry_exit_to_user_mode", "asm_sysvec_apic_timer_interrupt")  # fmt: skip
    assert L.classify(preempt) == (L.SCHED, "name")


def test_the_harness_ioctl_is_recognised() -> None:
    assert L.is_harness(("generic_exec_single", "event_function_call", "perf_ioctl",
                         "__x64_sys_ioctl", *ENTRY))  # fmt: skip
    assert not L.is_harness(("_copy_to_iter", "filemap_read", *ENTRY))


def test_tracepoints_have_layers() -> None:
    assert L.tracepoint_layer("block", "block_rq_issue") == L.BLOCK
    assert L.tracepoint_layer("block", "block_rq_complete") == L.IRQ
    assert L.tracepoint_layer("filemap", "mm_filemap_get_pages") == L.LOOKUP
    assert L.tracepoint_layer("filemap", "mm_filemap_add_to_page_cache") == L.FILL
    assert L.tracepoint_layer("iomap", "iomap_iter") == L.MAPPING
    assert L.tracepoint_layer("ext4", "ext4_ext_map_blocks_enter") == L.MAPPING
    assert L.tracepoint_layer("ext4", "ext4_read_block_bitmap_load") == L.FS
    assert L.tracepoint_layer("raw_syscalls", "sys_enter") == L.SYSCALL
