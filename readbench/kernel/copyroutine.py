"""Which kernel routine copies read() data to user space, for a kernel release and CPU flags.

The model follows ../shared/docs/kernel-copy-paths.md §1–§3 (x86-64 only). `predict()` is
pure (release string, flag set, optional kallsyms names) so it can be tested against a
table of every era; the helpers below read the running machine's inputs.
"""

from __future__ import annotations

import platform
import re
from dataclasses import dataclass
from typing import Any

from readbench.kernel import cpu, ksyms
from readbench.kernel.text import open_kernel_text
from readbench.model.hookspec import PRE64_ROUTINES

# Flags that steer the copy routine's choice (fzrm/fsrs/fsrc are recorded, not used).
PREDICT_FLAGS = ("erms", "fsrm", "rep_good")

# Functions an inlined `rep movsb` (6.4+ with FSRM) can sit in (§3): the iov_iter step
# helpers are always-inline into _copy_to_iter since 6.7; 6.4–6.6 may keep copyout().
INLINE_CALLERS = ("_copy_to_iter", "copyout", "copy_page_to_iter", "_copy_to_user")


@dataclass(frozen=True, order=True)
class Release:
    major: int
    minor: int
    patch: int = 0
    rc: int | None = None  # -rcN of an unreleased major.minor

    @property
    def key(self) -> tuple[int, int, int, int]:
        # A release candidate sorts before the final release of the same major.minor.
        return (self.major, self.minor, self.patch, self.rc if self.rc is not None else 1 << 30)

    def __str__(self) -> str:
        s = f"{self.major}.{self.minor}.{self.patch}"
        return s + (f"-rc{self.rc}" if self.rc is not None else "")


_REL_RE = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?(?:[.-]?rc(\d+))?")


def parse_release(release: str) -> Release:
    """'6.18.44-fc-v595' -> 6.18.44; '6.4.0-rc2' and '6.4-rc2' -> 6.4.0-rc2."""
    m = _REL_RE.match(release.strip())
    if not m:
        raise ValueError(f"cannot parse kernel release {release!r} (want MAJOR.MINOR[.PATCH])")
    rc = re.search(r"-rc(\d+)", release)
    return Release(
        int(m.group(1)),
        int(m.group(2)),
        int(m.group(3) or 0),
        int(rc.group(1)) if rc else (int(m.group(4)) if m.group(4) else None),
    )


def _mm(r: Release) -> tuple[int, int]:
    return (r.major, r.minor)


def era_of(r: Release) -> str:
    """Era label of the copy-routine table (kernel-copy-paths.md §1)."""
    mm = _mm(r)
    if mm < (4, 13) and not (mm == (4, 9) and r.patch >= 37):
        return "<=2017"
    if mm < (5, 17):
        return "2017-5.16"
    if mm == (5, 17):
        return "5.17"
    if mm < (6, 4):
        return "5.18-6.3"
    if mm == (6, 4) and r.rc is not None and r.rc <= 3:
        return "6.4-rc1..3"
    if mm < (6, 6):
        return "6.4-6.5"
    if mm < (6, 15):
        return "6.6-6.14"
    return "6.15+"


def _rng(lo: int, hi: int | None, path: str, symbol: str | None, insn: str) -> dict[str, Any]:
    label = f">={lo}" if hi is None else (f"<{hi + 1}" if lo == 0 else f"{lo}..{hi}")
    return {"range": label, "min": lo, "max": hi, "path": path, "symbol": symbol, "insn": insn}


def _byte_loop(sym: str | None) -> dict[str, Any]:
    return _rng(0, 7, "byte loop", sym, "movb")


def _pre64(era: str, flags: set[str]) -> dict[str, Any]:
    erms, fsrm, rep_good = ("erms" in flags, "fsrm" in flags, "rep_good" in flags)
    short_sym = "copy_user_short_string" if era == "5.18-6.3" else "copy_user_generic_unrolled"
    if erms:
        sym = "copy_user_enhanced_fast_string"
        short_branch = era != "<=2017" and not (fsrm and era in ("5.17", "5.18-6.3"))
        if not short_branch and era == "<=2017":
            why = "ERMS, before the 2017 short-copy branch: one rep movsb for every length"
            by = [_rng(0, None, "rep movsb", sym, "rep movsb")]
        elif not short_branch:
            why = (
                "ERMS with FSRM (5.17+): the < 64 test is patched out, one rep movsb for "
                "every length [244122b4d2e5]"
            )
            by = [_rng(0, None, "rep movsb", sym, "rep movsb")]
        else:
            why = (
                "ERMS"
                + (" (FSRM is not consulted before 5.17)" if fsrm else " without FSRM")
                + ": len < 64 goes to the short-copy code (8-byte movq loop then bytes), "
                "len >= 64 one rep movsb [236222d39347]"
            )
            by = [
                _rng(0, 7, "byte loop (short-copy code)", short_sym, "movb"),
                _rng(8, 63, "8-byte movq loop + byte tail (short-copy code)", short_sym, "movq"),
                _rng(64, None, "rep movsb", sym, "rep movsb"),
            ]
        extra = [short_sym] if short_branch and short_sym != sym else []
        return {"name": sym, "symbol": sym, "why": why, "by_size": by, "extra_symbols": extra}
    if rep_good:
        sym = "copy_user_generic_string"
        return {
            "name": sym,
            "symbol": sym,
            "why": "REP_GOOD without ERMS: string routine (align destination, rep movsq, "
            "rep movsb tail)",
            "by_size": [
                _rng(0, 7, "rep movsb (short)", sym, "rep movsb"),
                _rng(8, None, "align destination, rep movsq, rep movsb tail", sym, "rep movsq"),
            ],
            "extra_symbols": [],
        }
    sym = "copy_user_generic_unrolled"
    if short_sym != sym:
        # 5.18-6.3: the unrolled routine ends every copy with a jump into the shared
        # short-copy code (its words, bytes, clac and ret): both symbols are the copy
        blocks = "align destination, 64-byte movq blocks, then the short-copy code's words, bytes"
        by = [
            _rng(0, 7, "byte loop (short-copy code)", short_sym, "movb"),
            _rng(
                8, 63, "align destination, short-copy code's movq loop + bytes", short_sym, "movq"
            ),
            _rng(64, None, blocks, sym, "movq"),
        ]
    else:
        by = [
            _byte_loop(sym),
            _rng(8, 63, "align destination, 8-byte movq loop + byte tail", sym, "movq"),
            _rng(
                64, None, "align destination, 64-byte movq blocks, 8-byte words, bytes", sym, "movq"
            ),
        ]
    return {
        "name": sym,
        "symbol": sym,
        "why": "neither ERMS nor REP_GOOD: unrolled routine",
        "by_size": by,
        "extra_symbols": [short_sym] if short_sym != sym else [],
    }


def _post64(era: str, flags: set[str]) -> dict[str, Any]:
    erms, fsrm = "erms" in flags, "fsrm" in flags
    if fsrm:
        return {
            "name": "inline rep movsb",
            "symbol": None,
            "why": "6.4+ with FSRM: copy_user_generic() keeps its inline rep movsb for every "
            "length (no call) [577e6a7fd50d]",
            "by_size": [_rng(0, None, "inline rep movsb", None, "rep movsb")],
            "extra_symbols": [],
        }
    sym = "rep_movs_alternative"
    by = [_byte_loop(sym), _rng(8, 63, "8-byte movq loop + byte tail", sym, "movq")]
    if era == "6.4-rc1..3":
        large = "64-byte unrolled movq loop, words, bytes (ERMS ignored)"
        insn = "movq"
        why = "6.4-rc1..rc3 without FSRM: rep_movs_alternative ignores ERMS [a5624566431d]"
    elif erms:
        large, insn = "rep movsb", "rep movsb"
        why = "6.4+ with ERMS but no FSRM: rep_movs_alternative, rep movsb from 64 B [47ee3f1dd93b]"
    elif era == "6.4-6.5":
        large, insn = "64-byte unrolled movq loop, words, bytes", "movq"
        why = "6.4-6.5 without ERMS/FSRM: rep_movs_alternative, unrolled loop from 64 B"
    elif era == "6.6-6.14":
        large, insn = "rep movsq + byte tail (no alignment)", "rep movsq"
        why = "6.6-6.14 without ERMS/FSRM: rep_movs_alternative, rep movsq from 64 B [ca96b162bfd2]"
    else:
        large = "unaligned first word, destination aligned to 8, rep movsq + byte tail"
        insn = "rep movsq"
        why = (
            "6.15+ without ERMS/FSRM: rep_movs_alternative, destination-aligned rep movsq "
            "from 64 B [b5322b6ec06a]"
        )
    by.append(_rng(64, None, large, sym, insn))
    return {"name": sym, "symbol": sym, "why": why, "by_size": by, "extra_symbols": []}


def predict(
    release: str,
    flags: set[str],
    kallsyms: set[str] | None,
    *,
    cpuid: set[str] | None = None,
) -> dict[str, Any]:
    """Copy-to-user routine for `release` on a CPU with `flags` (cpuinfo names).

    kallsyms: names from /proc/kallsyms (None = not checked). cpuid: the ERMS/FSRM bits
    user space sees through CPUID leaf 7 (None = not read); only reported, the kernel
    decides from its own flags.
    """
    rel = parse_release(release)
    era = era_of(rel)
    flags = {f.lower() for f in flags}
    out = _pre64(era, flags) if era in ("<=2017", "2017-5.16", "5.17", "5.18-6.3") else None
    if out is None:
        out = _post64(era, flags)
    inline = out["symbol"] is None
    result: dict[str, Any] = {
        "name": out["name"],
        "why": out["why"],
        "symbol": out["symbol"],
        "inline": inline,
        "inline_callers": list(INLINE_CALLERS) if inline else [],
        "by_size": out["by_size"],
        "era": era,
        "release": str(rel),
        "flags": sorted(f for f in flags if f in PREDICT_FLAGS),
        "notes": _notes(era, flags),
    }
    result["kallsyms_check"] = _check(result, out["extra_symbols"], era, kallsyms)
    result["cpuid"] = _cpuid_agreement(flags, cpuid)
    return result


def _notes(era: str, flags: set[str]) -> list[str]:
    notes: list[str] = []
    if (
        era in ("<=2017", "2017-5.16", "5.17", "5.18-6.3")
        and "fsrm" in flags
        and "erms" not in flags
    ):
        notes.append("FSRM without ERMS: dispatch before 6.4 keys on ERMS, so FSRM has no effect")
    if era == "<=2017":
        notes.append(
            "the <64 short-copy branch (236222d39347) is taken from 4.13 and 4.9.37+ here; its "
            "exact mainline tag is unverified"
        )
    if era.startswith("6.") and "rep_good" in flags:
        notes.append("since 6.4 REP_GOOD plays no part in user copies (only page copy/clear)")
    return notes


def _check(
    result: dict[str, Any], extra: list[str], era: str, kallsyms: set[str] | None
) -> dict[str, Any]:
    if kallsyms is None:
        return {"status": "unchecked", "reason": "no /proc/kallsyms names given"}
    expected: list[str] = []
    if result["symbol"]:
        expected.append(result["symbol"])
    if result["inline"]:
        # The copy has no symbol; its caller must exist (one of them suffices).
        callers = [c for c in INLINE_CALLERS if c in kallsyms]
        if not callers:
            return {
                "status": "inconsistent",
                "expected": list(INLINE_CALLERS),
                "missing": list(INLINE_CALLERS),
                "unexpected": [],
                "reason": "none of the functions that hold the inline rep movsb is in kallsyms",
            }
        expected.append(callers[0])
    missing = [s for s in expected if s not in kallsyms]
    # Symbols of the other era must be absent: they tell a wrong release/era apart.
    other = (
        ["rep_movs_alternative"]
        if era in ("<=2017", "2017-5.16", "5.17", "5.18-6.3")
        else list(PRE64_ROUTINES)
    )
    unexpected = [s for s in other if s in kallsyms]
    # copy_user_short_string is a local SYM_CODE symbol; its kallsyms presence is inferred.
    soft_missing = [s for s in extra if s not in kallsyms]
    status = "consistent" if not missing and not unexpected else "inconsistent"
    reason = "expected symbols present, other era's absent"
    if missing:
        reason = f"expected symbol(s) missing: {', '.join(missing)}"
    elif unexpected:
        reason = f"symbols of another era present: {', '.join(unexpected)}"
    if result["inline"] and status == "consistent":
        reason += (
            "; kallsyms cannot show an inline rep movsb (rep_movs_alternative exists either "
            "way), confirm with a perf sample on the instruction"
        )
    return {
        "status": status,
        "expected": expected,
        "missing": missing,
        "unexpected": unexpected,
        "optional_missing": soft_missing,
        "reason": reason,
    }


def _cpuid_agreement(flags: set[str], cpuid: set[str] | None) -> dict[str, Any]:
    if cpuid is None:
        return {"read": False, "agree": None, "detail": "CPUID not read"}
    diffs = []
    for bit in ("erms", "fsrm"):
        k, c = bit in flags, bit in cpuid
        if k != c:
            who = "CPUID only" if c else "kernel flags only"
            diffs.append(f"{bit}: {who}")
    return {
        "read": True,
        "cpuid": sorted(cpuid & {"erms", "fsrm"}),
        "agree": not diffs,
        "detail": "; ".join(diffs)
        if diffs
        else "kernel flags and CPUID leaf 7 agree on ERMS/FSRM"
        + (" (clearcpuid= or a masked guest CPU model can make them differ)"),
    }


# --- reading the running machine -------------------------------------------------------


REP_MOVSB = b"\xf3\xa4"
REP_MOVSQ = b"\xf3\x48\xa5"


def text_check(
    result: dict[str, Any],
    symbols: list[tuple[int, str, str]],
    read: Any,
    source: str,
) -> dict[str, Any]:
    """Look at the running kernel's code for the predicted copy instruction.

    read(addr, n) -> bytes | None reads kernel text; source "kcore" means the live,
    ALTERNATIVE-patched text. An on-disk vmlinux shows the unpatched defaults (inline
    rep movsb in 6.4+, `jmp` to the movsq path in rep_movs_alternative), so it proves
    nothing about which branch this CPU takes: reported as unchecked.
    """
    if source != "kcore":
        return {"status": "unchecked", "reason": f"{source}: unpatched ALTERNATIVEs"}
    text = sorted((a, n) for a, t, n in symbols if t in "tT" and a)
    addr = {n: a for a, n in text}

    def body(name: str) -> tuple[int, bytes] | None:
        a = addr.get(name)
        if a is None:
            return None
        nxt = min((b for b, _ in text if b > a), default=a + 256)
        data = read(a, min(nxt - a, 4096))
        return (a, data) if data else None

    if result["inline"]:
        seen = [(c, body(c)) for c in result["inline_callers"]]
        readable = [(c, b) for c, b in seen if b]
        if not readable:
            return {"status": "unreadable", "reason": "caller text not readable"}
        target = addr.get("rep_movs_alternative")
        found, calls = [], []
        for c, (a, data) in readable:
            if REP_MOVSB in data:
                found.append(c)
            for i in range(len(data) - 4):
                if target is not None and data[i] == 0xE8:
                    rel = int.from_bytes(data[i + 1 : i + 5], "little", signed=True)
                    if a + i + 5 + rel == target:
                        calls.append(c)
        ok = bool(found) and not calls
        return {
            "status": "consistent" if ok else "inconsistent",
            "rep_movsb_in": found,
            "calls_rep_movs_alternative": sorted(set(calls)),
        }
    sym = result["symbol"]
    b = body(sym)
    if b is None:
        return {"status": "unreadable", "reason": f"{sym} text not readable"}
    data = b[1]
    large = result["by_size"][-1]["insn"]
    has_b, has_q = REP_MOVSB in data, REP_MOVSQ in data
    if large == "rep movsb":
        ok = has_b
    elif large == "rep movsq" and sym == "rep_movs_alternative":
        ok = has_q and not has_b  # the ERMS ALTERNATIVE is not patched in
    elif large == "rep movsq":
        ok = has_q
    else:  # unrolled movq loops: no rep movsq for >= 64
        ok = not has_q
    return {
        "status": "consistent" if ok else "inconsistent",
        "symbol": sym,
        "expected": large,
        "has_rep_movsb": has_b,
        "has_rep_movsq": has_q,
    }


def identify(cpuid: set[str] | None = None) -> dict[str, Any]:
    """predict() for the running machine, with kallsyms and (where readable) kernel-text
    checks; `cpuid`: the ERMS/FSRM bits user space sees (readbench.copy.cpuid), to report
    whether they agree with the kernel's view."""
    try:
        entries = list(ksyms.running_kallsyms())
    except OSError:
        entries = []
    names = {n for _, _, n in entries} or None
    result = predict(platform.release(), cpu.kernel_flags(), names, cpuid=cpuid)
    kt, reason = open_kernel_text(ksyms.Kallsyms(entries))
    if kt is None:
        result["text_check"] = {"status": "unreadable", "reason": reason}
    else:
        result["text_check"] = text_check(result, entries, kt.read, kt.source)
    return result
