"""Turn kernel/user instruction-pointer samples into "share of read() time in the copy".

Input is a list of samples (ip, kernel?, symbol) from any source: the in-process
sampler (perf_events.Sampler, symbolized here with /proc/kallsyms) or `perf script`
text (parse_perf_script). The routine model (copyroutine.predict) says whether the copy
is a function (attribute by symbol) or an inlined `rep movsb` (attribute by the
instruction address inside its caller, confirmed from kernel text where readable).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from readbench.kernel.copyroutine import INLINE_CALLERS, REP_MOVSB
from readbench.kernel.ksyms import USER, Symbolized
from readbench.kernel.text import KernelText

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
