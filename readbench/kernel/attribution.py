"""Turn kernel/user instruction-pointer samples into "share of read() time in the copy".

Input is a list of samples (ip, kernel?, symbol) from any source: the in-process
sampler (perf_event_open.Sampler, symbolized here with /proc/kallsyms) or `perf script`
text (parse_perf_script). The routine model (copyroutine.predict) says whether the copy
is a function (attribute by symbol) or an inlined `rep movsb` (attribute by the
instruction address inside its caller, confirmed from kernel text where readable).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from readbench.kernel.copyroutine import INLINE_CALLERS, REP_MOVSB
from readbench.kernel.ksyms import Symbolized
from readbench.kernel.text import KernelText
from readbench.model import layers
from readbench.model.layers import USER_FRAME

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
        out.append(Symbolized(ip, kernel, m.group(2) if kernel else USER_FRAME))
    return out


def attribute(
    samples: list[Symbolized],
    routine: dict[str, Any],
    text: KernelText | None = None,
    text_reason: str = "",
    min_share: float = 0.002,
    stacks: list[tuple[str, ...]] | None = None,
) -> dict[str, Any]:
    """Copy share, per-function and per-layer split of one cell's samples.

    routine: copyroutine.predict() output. Denominator: every sample taken inside the
    timed loop (user + kernel), i.e. the whole read() operation as the loop sees it.
    stacks: each sample's symbolized call chain, innermost first (the in-process sampler
    records them); the layers (model.layers) are then assigned by call chain, else by the
    sampled function alone.
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
    if stacks is not None:
        for st in stacks:
            groups[layers.classify(st)[0]] += 1
    else:
        for name, c in by_sym.items():
            groups[layers.classify((name,))[0]] += c
    out["groups"] = [{"name": g, "samples": c, "share": c / total} for g, c in groups.most_common()]
    return out


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
