"""Attribution of samples to the copy routine on synthetic perf-script sets and synthetic
kernel text for the inline case (the real recordings are in tests/system)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from readbench.kernel import copyroutine
from readbench.kernel.attribution import attribute, parse_perf_script
from readbench.kernel.ksyms import Kallsyms, Symbolized
from readbench.kernel.text import KernelText

K = 0xFFFFFFFF81000000

SCRIPT_NON_FSRM = "\n".join(
    ["ffffffff821e8d3c rep_movs_alternative+0x4c ([kernel.kallsyms])"] * 60
    + ["ffffffff81b6a301 _copy_to_iter+0x51 ([kernel.kallsyms])"] * 10
    + ["ffffffff8158ef77 filemap_read+0x67 ([kernel.kallsyms])"] * 15
    + ["ffffffff81e00010 entry_SYSCALL_64+0x10 ([kernel.kallsyms])"] * 10
    + ["    7f3a12345678 __libc_pread64+0x18 (/usr/lib/x86_64-linux-gnu/libc.so.6)"] * 5
    + ["garbage line that perf would not print", ""]
)


def test_parse_perf_script() -> None:
    s = parse_perf_script(SCRIPT_NON_FSRM)
    assert len(s) == 100
    assert s[0] == Symbolized(0xFFFFFFFF821E8D3C, True, "rep_movs_alternative")
    assert s[-1].kernel is False and s[-1].sym == "[user]"


def test_symbol_attribution_on_synthetic_script() -> None:
    routine = copyroutine.predict("6.18.0", {"rep_good"}, None)
    a = attribute(parse_perf_script(SCRIPT_NON_FSRM), routine)
    assert a["method"] == "symbol"
    assert a["copy_symbol"] == "rep_movs_alternative"
    assert a["copy_fraction"] == pytest.approx(0.60)
    assert a["copy_fraction_of_kernel"] == pytest.approx(60 / 95)
    funcs = {f["name"]: f["share"] for f in a["functions"]}
    assert funcs == pytest.approx(
        {
            "rep_movs_alternative": 0.60,
            "filemap_read": 0.15,
            "_copy_to_iter": 0.10,
            "entry_SYSCALL_64": 0.10,
            "[user]": 0.05,
        }
    )
    # the layers of the one read-path taxonomy (readbench.model.layers), by sampled function
    groups = {g["name"]: g["share"] for g in a["groups"]}
    assert groups == pytest.approx(
        {"copy to user": 0.70, "page-cache lookup": 0.15, "syscall entry and exit": 0.10,
         "user space": 0.05}
    )  # fmt: skip
    assert "skid" in a["method_limits"]


def test_the_unrolled_routines_short_copy_tail_is_copy_time_on_6_1() -> None:
    # the 6.1 guest without ERMS or REP_GOOD: every copy_user_generic_unrolled ends in
    # copy_user_short_string (21 % of a 64 KiB read's samples there); it counted as other
    script = "\n".join(
        ["ffffffff81a0d0c0 copy_user_generic_unrolled+0x40 ([kernel.kallsyms])"] * 55
        + ["ffffffff81a0d200 copy_user_short_string+0x20 ([kernel.kallsyms])"] * 21
        + ["ffffffff8158ef77 filemap_read+0x67 ([kernel.kallsyms])"] * 24
    )
    a = attribute(parse_perf_script(script), copyroutine.predict("6.1.0", set(), None))
    assert a["copy_symbol"] == "copy_user_generic_unrolled,copy_user_short_string"
    assert a["copy_fraction"] == pytest.approx(0.76)


def test_pre64_short_copy_is_attributed_to_the_short_string_symbol() -> None:
    """On 5.18–6.3 ERMS without FSRM, < 64 B copies run in copy_user_short_string."""
    routine = copyroutine.predict("6.1.0", {"erms", "rep_good"}, None)
    lines = ["ffffffff81a00010 copy_user_short_string+0x10 ([kernel.kallsyms])"] * 3
    lines += ["ffffffff81a00110 copy_user_enhanced_fast_string+0x10 ([kernel.kallsyms])"] * 1
    lines += ["ffffffff8158ef77 filemap_read+0x67 ([kernel.kallsyms])"] * 6
    a = attribute(parse_perf_script("\n".join(lines)), routine)
    assert a["copy_fraction"] == pytest.approx(0.4)


def _inline_samples() -> list[Symbolized]:
    # 40 on the rep movsb (its own address while interrupted), 5 skidded to +2,
    # 15 elsewhere in _copy_to_iter, 40 in the rest of the path.
    rep = K + 0x1000
    s = [Symbolized(rep, True, "_copy_to_iter")] * 40
    s += [Symbolized(rep + 2, True, "_copy_to_iter")] * 5
    s += [Symbolized(K + 0x1000 - 0x30 + i, True, "_copy_to_iter") for i in range(15)]
    s += [Symbolized(K + 0x9000, True, "filemap_read")] * 40
    return s


def _fake_kernel_elf(path: Path, vaddr: int, text: bytes) -> None:
    """A minimal ELF64 with one PT_LOAD, like /proc/kcore's text segment."""
    ehdr = bytearray(64)
    ehdr[:4] = b"\x7fELF"
    ehdr[4], ehdr[5], ehdr[6] = 2, 1, 1
    struct.pack_into("<HHIQQQIHHHHHH", ehdr, 16, 4, 62, 1, 0, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 4096, vaddr, 0, len(text), len(text), 4096)
    data = bytes(ehdr) + phdr
    path.write_bytes(data + b"\0" * (4096 - len(data)) + text)


def test_inline_without_kernel_text_uses_dominant_address() -> None:
    routine = copyroutine.predict("6.18.0", {"erms", "fsrm", "rep_good"}, None)
    a = attribute(_inline_samples(), routine, None, "no /proc/kcore")
    assert a["method"] == "dominant-address" and a["confirmed"] is None
    assert a["copy_address"] == hex(K + 0x1000) and a["copy_symbol"] == "_copy_to_iter"
    assert a["copy_fraction"] == pytest.approx(0.40)  # unconfirmed: the +2 skid is not added
    assert "not checked" in a["method_limits"] and "no /proc/kcore" in a["method_limits"]


def test_inline_confirmed_from_kernel_text(tmp_path: Path) -> None:
    routine = copyroutine.predict("6.18.0", {"erms", "fsrm"}, None)
    text = bytearray(b"\x90" * 0x2000)
    text[0x1000:0x1002] = b"\xf3\xa4"
    _fake_kernel_elf(tmp_path / "kcore", K, bytes(text))
    kt = KernelText(str(tmp_path / "kcore"), "kcore")
    assert kt.read(K + 0x1000, 2) == b"\xf3\xa4" and kt.read(K + 0x5000, 2) is None
    a = attribute(_inline_samples(), routine, kt)
    assert a["method"] == "kcore-confirmed" and a["confirmed"] is True
    assert a["copy_fraction"] == pytest.approx(0.45)  # rep movsb + its skid


def test_inline_skid_moved_back_and_wrong_bytes_refused(tmp_path: Path) -> None:
    routine = copyroutine.predict("6.18.0", {"erms", "fsrm"}, None)
    text = bytearray(b"\x90" * 0x2000)
    text[0x0FFE:0x1000] = b"\xf3\xa4"  # the dominant address is the instruction after it
    _fake_kernel_elf(tmp_path / "kcore", K, bytes(text))
    a = attribute(_inline_samples(), routine, KernelText(str(tmp_path / "kcore"), "kcore"))
    assert a["confirmed"] is True and a["copy_address"] == hex(K + 0x0FFE)
    assert "skid" in a["note"]
    _fake_kernel_elf(tmp_path / "kcore2", K, b"\x90" * 0x2000)
    b = attribute(_inline_samples(), routine, KernelText(str(tmp_path / "kcore2"), "kcore"))
    assert b["method"] == "dominant-address" and b["confirmed"] is False
    assert "not f3a4" in b["note"]


def test_kallsyms_lookup(tmp_path: Path) -> None:
    p = tmp_path / "kallsyms"
    p.write_text(
        "ffffffff81000000 T _text\nffffffff81001000 t helper\nffffffff81001000 D data_sym\n"
        "ffffffff81002000 T after\n"
    )
    ks = Kallsyms.load(p)
    assert ks.lookup(0xFFFFFFFF81001FFF) == "helper"
    assert ks.lookup(0xFFFFFFFF81002000) == "after"
    assert ks.lookup(0x1000) == "[unknown]"
    assert ks.symbolize(0x7F00, False).sym == "[user]"
