"""Which kernel functions read one open file: its `f_op->read_iter` (and `read`,
`splice_read`, `mmap`) and its filesystem's name, read from the kernel's own `struct file`
by bpf/fileops.bpf.c and symbolized through /proc/kallsyms.

The atlas hooks the filesystem's real read function (ext4_file_read_iter on ext4,
v9fs_file_read_iter on 9p, shmem_file_read_iter on tmpfs, nfs_file_read on NFS,
anon_pipe_read on a 6.15+ pipe): a name built from the filesystem type would be a guess,
and wrong for most of them.
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path
from typing import Any

from readbench.bpf import binding, build
from readbench.bpf.refusals import refusal
from readbench.errors import MissingCapability
from readbench.kernel.ksyms import Kallsyms
from readbench.model.hookspec import SYSCALL_NR

_CFG = "=Iiq"  # struct cfg in fileops.bpf.c
_OUT = "=QQQQQ32s"  # struct out in fileops.bpf.c
_FIELDS = ("read_iter", "read", "splice_read", "mmap")


def file_operations(path: str | os.PathLike[str] | None) -> dict[str, Any]:
    """{read_iter, read, splice_read, mmap: symbol | None, fs_type, how} of a file opened
    read-only at `path`, or of a pipe's read end when `path` is None. MissingCapability with
    the kernel's reason when the program cannot be loaded or attached."""
    if os.geteuid() != 0:
        raise MissingCapability("reading a file's f_op with BPF needs root")
    fds: list[int] = []
    if path is None:
        r, w = os.pipe()
        fds += [r, w]
        fd, nr = r, SYSCALL_NR["read"]
    else:
        fd = os.open(path, os.O_RDONLY)
        fds.append(fd)
        nr = SYSCALL_NR["pread64"]
    obj = binding.Object(build.object_path("fileops"))
    link = None
    bss = None
    try:
        ro = obj.rodata()
        cfg = struct.pack(_CFG, os.getpid(), fd, nr)
        ro[: len(cfg)] = cfg
        try:
            obj.load()
            prog = obj.program("fileops_sys_enter")
            link = prog.attach_raw_tracepoint("sys_enter")
        except binding.LibbpfError as e:
            raise MissingCapability(f"reading f_op: {refusal('rawtp', e)}") from e
        bss = mmap.mmap(obj.map(".bss").fd, mmap.PAGESIZE, mmap.MAP_SHARED, mmap.PROT_READ)
        # A zero-length read enters the syscall (the tracepoint fires) and moves no data.
        if path is None:
            os.read(fd, 0)
        else:
            os.pread(fd, 0, 0)
        hits, *ptrs, fstype = struct.unpack_from(_OUT, bss, 0)
    finally:
        if link is not None:
            link.destroy()
        if bss is not None:
            bss.close()
        obj.close()
        for f in fds:
            os.close(f)
    if hits == 0:
        raise MissingCapability(
            "reading f_op: the raw sys_enter program attached but never saw this process's "
            f"{'read' if path is None else 'pread64'} of fd {fd}"
        )
    ks = Kallsyms.load()
    syms: dict[str, Any] = {}
    for name, ptr in zip(_FIELDS, ptrs, strict=True):
        syms[name] = _symbol(ks, ptr)
    return {
        **syms,
        "fs_type": fstype.split(b"\0", 1)[0].decode(errors="replace"),
        "file": "pipe" if path is None else str(Path(path)),
        "how": "read from the open file's struct file (f_op) by a BPF program on raw "
        "sys_enter, symbolized through /proc/kallsyms",
    }


def _symbol(ks: Kallsyms, ptr: int) -> str | None:
    """The function at `ptr` exactly (a function pointer points at its entry), else None."""
    if not ptr:
        return None
    name = ks.lookup(ptr)
    return name if ks.by_name.get(name) == ptr else f"{name}+{ptr - ks.by_name.get(name, ptr):#x}"
