#!/usr/bin/env python3
"""Extract the read-path functions of one kernel into a test fixture
(tests/fixtures/symbols/<release>.txt), for the taxonomy's tests (tests/unit/test_layers.py).

A fixture is not a symbol table: it keeps the text symbols whose names belong to the
families below (the read path's subsystems: syscall entry, VFS, pipe, ext4, iomap, page
cache, copy, block, virtio/nvme drivers, interrupts, locks, scheduler, memory management),
from the kernel image and from the modules those subsystems are built as.

    # a running kernel (the host):
    scripts/read_path_symbols.py --kallsyms /proc/kallsyms --source "this host" \\
        --release "$(uname -r)" --out tests/fixtures/symbols/
    # a Debian kernel package: downloads linux-image-REL and linux-image-REL-dbg (the real
    # System.map is in -dbg; the image's /boot/System.map is a stub) into a temp dir
    scripts/read_path_symbols.py --debian 6.1.0-57-amd64 --out tests/fixtures/symbols/
    # files already at hand:
    scripts/read_path_symbols.py --system-map System.map-REL --module ext4.ko ... \\
        --source "..." --release REL --out tests/fixtures/symbols/

Needs nm (binutils) for modules, xz for .ko.xz, dpkg-deb and apt-get for --debian.
"""

from __future__ import annotations

import argparse
import lzma
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

# Name prefixes of the read path's functions, by subsystem (what a read can run through).
FAMILIES = {
    "syscall": "entry_SYSCALL do_syscall_ x64_sys_call __x64_sys_read __x64_sys_pread64 "
    "__x64_sys_readv __x64_sys_preadv __x64_sys_preadv2 __x64_sys_ioctl syscall_exit "
    "syscall_enter "
    "exit_to_user_mode __rseq_handle_notify_resume irqentry_exit_to_user_mode",
    "vfs": "ksys_read ksys_pread64 vfs_read vfs_iter_read rw_verify_area "
    "security_file_permission fsnotify __fsnotify fdget __fdget __fget_light fput "
    "touch_atime atime_needs_update current_time new_sync_read",
    "pipe": "pipe_ anon_pipe_ fifo_pipe_",
    "io_uring": "io_submit_sqes io_issue_sqe io_read __io_read io_read_fixed "
    "__x64_sys_io_uring_enter",
    "splice": "do_splice vfs_splice_read splice_file_to_pipe filemap_splice_read __x64_sys_splice",
    "page fault": "asm_exc_page_fault exc_page_fault do_user_addr_fault handle_mm_fault "
    "__handle_mm_fault do_read_fault __do_fault filemap_fault filemap_map_pages",
    "ext4": "ext4_file_read_iter ext4_dio_read_iter ext4_map_blocks ext4_ext_map_blocks "
    "ext4_es_lookup_extent ext4_iomap_begin ext4_iomap_end ext4_mpage_readpages "
    "ext4_readahead ext4_read_folio ext4_readpage __check_block_validity",
    "iomap": "iomap_ __iomap_",
    "page cache": "filemap_ __filemap_ page_cache_ force_page_cache_ra ondemand_readahead "
    "read_pages folio_mark_accessed folio_wait_",
    "copy": "copy_page_to_iter _copy_to_iter copy_folio_to_iter copy_user_ rep_movs "
    "__check_object_size iov_iter_",
    "block": "submit_bio __submit_bio blk_mq_ blk_finish_plug __blk_flush_plug blk_start_plug "
    "bio_alloc bio_add_ bio_endio blk_update_request dd_",
    "driver": "virtio_queue_rq virtblk_ virtqueue_ vring_ vp_notify vp_interrupt "
    "nvme_queue_rq nvme_irq nvme_pci_complete",
    "interrupt": "asm_common_interrupt asm_sysvec_apic_timer_interrupt common_interrupt "
    "handle_softirqs __do_softirq __irq_exit_rcu",
    "locks": "mutex_lock mutex_unlock __mutex_lock mutex_spin_on_owner _raw_spin_ "
    "queued_spin_lock_slowpath native_queued_spin_lock_slowpath "
    "__pv_queued_spin_lock_slowpath osq_lock",
    "sched": "__schedule schedule io_schedule finish_task_switch try_to_wake_up __wake_up "
    "autoremove_wake_function prepare_to_wait",
    "mm": "__folio_put free_unref_ __mem_cgroup_ mem_cgroup_ memcg page_counter_ uncharge_ "
    "__free_frozen_pages free_frozen_pages folio_alloc filemap_alloc_folio __alloc_pages "
    "get_page_from_freelist",
}
# Modules these subsystems are built as (Debian builds ext4 and virtio_blk as modules).
MODULES = ("ext4", "jbd2", "mbcache", "virtio_blk", "virtio_ring", "virtio", "virtio_pci",
           "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "nvme", "nvme-core", "sd_mod",
           "scsi_mod")  # fmt: skip

_PREFIX = re.compile("^(?:" + "|".join(re.escape(p) for v in FAMILIES.values()
                                       for p in v.split()) + ")")  # fmt: skip


def map_names(path: Path) -> set[str]:
    """Text symbols of a System.map or a kallsyms file (a module column is ignored)."""
    out = set()
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] in ("t", "T"):
            out.add(parts[2])
    return out


def module_names(path: Path) -> set[str]:
    """Text symbols of one module (.ko or .ko.xz), with nm."""
    data = path.read_bytes()
    if path.suffix == ".xz":
        data = lzma.decompress(data)
    with tempfile.NamedTemporaryFile(suffix=".ko") as tmp:
        tmp.write(data)
        tmp.flush()
        nm = subprocess.run(["nm", "--defined-only", tmp.name], capture_output=True, text=True,
                            check=True)  # fmt: skip
    return {p[2] for p in (ln.split() for ln in nm.stdout.splitlines())
            if len(p) == 3 and p[1] in ("t", "T")}  # fmt: skip


def select(names: Iterable[str]) -> list[str]:
    return sorted(n for n in set(names) if _PREFIX.match(n))


def write(out_dir: Path, release: str, source: str, names: list[str]) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    dest = out_dir / f"{release}.txt"
    head = [
        f"# The read-path functions of Linux {release} (text symbols; {len(names)} of them).",
        f"# Source: {source}.",
        "# Generated by scripts/read_path_symbols.py (its FAMILIES say which names are kept);",
        "# regenerate rather than edit.",
    ]
    dest.write_text("\n".join(head + names) + "\n")
    return dest


def debian(release: str, out_dir: Path) -> Path:
    """Download linux-image-RELEASE and its -dbg package, and extract from them."""
    with tempfile.TemporaryDirectory(prefix="read-path-symbols-") as tmp:
        t = Path(tmp)
        for pkg in (f"linux-image-{release}", f"linux-image-{release}-dbg"):
            subprocess.run(["apt-get", "download", pkg], cwd=t, check=True)
        debs = {p.name.split("_")[0]: p for p in t.glob("*.deb")}
        img, dbg = debs[f"linux-image-{release}"], debs[f"linux-image-{release}-dbg"]
        version = subprocess.run(["dpkg-deb", "-f", str(img), "Version"], capture_output=True,
                                 text=True, check=True).stdout.strip()  # fmt: skip
        for deb, members in ((dbg, [f"./usr/lib/debug/boot/System.map-{release}"]),
                             (img, ["./lib/modules/*"])):  # fmt: skip
            fs = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
            subprocess.run(["tar", "-x", "-C", tmp, "--wildcards", *members], stdin=fs.stdout,
                           check=True)  # fmt: skip
            fs.wait()
        names = map_names(t / f"usr/lib/debug/boot/System.map-{release}")
        mods = [p for p in (t / "lib/modules").rglob("*.ko*")
                if p.name.split(".ko")[0] in MODULES]  # fmt: skip
        for m in mods:
            names |= module_names(m)
        source = (
            f"Debian packages linux-image-{release}-dbg {version} (System.map) and "
            f"linux-image-{release} {version} (modules: "
            f"{', '.join(sorted(m.name.split('.ko')[0] for m in mods))})"
        )
        return write(out_dir, release, source, select(names))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--debian", metavar="RELEASE", help="e.g. 6.1.0-57-amd64")
    p.add_argument("--kallsyms", type=Path)
    p.add_argument("--system-map", type=Path)
    p.add_argument("--module", type=Path, action="append", default=[])
    p.add_argument("--release")
    p.add_argument("--source", help="where the symbols came from (written in the header)")
    p.add_argument("--out", type=Path, required=True, help="fixture directory")
    a = p.parse_args(argv)
    if a.debian:
        print(debian(a.debian, a.out))
        return 0
    src = a.kallsyms or a.system_map
    if src is None or not a.release or not a.source:
        p.error("give --debian RELEASE, or --kallsyms/--system-map with --release and --source")
    names = map_names(src)
    for m in a.module:
        names |= module_names(m)
    print(write(a.out, a.release, a.source, select(names)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
