"""Anatomy of a read(): where its time goes, layer by layer, from the perf pass's samples.

Samples (on-CPU time) are grouped into the layers of the read path by the function they
landed in; the copy layer takes exactly the samples attributed to the copy routine (by
symbol, or on the inlined `rep movsb`) plus the iov_iter stepping around it. Shares of
on-CPU samples become ns per read with the task-clock per read; what the wall clock saw
beyond task-clock is time off the CPU, which for a read means waiting for the device
("block and device wait"). The null-syscall floor, measured in the same pass, is the entry
and exit cost any syscall pays, shown beside the sampled entry/exit layer.
"""

from __future__ import annotations

import re
from typing import Any

LAYERS = (
    "user side",
    "syscall entry and exit",
    "fd lookup and VFS",
    "filesystem read_iter",
    "page-cache lookup",
    "copy to user",
    "pipe",
    "block and device wait",
    "other",
)

_RULES = [
    ("user side", r"^\[user\]$"),
    (
        "syscall entry and exit",
        r"^(entry_SYSCALL|do_syscall|syscall_|x64_sys_call|__x64_sys_|__do_sys_|__se_sys|"
        r"exit_to_user|syscall_exit|entry_|srso_|__pfx_|fpregs_|switch_fpu|arch_exit|"
        r"amd_clear|clear_bhb|x86_return_thunk|__x86_return_thunk|retbleed|__x86_indirect|"
        r"__rseq|rseq_|irqentry_|__audit|audit_)",
    ),
    (
        "fd lookup and VFS",
        r"^(ksys_|vfs_read|rw_verify_area|security_|selinux_|apparmor_|bpf_lsm|fsnotify|"
        r"__fsnotify|fdget|__fget|fput|__fdget|touch_atime|atime_|file_|current_time|"
        r"inode_needs|__f_unlock_pos|mutex_lock|mutex_unlock)",
    ),
    ("filesystem read_iter", r"^(ext4_|xfs_|btrfs_|f2fs_|generic_file_read_iter|shmem_file_)"),
    (
        "page-cache lookup",
        r"^(filemap_|folio_|__filemap|page_cache|mark_page_accessed|xas_|xa_|find_get_|"
        r"__folio|readahead|ra_|page_ref|__page_cache)",
    ),
    (
        "copy to user",
        r"^(copy_page_to_iter|_copy_to_iter|copy_folio_to_iter|iov_iter|copyout|"
        r"_copy_to_user|rep_movs_alternative|copy_user_)",
    ),
    ("pipe", r"^(anon_pipe_read|fifo_pipe_read|pipe_|__wake_up|wake_up)"),
    (
        "block and device wait",
        r"^(iomap_|__iomap|blk_|submit_bio|bio_|nvme_|virtblk|virtio_|scsi_|dio_|io_schedule|"
        r"mpage_|__blk|blkdev_)",
    ),
]
_COMPILED = [(layer, re.compile(rx)) for layer, rx in _RULES]


# A pipe reader that finds the pipe empty sleeps until the writer refills it: the scheduler
# and wakeup work it does there is the pipe's cost, not "other".
_PIPE_WAIT = re.compile(
    r"^(__schedule|schedule|try_to_wake_up|ttwu|autoremove_wake|"
    r"prepare_to_wait|finish_wait|enqueue_|dequeue_|update_curr|psi_)"
)


def layer_of(function: str, workload: str = "") -> str:
    for layer, rx in _COMPILED:
        if rx.match(function):
            return layer
    if workload == "pipe" and _PIPE_WAIT.match(function):
        return "pipe"
    return "other"


def layers(perf: dict[str, Any]) -> dict[str, Any] | None:
    """Layer shares and ns per read of one perf side object (`readbench one --perf`'s
    `perf`); None without samples."""
    funcs = perf.get("functions") or []
    total = sum(int(f.get("samples") or 0) for f in funcs)
    counting = perf.get("counting") or {}
    ops = int(counting.get("ops") or 0)
    if not total or not ops:
        return None
    samples = dict.fromkeys(LAYERS, 0.0)
    for f in funcs:
        samples[layer_of(str(f["name"]), str(perf.get("workload", "")))] += int(
            f.get("samples") or 0
        )
    # The inlined rep movsb sits inside a function of another layer on FSRM kernels
    # (_copy_to_iter is already "copy to user"; copy_page_to_iter too): nothing to move.
    # Where the copy routine is a symbol it is matched by name above.
    wall = counting["loop_ns"] / ops
    clock = next((c for c in perf.get("counters") or [] if c.get("name") == "task-clock"), None)
    cpu = float(clock["per_op"]) if clock and clock.get("per_op") else wall
    cpu = min(cpu, wall)
    shares = {k: v / total for k, v in samples.items()}
    ns = {k: shares[k] * cpu for k in LAYERS}
    ns["block and device wait"] += wall - cpu  # off-CPU: waiting for the device
    return {
        "ns_per_read": wall,
        "cpu_ns_per_read": cpu,
        "samples": total,
        "layers": [
            {"layer": k, "ns": ns[k], "share": ns[k] / wall if wall else None} for k in LAYERS
        ],
        "null_syscall_ns": perf.get("null_syscall_ns"),
        "copy_fraction": perf.get("copy_fraction"),
    }
