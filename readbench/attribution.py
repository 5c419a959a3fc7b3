"""Turn kernel/user instruction-pointer samples into "share of read() time in the copy".

Input is a list of samples (ip, kernel?, symbol) from any source: the in-process
sampler (perf_events.Sampler, symbolized here with /proc/kallsyms) or `perf script`
text (parse_perf_script). The routine model (copyroutine.predict) says whether the copy
is a function (attribute by symbol) or an inlined `rep movsb` (attribute by the
instruction address inside its caller, confirmed from kernel text where readable).
"""

from __future__ import annotations

import bisect
import os
import re
import struct
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from readbench.copyroutine import INLINE_CALLERS, REP_MOVSB, read_kallsyms, running_kallsyms

USER = "[user]"
UNKNOWN = "[unknown]"

METHOD_LIMITS = {
    "symbol": (
        "samples attributed by /proc/kallsyms symbol of the sampled IP; without precise "
        "sampling a few samples skid to the instruction after the copy (the return path in "
        "the caller), so the copy share is a slight underestimate"
    ),
    "dominant-address": (
        "kernel text not readable (no /proc/kcore, no matching vmlinux): the most-sampled "
        "address inside the caller is taken to be the inlined rep movsb (an interrupted rep "
        "string instruction reports its own address); the bytes were not checked"
    ),
    "kcore-confirmed": (
        "the most-sampled address inside the caller holds f3 a4 (rep movsb) in /proc/kcore, "
        "the running (patched) kernel text"
    ),
    "vmlinux-confirmed": (
        "bytes read from an on-disk vmlinux relocated by the kallsyms _text offset; vmlinux "
        "shows unpatched ALTERNATIVEs (rep movsb is the 6.4+ default), so this confirms the "
        "FSRM case only"
    ),
}

_GROUPS = [
    ("user space (loop, libc wrapper)", re.compile(r"^\[user\]$")),
    (
        "syscall entry/exit",
        re.compile(
            r"^(entry_SYSCALL|do_syscall|syscall_|x64_sys_call|__x64_sys_|__do_sys_|"
            r"ksys_|__se_sys|exit_to_user|syscall_exit|entry_|srso_|__pfx_|"
            r"fpregs_|switch_fpu|arch_exit|amd_clear|clear_bhb|x86_return_thunk|"
            r"__x86_return_thunk|retbleed|__x86_indirect)"
        ),
    ),
    (
        "vfs",
        re.compile(
            r"^(vfs_read|rw_verify_area|security_file|fsnotify|__fsnotify|fdget|"
            r"__fget|fput|__fdget|touch_atime|atime_|file_)"
        ),
    ),
    (
        "filemap / page cache",
        re.compile(
            r"^(filemap_|folio_|generic_file_read_iter|"
            r"ext4_file_read_iter|xfs_file|page_cache|"
            r"__filemap|mark_page_accessed|xas_|xa_)"
        ),
    ),
    ("pipe", re.compile(r"^(anon_pipe_read|fifo_pipe_read|pipe_|__wake_up|wake_up)")),
    (
        "page free / memcg",
        re.compile(
            r"^(__free|free_|uncharge_|page_counter|__folio_put|folio_put|mem_cgroup|"
            r"__mem_cgroup|memcg|__memcg|refill_stock|drain_stock|put_page)"
        ),
    ),
    (
        "scheduler / wakeups",
        re.compile(
            r"^(try_to_wake_up|__schedule|schedule|autoremove_wake|__wake_up|"
            r"wake_up|ttwu|enqueue_|dequeue_|update_curr|psi_)"
        ),
    ),
    (
        "iov_iter",
        re.compile(
            r"^(copy_page_to_iter|_copy_to_iter|copy_folio_to_iter|iov_iter|"
            r"copyout|_copy_to_user)"
        ),
    ),
]


@dataclass(frozen=True)
class Symbolized:
    ip: int
    kernel: bool
    sym: str


class Kallsyms:
    """Address -> function for kernel text, from /proc/kallsyms (sorted, bisect)."""

    def __init__(self, entries: Iterable[tuple[int, str, str]]) -> None:
        text = sorted((a, n) for a, t, n in entries if t in "tTwW" and a)
        self.addrs = [a for a, _ in text]
        self.names = [n for _, n in text]
        self.by_name = {n: a for a, n in text}

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> Kallsyms:
        """From a kallsyms file, or (None) the running kernel's, parsed once per process."""
        return cls(running_kallsyms() if path is None else read_kallsyms(path))

    def lookup(self, ip: int) -> str:
        i = bisect.bisect_right(self.addrs, ip) - 1
        return self.names[i] if i >= 0 else UNKNOWN

    def symbolize(self, ip: int, kernel: bool) -> Symbolized:
        return Symbolized(ip, kernel, self.lookup(ip) if kernel else USER)


_SCRIPT_RE = re.compile(r"^\s*([0-9a-fA-F]+)\s+(\S+?)(?:\+0x[0-9a-fA-F]+)?\s+\((.*)\)\s*$")


def parse_perf_script(text: str) -> list[Symbolized]:
    """Samples from `perf script -F ip,sym,dso` (one `IP SYM (DSO)` line each, no -g)."""
    out = []
    for line in text.splitlines():
        m = _SCRIPT_RE.match(line)
        if not m:
            continue
        ip = int(m.group(1), 16)
        dso = m.group(3)
        kernel = "kernel.kallsyms" in dso or "[kernel" in dso or ip >= 0xFFFF800000000000
        out.append(Symbolized(ip, kernel, m.group(2) if kernel else USER))
    return out


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


def attribute(
    samples: list[Symbolized],
    routine: dict[str, Any],
    text: KernelText | None = None,
    text_reason: str = "",
    min_share: float = 0.002,
) -> dict[str, Any]:
    """Copy share and per-function split of one cell's samples.

    routine: copyroutine.predict() output. Denominator: every sample taken inside the
    timed loop (user + kernel), i.e. the whole read() operation as the loop sees it.
    """
    total = len(samples)
    kernel = sum(1 for s in samples if s.kernel)
    by_sym = Counter(s.sym for s in samples)
    out: dict[str, Any] = {
        "samples": {"total": total, "kernel": kernel, "user": total - kernel},
        "routine": routine.get("name"),
    }
    copy_syms = sorted({r["symbol"] for r in routine.get("by_size", []) if r.get("symbol")})
    if routine.get("inline"):
        copy = _inline(samples, text, text_reason)
        out.update(copy)
    else:
        n = sum(by_sym[s] for s in copy_syms)
        out.update(
            copy_samples=n,
            copy_symbol=copy_syms[0] if len(copy_syms) == 1 else ",".join(copy_syms),
            copy_address=None,
            method="symbol",
            confirmed=None,
        )
    out["method_limits"] = METHOD_LIMITS[out["method"]]
    if out["method"] == "dominant-address" and text_reason:
        out["method_limits"] += f" ({text_reason})"
    n = out["copy_samples"]
    out["copy_fraction"] = n / total if total else None
    out["copy_fraction_of_kernel"] = n / kernel if kernel else None
    funcs = []
    other = 0
    for name, c in by_sym.most_common():
        if total and c / total >= min_share:
            funcs.append({"name": name, "samples": c, "share": c / total})
        else:
            other += c
    if other:
        funcs.append({"name": "(other)", "samples": other, "share": other / total})
    out["functions"] = funcs
    groups: Counter[str] = Counter()
    for name, c in by_sym.items():
        groups[_group(name, copy_syms)] += c
    out["groups"] = [{"name": g, "samples": c, "share": c / total} for g, c in groups.most_common()]
    return out


def _group(name: str, copy_syms: list[str]) -> str:
    if name in copy_syms:
        return "copy routine"
    for g, rx in _GROUPS:
        if rx.match(name):
            return g
    return "other kernel"


def _inline(samples: list[Symbolized], text: KernelText | None, reason: str) -> dict[str, Any]:
    inside = Counter(s.ip for s in samples if s.kernel and s.sym in INLINE_CALLERS)
    if not inside:
        return {
            "copy_samples": 0,
            "copy_symbol": None,
            "copy_address": None,
            "method": "dominant-address",
            "confirmed": False,
            "note": "no samples inside " + "/".join(INLINE_CALLERS),
        }
    addr, _ = inside.most_common(1)[0]
    caller = next(s.sym for s in samples if s.ip == addr)
    method, confirmed, note = "dominant-address", None, ""
    if text is not None:
        here = text.read(addr, 2)
        before = text.read(addr - 2, 2)
        method = f"{text.source}-confirmed"
        if here == REP_MOVSB:
            confirmed = True
        elif before == REP_MOVSB:
            # Skid: the sample landed on the instruction after rep movsb.
            confirmed, addr = True, addr - 2
            note = "dominant address is the instruction after rep movsb (skid); moved back"
        else:
            confirmed = False
            method = "dominant-address"
            note = f"bytes at the dominant address are {here.hex() if here else None}, not f3a4"
    # rep movsb reports its own address; skid puts a few on the next instruction (+2).
    n = inside[addr] + (inside[addr + 2] if confirmed else 0)
    return {
        "copy_samples": n,
        "copy_symbol": caller,
        "copy_address": hex(addr),
        "method": method,
        "confirmed": confirmed,
        "note": note,
    }
