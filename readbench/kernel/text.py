"""The running kernel's text bytes, where readable: /proc/kcore (patched text) or a vmlinux
for this release relocated by kallsyms' _text. Neither exists on some VMs; callers say so."""

from __future__ import annotations

import os
import struct
from pathlib import Path

from readbench.kernel.ksyms import Kallsyms


class KernelText:
    """Bytes of the running kernel's text, from /proc/kcore (ELF core) or a vmlinux."""

    def __init__(self, path: str, source: str, slide: int = 0) -> None:
        self.path, self.source, self.slide = path, source, slide
        self.segments: list[tuple[int, int, int]] = []  # vaddr, offset, filesz
        with open(path, "rb") as f:
            ident = f.read(64)
            if ident[:4] != b"\x7fELF" or ident[4] != 2:
                raise ValueError(f"{path}: not an ELF64 file")
            (phoff,) = struct.unpack_from("<Q", ident, 32)
            phentsize, phnum = struct.unpack_from("<HH", ident, 54)
            f.seek(phoff)
            ph = f.read(phentsize * phnum)
        for i in range(phnum):
            p_type, _flags, off, vaddr, _paddr, filesz = struct.unpack_from(
                "<IIQQQQ", ph, i * phentsize
            )
            if p_type == 1 and filesz:  # PT_LOAD
                self.segments.append((vaddr + slide, off, filesz))

    def read(self, addr: int, n: int) -> bytes | None:
        for vaddr, off, size in self.segments:
            if vaddr <= addr and addr + n <= vaddr + size:
                with open(self.path, "rb") as f:
                    f.seek(off + addr - vaddr)
                    return f.read(n)
        return None


def open_kernel_text(kallsyms: Kallsyms | None = None) -> tuple[KernelText | None, str]:
    """/proc/kcore first (patched text), else a vmlinux for this release; reason if none."""
    reasons = []
    try:
        return KernelText("/proc/kcore", "kcore"), ""
    except (OSError, ValueError) as e:
        reasons.append(f"/proc/kcore: {e.strerror if isinstance(e, OSError) else e}")
    rel = os.uname().release
    for cand in (
        f"/usr/lib/debug/boot/vmlinux-{rel}",
        f"/usr/lib/debug/lib/modules/{rel}/vmlinux",
        f"/boot/vmlinux-{rel}",
        f"/lib/modules/{rel}/build/vmlinux",
    ):
        if not Path(cand).exists():
            continue
        try:
            kt = KernelText(cand, "vmlinux")
        except (OSError, ValueError) as e:
            reasons.append(f"{cand}: {e}")
            continue
        text = kallsyms.by_name.get("_text") if kallsyms else None
        if text is None or not kt.segments:
            reasons.append(f"{cand}: no kallsyms _text to relocate it")
            continue
        slide = text - min(v for v, _, _ in kt.segments)
        return KernelText(cand, "vmlinux", slide), ""
    reasons.append(f"no vmlinux for {rel} in /usr/lib/debug, /boot or /lib/modules/*/build")
    return None, "; ".join(reasons)
