"""The read-path taxonomy: the one home of "which layer of a read() is this function in".

Each layer has a name, an order (the order a read passes them, for tables and stacks) and
the rule that assigns kernel functions to it. The copy-routine attribution
(kernel/attribution.py), the anatomy (analysis/anatomy.py), the atlas's layer column
(atlas/points.py) and the report all classify through this module.

A function is assigned by name:
  - a layer *owns* it when its name matches the layer's rule (rules are tried in RULE_ORDER,
    which puts the specific before the general: ext4's block mapping before ext4);
  - a *helper* (generic library code: list checks, xarray walks, allocators, the irq-restore
    that ends an irq-off section, retpoline and return thunks, MMIO accessors) takes the layer
    of the code that called it, and its fallback layer when nothing in its call chain is owned.

A perf sample is assigned by its call chain (classify()): inside an interrupt (an interrupt or
softirq entry on the chain, not yet returned to user mode) it is "interrupts and completion";
otherwise the innermost frame a layer owns decides, walking out from the sampled function
through helpers and unknown functions (code a layer calls is that layer's work). A sample with
no owned frame at all, and no helper fallback, is "other".

Three layers are not sampled: "device wait" is measured per read from the block tracepoints
and "waiting for a CPU" from the scheduler's (both bpf/devwait.bpf.c), and "other off-CPU
time" is what is left of wall − CPU beside them.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

USER = "user space"
SYSCALL = "syscall entry and exit"
BPF = "BPF programs"
VFS = "fd lookup and VFS"
PIPE = "pipe"
FS = "filesystem read_iter"
LOOKUP = "page-cache lookup"
FILL = "page-cache fill and readahead"
MAPPING = "filesystem block mapping"
BLOCK = "block layer"
DRIVER = "device driver"
IRQ = "interrupts and completion"
COPY = "copy to user"
LOCKS = "locks and contention"
SCHED = "scheduler and wake-ups"
MM = "memory management"
DEVICE = "device wait"
RUNQ = "waiting for a CPU"
OFF_CPU = "other off-CPU time"
OTHER = "other"

USER_FRAME = "[user]"  # the one frame of a user-mode sample (its user stack is not recorded)


@dataclass(frozen=True)
class Layer:
    name: str
    order: int
    what: str
    rule: str  # regex matched at the start of a normalized function name ("" = not sampled)
    sampled: bool = True  # False: measured (device wait) or derived (other off-CPU time)
    tracepoints: str = ""  # regex on "group/name" of the read-side tracepoints in this layer

    @functools.cached_property
    def pattern(self) -> re.Pattern[str] | None:
        return re.compile(self.rule) if self.rule else None


def _any(prefixes: str) -> str:
    """A regex matching a name that starts with any of the whitespace-separated prefixes."""
    return "^(?:" + "|".join(re.escape(p) for p in prefixes.split()) + ")"


LAYERS: tuple[Layer, ...] = (
    Layer(USER, 0, "the C loop and libc's syscall wrapper", _any(USER_FRAME)),
    Layer(
        SYSCALL, 1, "the way into the kernel and back: the syscall (or an mmap read's page "
        "fault, or io_uring's submission ring), dispatch, mitigations, the return to user space",
        _any(
            """
            entry_SYSCALL entry_INT80 do_syscall_ do_int80 x64_sys_call __x64_sys_
            __ia32_sys_ __do_sys_ __se_sys_ syscall_ __syscall_ exit_to_user_mode
            __exit_to_user_mode arch_exit_ __rseq_ rseq_ fpregs_ switch_fpu fpu__
            restore_fpregs amd_clear_divider clear_bhb mds_clear audit_ __audit_
            task_work_run resume_user_mode_work asm_exc_page_fault exc_page_fault
            do_user_addr_fault handle_mm_fault __handle_mm_fault handle_pte_fault do_fault
            do_read_fault __do_fault do_pte_missing lock_vma_under_rcu lock_mm_and_find_vma
            mm_account_fault io_submit_sqes io_issue_sqe io_uring_ __io_uring io_cqring_
            __io_cqring io_req_ __io_req io_fill_cqe io_queue_sqe io_init_req io_get_sqe
            io_alloc_req io_run_task_work __io_submit_flush io_submit_flush io_free_batch
            io_put_task io_cq_ __io_cq
            """
        ),
        tracepoints=r"^io_uring/",
    ),
    Layer(
        BPF, 2, "BPF programs that ran on the read's path (a baseline cell has none of its "
        "own: on a shared machine, other processes' programs on sys_enter and the like)",
        _any(
            """
            bpf_prog_ __bpf_prog_ bpf_trace_run __bpf_trace_ trace_call_bpf bpf_dispatcher_
            __bpf_tramp_ bpf_trampoline_ __bpf_prog_enter __bpf_prog_exit
            """
        ),
    ),
    Layer(
        VFS, 3, "fdget, vfs_read, rw_verify_area, LSM file_permission, fsnotify, atime",
        _any(
            """
            ksys_ vfs_ do_iter_read do_iter_readv new_sync_read __kernel_read
            kernel_read rw_verify_area security_ selinux_ apparmor_ aa_file_ bpf_lsm_
            hook_file_ landlock_ tomoyo_ smack_ ima_file fsnotify __fsnotify fdget
            __fdget fget __fget fput __fput f_unlock_pos __f_unlock_pos touch_atime
            atime_needs_update current_time inode_needs_ make_vfsuid make_vfsgid
            file_accessed generic_update_time inode_update_time init_sync_kiocb
            import_ubuf import_iovec import_single_range do_readv do_preadv
            file_ra_state_init io_read __io_read io_read_fixed io_rw_ io_import_
            io_iter_do_read io_prep_rw io_prep_read do_splice __do_splice do_splice_read
            do_splice_to splice_file_to_pipe vfs_splice_read
            """
        ),
    ),
    Layer(PIPE, 4, "the pipe's own read code",
          _any("anon_pipe_ pipe_ fifo_pipe_ __pipe_ free_pipe_info")),
    Layer(
        FS, 5, "the filesystem's read_iter and its own code (block mapping apart)",
        _any(
            """
            ext4_ __ext4_ ext2_ xfs_ btrfs_ f2fs_ v9fs_ p9_ nfs_ fuse_ ovl_ erofs_
            squashfs_ jbd2_ __jbd2_ shmem_ generic_file_read_iter
            generic_file_splice_read fat_ exfat_ ntfs_
            """
        ),
        tracepoints=r"^ext4/",
    ),
    Layer(
        LOOKUP, 6, "finding the folios in the page cache (filemap_get_pages), waiting on them",
        _any(
            """
            filemap_ __filemap_ folio_mark_accessed mark_page_accessed folio_wait_
            __folio_lock folio_lock find_get_ find_lock_ pagecache_get_page page_cache_
            __page_cache_
            """
        ),
        tracepoints=r"^filemap/(?!mm_filemap_add_to_page_cache)",
    ),
    Layer(
        FILL, 7, "folio allocation and insertion, readahead (page_cache_ra_*, read_pages)",
        _any(
            """
            page_cache_ra_ page_cache_sync_ra page_cache_async_ra force_page_cache_ra
            do_page_cache_ra ondemand_readahead read_pages readahead_ filemap_add_folio
            __filemap_add_folio filemap_alloc_folio __filemap_alloc_folio
            filemap_create_folio filemap_read_folio filemap_readahead add_to_page_cache
            __add_to_page_cache __page_cache_alloc page_cache_alloc ra_alloc_folio
            """
        ),
        tracepoints=r"^(?:readahead/|filemap/mm_filemap_add_to_page_cache)",
    ),
    Layer(
        MAPPING, 8, "file offset to disk block: ext4 map_blocks and extents, iomap begin/end, "
        "the fs's readahead and direct I/O engines",
        _any(
            """
            ext4_map_blocks ext4_ext_ ext4_ind_map_blocks ext4_es_ __es_
            ext4_find_extent ext4_iomap_ ext4_get_block _ext4_get_block
            ext4_mpage_readpages ext4_readahead ext4_read_folio ext4_readpage
            __check_block_validity ext4_sb_block_valid ext4_inode_block_valid
            ext4_check_map_extents_env ext4_data_block_valid ext4_cache_extents
            __read_extent_tree_block iomap_ __iomap_ xfs_bmapi_ xfs_read_iomap_begin
            xfs_iomap_ xfs_direct_write_iomap btrfs_get_extent btrfs_map_ mpage_
            do_mpage_readpage block_read_full_folio blkdev_get_block map_bh
            """
        ),
        tracepoints=r"^(?:iomap/|ext4/ext4_(?:ext_|ind_)?map_blocks|ext4/ext4_es_|ext4/ext4_ext_)",
    ),
    Layer(
        BLOCK, 9, "bio, request, plug, blk-mq, I/O scheduler, cgroup throttling and QoS",
        _any(
            """
            blk_ __blk_ blkg_ blkcg_ bio_ __bio_ bvec_ submit_bio __submit_bio elv_
            __elv_ elevator_ dd_ __dd_ deadline_ bfq_ kyber_ wbt_ __wbt_ rq_qos_
            __rq_qos_ throtl_ ioc_ bdev_ blkdev_ part_ update_io_ticks kblockd_ disk_
            """
        ),
        tracepoints=r"^block/(?!block_rq_complete|block_bio_complete|block_io_done)",
    ),
    Layer(
        DRIVER, 10, "the device driver: virtio-blk and its ring, nvme, scsi and disks",
        _any(
            """
            virtio_ __virtio_ virtblk_ virtqueue_ vring_ detach_buf vp_ nvme_ scsi_
            __scsi_ sd_setup_ sd_init_command sd_done sd_completed_bytes
            sd_uninit_command ata_ ahci_ loop_queue_rq lo_rw_aio null_queue_rq xen_blkif
            blkif_
            """
        ),
    ),
    Layer(
        IRQ, 11, "hard and soft interrupts, and I/O completion (end_io, end_request)",
        _any(
            """
            asm_common_interrupt asm_sysvec_ common_interrupt __common_interrupt sysvec_
            __sysvec_ irq_exit __irq_exit irqentry_ irq_enter handle_irq handle_edge_irq
            handle_fasteoi_irq handle_irq_event __handle_irq_event handle_softirqs
            __do_softirq do_softirq __local_bh_enable_ip run_timer_softirq __run_timers
            call_timer_fn rcu_core tasklet_ net_rx_action blk_done_softirq
            blk_complete_reqs hrtimer_interrupt __hrtimer_run_queues tick_ tmigr_
            timer_expire_remote vring_interrupt vp_interrupt vp_vring_interrupt
            virtblk_done nvme_irq nvme_pci_complete nvme_complete scsi_io_completion
            scsi_end_request blk_mq_complete_request blk_mq_end_request
            __blk_mq_end_request blk_update_request blk_account_io_done bio_endio
            __read_end_io ext4_end_bio mpage_end_io mpage_read_end_io
            iomap_dio_bio_end_io iomap_dio_complete iomap_read_end_io end_bio_
            end_buffer_ folio_end_read wbt_done __wbt_done __rq_qos_done rq_qos_done
            """
        ),
        tracepoints=r"^block/(?:block_rq_complete|block_bio_complete|block_io_done)",
    ),
    Layer(
        COPY, 12, "copy_page_to_iter, _copy_to_iter and the copy routine (or its inlined "
        "rep movsb)",
        _any(
            """
            copy_page_to_iter copy_folio_to_iter _copy_to_iter __copy_to_iter
            copy_to_user_iter copyout _copy_to_user __copy_to_user copy_user_ rep_movs
            iov_iter_ __check_object_size check_heap_object check_stack_object
            __virt_addr_valid simple_copy_to_iter memcpy_to_iter
            """
        ),
    ),
    Layer(
        LOCKS, 13, "mutexes (the pipe's, spinning on its owner), spinlocks, rwsems",
        _any(
            """
            mutex_ __mutex_ osq_ _raw_spin_ _raw_read_ _raw_write_ queued_spin_
            native_queued_spin_ __pv_queued_spin_ pv_queued_spin
            __raw_callee_save___pv_queued_spin queued_read_ queued_write_ down_read
            down_write up_read up_write __down_ __up_ rwsem_ __rwsem_ percpu_down_
            percpu_up_ kvm_wait __kvm_vcpu_is_preempted
            __raw_callee_save___kvm_vcpu_is_preempted
            """
        ),
    ),
    Layer(
        SCHED, 14, "schedule, context switch, wake-ups and wait queues",
        _any(
            """
            __schedule schedule io_schedule blk_io_schedule preempt_schedule
            __cond_resched _cond_resched finish_task_switch __switch_to switch_mm
            context_switch pick_next_ pick_task put_prev_ set_next_ enqueue_ dequeue_
            update_curr update_load_ __update_load_ update_cfs_ update_rq_clock
            update_min_vruntime reweight_ place_entity psi_ try_to_wake_up ttwu_
            wake_up_ __wake_up wake_q_ autoremove_wake_function default_wake_function
            woken_wake_function wake_page_function prepare_to_wait finish_wait
            select_task_rq select_idle_ check_preempt wakeup_preempt resched_curr sched_
            __sched_ raw_spin_rq_ newidle_balance load_balance balance_fair
            update_sd_lb_stats cpuacct_charge __cgroup_account_cputime
            cgroup_account_cputime __wait_for_common wait_for_completion
            do_wait_for_common folio_wake_bit kick_process kvm_kick_cpu
            rcu_note_context_switch perf_event_task_sched_ __perf_event_task_sched_
            """
        ),
    ),
    Layer(
        MM, 15, "page freeing, memcg charge and uncharge, LRU, pinning user pages",
        _any(
            """
            __folio_put folio_put folios_put put_page __put_page release_pages
            free_unref_ free_frozen_page __free_frozen_pages free_pcppages_bulk __free_
            free_pages free_page free_one_page free_pcp_prepare free_tail_page_prepare
            __get_pfnblock_flags_mask get_pfnblock_ kfree kmem_cache_free __slab_free
            slab_free kvfree put_cpu_partial discard_slab mempool_free mem_cgroup_
            __mem_cgroup_ memcg __memcg charge_memcg try_charge uncharge_ page_counter_
            refill_stock drain_stock consume_stock refill_obj_stock consume_obj_stock
            obj_cgroup_ mod_memcg_ __mod_memcg_ __mod_lruvec_ mod_lruvec_ lruvec_
            __lruvec_ __mod_node_page_state __mod_zone_page_state mod_node_page_state
            mod_zone_page_state __count_memcg_ count_memcg_ __count_vm_event
            get_mem_cgroup_from_ __css_rstat_ css_rstat_ cgroup_rstat_
            propagate_protected_usage folio_lruvec_ folio_batch_move_lru
            __folio_batch_add_and_move folio_add_lru folio_activate lru_add lru_cache_
            workingset_ gup_ get_user_pages __get_user_pages pin_user_pages
            internal_get_user_pages follow_page unpin_user_ try_grab_ iov_iter_extract
            iov_iter_get_pages folio_mark_dirty folio_mapping
            """
        ),
    ),
    Layer(DEVICE, 16, "measured per read from block_rq_issue to block_rq_complete (off CPU)",
          "", sampled=False),
    Layer(RUNQ, 17, "measured: the reader runnable (woken, or preempted) and not yet running, "
          "sched_wakeup to sched_switch (off CPU)", "", sampled=False),
    Layer(OFF_CPU, 18, "wall − CPU − the two measured above: asleep for something other than "
          "the device (a pipe's writer), or (where nothing was measured) all of wall − CPU",
          "", sampled=False),
    Layer(OTHER, 19, "samples no rule places (their functions are listed)", ""),
)  # fmt: skip

NAMES = tuple(layer.name for layer in LAYERS)
BY_NAME = {layer.name: layer for layer in LAYERS}
# Column headings for narrow tables.
SHORT = {
    USER: "user", SYSCALL: "syscall", BPF: "BPF", VFS: "VFS", PIPE: "pipe", FS: "fs read_iter",
    LOOKUP: "cache lookup", FILL: "cache fill", MAPPING: "block map", BLOCK: "block",
    DRIVER: "driver", IRQ: "irq", COPY: "copy", LOCKS: "locks", SCHED: "sched", MM: "mm",
    DEVICE: "device wait", RUNQ: "wait for CPU", OFF_CPU: "off-CPU other", OTHER: "other",
}  # fmt: skip
assert set(SHORT) == set(NAMES)

# Owners are tried in this order: specific rules before the general ones they overlap
# (interrupt-side completion before the block layer, driver and iomap; the mm owners of
# iov_iter_extract_* before the copy's iov_iter_*; readahead before filemap_; ext4's block
# mapping before ext4; the scheduler's io_schedule before the block layer's blk_).
RULE_ORDER = (USER, BPF, IRQ, SCHED, MM, FILL, MAPPING, LOOKUP, COPY, PIPE, LOCKS, SYSCALL,
              VFS, BLOCK, DRIVER, FS)  # fmt: skip


@dataclass(frozen=True)
class Helper:
    """Generic code a layer calls: it takes its caller's layer. `fallback` when its chain has
    no owned frame (or there is no chain); `by_caller` maps a caller's layer to another."""

    rule: str
    fallback: str
    by_caller: tuple[tuple[str, str], ...] = ()
    why: str = ""

    @functools.cached_property
    def pattern(self) -> re.Pattern[str]:
        return re.compile(self.rule)


HELPERS: tuple[Helper, ...] = (
    Helper(
        _any(
            """
            _raw_spin_unlock_irq _raw_spin_unlock_bh _raw_read_unlock_irq
            _raw_write_unlock_irq
            """
        ),
        LOCKS,
        # A sampling interrupt cannot land while interrupts are off: the time of an irq-off
        # section is sampled where it turns them back on, in the unlock. The pipe takes no
        # irq-safe lock of its own; its only irq-off section is the wait-queue lock of the
        # wake-up (__wake_up_sync_key tail-calls into it, so the unwinder shows the pipe).
        by_caller=((PIPE, SCHED),),
        why="the end of an irq-off section: its caller's time",
    ),
    Helper(_any("__rcu_read_lock __rcu_read_unlock rcu_read_unlock_strict"), LOCKS),
    Helper(_any("xa_ xas_ __xas_ __xa_"), LOOKUP, why="the page cache's xarray"),
    Helper(
        _any(
            """
            folio_alloc __folio_alloc alloc_pages __alloc_pages __alloc_frozen_pages
            alloc_frozen_pages get_page_from_freelist rmqueue __rmqueue prep_new_page
            post_alloc_hook clear_page policy_nodemask kmem_cache_alloc
            __kmem_cache_alloc kmalloc __kmalloc ___slab_alloc __slab_alloc slab_alloc
            mempool_alloc should_failslab allocate_slab new_slab __alloc_pages_slowpath
            alloc_slab_page __next_zones_zonelist __zone_watermark_ok
            """
        ),
        MM,
        why="allocation is the allocating layer's cost (a folio for the page cache, a bio)",
    ),
    Helper(
        _any(
            """
            memset __memset memcpy __memcpy memmove __memmove memcmp __list_ _find_
            find_next_bit rb_ __rb_ percpu_counter_ __percpu_counter_ llist_ __llist_
            bitmap_ __bitmap_ sort_r __sw_hweight
            """
        ),
        OTHER,
    ),
    Helper(
        _any(
            """
            ktime_get __ktime_get read_tsc native_sched_clock sched_clock local_clock
            kvm_clock_ kvm_sched_clock pvclock_ jiffies_ ns_to_timespec
            """
        ),
        OTHER,
    ),
    Helper(
        _any(
            """
            __get_user_ __put_user_ _copy_from_user copy_from_user __get_user_nocheck
            __put_user_nocheck
            """
        ),
        SYSCALL,
    ),
    Helper(
        _any(
            """
            __x86_return_thunk x86_return_thunk its_return_thunk srso_ retbleed_
            __x86_indirect_ zen_untrain_ret entry_untrain_ret call_depth_return_thunk
            __x86_return_skl __x86_indirect_its_thunk
            """
        ),
        SYSCALL,
        why="speculation-mitigation thunks on every indirect call and return",
    ),
    Helper(
        _any(
            """
            iowrite ioread __iowrite __ioread vp_iowrite vp_ioread pio_write pio_read
            native_io_
            """
        ),
        DRIVER,
        why="the MMIO/port doorbell: on a VM, an exit to the hypervisor",
    ),
    Helper(_any("sg_ __sg_ sgl_"), BLOCK, why="scatterlists for the request"),
    Helper(_any("sbitmap_ __sbitmap_"), BLOCK, why="tag allocation"),
    Helper(
        _any(
            """
            mod_timer __mod_timer add_timer timer_delete del_timer lock_timer_base
            hrtimer_start hrtimer_cancel __hrtimer_start hrtimer_try_to_cancel
            queue_work_on __queue_work mod_delayed_work_on __queue_delayed_work
            """
        ),
        OTHER,
    ),
)

# Entering an interrupt or softirq (everything the chain reaches below it is interrupt
# time), and returning to user mode (which ends it: a preemption there is the scheduler's).
_IRQ_ENTRY = re.compile(
    _any(
        """
        asm_common_interrupt asm_sysvec_ common_interrupt sysvec_ __sysvec_
        handle_softirqs __do_softirq do_softirq __irq_exit_rcu irq_exit_rcu irq_exit
        asm_spurious_interrupt
        """
    )
)  # fmt: skip
_IRQ_LEAVE = re.compile(_any("irqentry_exit exit_to_user_mode __exit_to_user_mode"))

# The harness's own samples: the perf enable/disable ioctl that brackets the timed loop
# (before the loop's first clock read, after its last). Not part of any read.
_HARNESS = re.compile(_any("perf_ioctl _perf_ioctl __x64_sys_ioctl"))

_SUFFIX = re.compile(r"\.(?:isra|constprop|part|cold|llvm|lto_priv)(?:\.\d+)*$")
_ORDERED = [BY_NAME[n] for n in RULE_ORDER]


@functools.lru_cache(maxsize=65536)
def normalize(function: str) -> str:
    """The function a symbol stands for: GCC clone suffixes (.isra.0, .constprop.0, .part.0,
    .cold) dropped, `__pfx_X` (the padding before X, where call-depth tracking puts its call
    thunk) read as X, blanks as underscores (the atlas's "rep movsb (inlined)")."""
    name = _SUFFIX.sub("", "_".join(function.split()))  # "rep movsb (inlined)": one token
    while _SUFFIX.search(name):
        name = _SUFFIX.sub("", name)
    return name[6:] if name.startswith("__pfx_") else name


@functools.lru_cache(maxsize=65536)
def helper_of(function: str) -> Helper | None:
    n = normalize(function)
    return next((h for h in HELPERS if h.pattern.match(n)), None)


@functools.lru_cache(maxsize=65536)
def owner(function: str) -> str | None:
    """The layer whose rule owns `function` by name; None for helpers and unknown names."""
    if helper_of(function) is not None:
        return None
    n = normalize(function)
    for layer in _ORDERED:
        p = layer.pattern
        if p is not None and p.match(n):
            return layer.name
    return None


def function_layer(function: str) -> str:
    """The layer of one function on its own (no call chain): its owner, a helper's fallback,
    else "other". The atlas's layer column."""
    own = owner(function)
    if own is not None:
        return own
    h = helper_of(function)
    return h.fallback if h is not None else OTHER


def tracepoint_layer(group: str, name: str) -> str:
    """The layer of a read-side tracepoint (group/name as in tracefs)."""
    key = f"{group}/{name}"
    for lname in (IRQ, MAPPING, FILL, LOOKUP, BLOCK, FS, SYSCALL):
        if re.match(BY_NAME[lname].tracepoints, key):
            return lname
    return SYSCALL if group in ("syscalls", "raw_syscalls") else OTHER


def is_harness(frames: Sequence[str]) -> bool:
    """A sample of the perf enable/disable ioctl around the timed loop (frames: any order)."""
    return any(_HARNESS.match(f) for f in frames)


def classify(frames: Sequence[str]) -> tuple[str, str]:
    """(layer, how) of one sample; `frames` innermost first (frames[0] is the sampled
    function; one frame when there is no call chain). `how` says what decided it: "name"
    (the sampled function's own rule), "caller" (the innermost owned frame above a helper or
    an unknown function), "interrupt" (inside an interrupt), "fallback" (a helper's fallback:
    no owned frame), "none" (nothing: "other")."""
    if not frames:
        return OTHER, "none"
    in_irq = False
    for f in reversed(frames):  # from the outermost frame in
        n = normalize(f)
        if _IRQ_ENTRY.match(n):
            in_irq = True
        elif in_irq and _IRQ_LEAVE.match(n):
            in_irq = False
    if in_irq:
        return IRQ, "interrupt"
    leaf_helper = helper_of(frames[0])
    for i, f in enumerate(frames):
        own = owner(f)
        if own is None:
            continue
        if i == 0:
            return own, "name"
        if leaf_helper is not None:
            own = dict(leaf_helper.by_caller).get(own, own)
        return own, "caller"
    if leaf_helper is not None and leaf_helper.fallback != OTHER:
        return leaf_helper.fallback, "fallback"
    return OTHER, "none"


def order(names: Sequence[str]) -> list[str]:
    """`names` sorted by layer order (unknown names last, in their given order)."""
    rank = {n: i for i, n in enumerate(NAMES)}
    return sorted(names, key=lambda n: rank.get(n, len(rank)))
