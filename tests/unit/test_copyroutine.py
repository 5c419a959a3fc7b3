"""The copy-routine model against kernel-copy-paths.md §1–§2, era by era, flag set by flag set.

Expectations are written out by hand from the doc's tables (not derived from the code).
"""

from __future__ import annotations

import os

import pytest

from readbench.kernel import copyroutine, cpu, ksyms

FAST = "copy_user_enhanced_fast_string"
STRING = "copy_user_generic_string"
UNROLLED = "copy_user_generic_unrolled"
SHORT = "copy_user_short_string"
RMA = "rep_movs_alternative"
INLINE = "inline rep movsb"

# by_size rows: (min, max, symbol, instruction)
ERMS_ALL = [(0, None, FAST, "rep movsb")]
STRING_ROWS = [(0, 7, STRING, "rep movsb"), (8, None, STRING, "rep movsq")]
UNROLLED_ROWS = [(0, 7, UNROLLED, "movb"), (8, 63, UNROLLED, "movq"), (64, None, UNROLLED, "movq")]
ERMS_SHORT_IN_UNROLLED = [
    (0, 7, UNROLLED, "movb"),
    (8, 63, UNROLLED, "movq"),
    (64, None, FAST, "rep movsb"),
]
ERMS_SHORT_SYMBOL = [(0, 7, SHORT, "movb"), (8, 63, SHORT, "movq"), (64, None, FAST, "rep movsb")]
INLINE_ALL = [(0, None, None, "rep movsb")]
# 5.18-6.3: the unrolled routine jumps into the short-copy code for what 64-byte blocks leave
UNROLLED_SHORT_SYMBOL = [
    (0, 7, SHORT, "movb"),
    (8, 63, SHORT, "movq"),
    (64, None, UNROLLED, "movq"),
]


def rma(large_insn: str) -> list[tuple[int, int | None, str | None, str]]:
    return [(0, 7, RMA, "movb"), (8, 63, RMA, "movq"), (64, None, RMA, large_insn)]


E, F, R = "erms", "fsrm", "rep_good"

# (release, flags, era, routine name, by_size rows, text that must appear in the >=64 path)
TABLE = [
    # <= mid-2017: the ERMS routine is one rep movsb for every length
    ("4.4.0-21-generic", {E, R}, "<=2017", FAST, ERMS_ALL, None),
    ("4.4.0", {E, F, R}, "<=2017", FAST, ERMS_ALL, None),
    ("4.9.36", {E, R}, "<=2017", FAST, ERMS_ALL, None),
    ("4.4.0", {R}, "<=2017", STRING, STRING_ROWS, "align destination"),
    ("4.4.0", set(), "<=2017", UNROLLED, UNROLLED_ROWS, "64-byte"),
    # 2017 – 5.16: ERMS sends < 64 to the short-copy code inside the unrolled routine
    ("4.9.37", {E, R}, "2017-5.16", FAST, ERMS_SHORT_IN_UNROLLED, None),
    ("4.14.0", {E, R}, "2017-5.16", FAST, ERMS_SHORT_IN_UNROLLED, None),
    ("5.10.0-28-amd64", {E, F, R}, "2017-5.16", FAST, ERMS_SHORT_IN_UNROLLED, None),
    ("5.16.20", {E}, "2017-5.16", FAST, ERMS_SHORT_IN_UNROLLED, None),
    ("5.10.0", {R}, "2017-5.16", STRING, STRING_ROWS, "rep movsq"),
    ("5.10.0", {F, R}, "2017-5.16", STRING, STRING_ROWS, "rep movsq"),
    ("5.10.0", set(), "2017-5.16", UNROLLED, UNROLLED_ROWS, "64-byte"),
    # 5.17: FSRM patches out the < 64 test
    ("5.17.3", {E, F, R}, "5.17", FAST, ERMS_ALL, None),
    ("5.17.0", {E, R}, "5.17", FAST, ERMS_SHORT_IN_UNROLLED, None),
    ("5.17.0", {R}, "5.17", STRING, STRING_ROWS, "rep movsq"),
    ("5.17.0", set(), "5.17", UNROLLED, UNROLLED_ROWS, "64-byte"),
    # 5.18 – 6.3: short-copy code is its own symbol
    ("5.18.0", {E, R}, "5.18-6.3", FAST, ERMS_SHORT_SYMBOL, None),
    ("6.1.0-18-amd64", {E, R}, "5.18-6.3", FAST, ERMS_SHORT_SYMBOL, None),
    ("6.3.13", {E, F, R}, "5.18-6.3", FAST, ERMS_ALL, None),
    ("6.1.0", {R}, "5.18-6.3", STRING, STRING_ROWS, "rep movsq"),
    ("6.1.0", {F, R}, "5.18-6.3", STRING, STRING_ROWS, "rep movsq"),
    ("6.1.0", set(), "5.18-6.3", UNROLLED, UNROLLED_SHORT_SYMBOL, "64-byte"),
    # 6.4-rc1..rc3: inline rep movsb with FSRM, else rep_movs_alternative ignoring ERMS
    ("6.4.0-rc1", {E, F, R}, "6.4-rc1..3", INLINE, INLINE_ALL, None),
    ("6.4-rc3", {E, R}, "6.4-rc1..3", RMA, rma("movq"), "ERMS ignored"),
    ("6.4.0-rc2", {R}, "6.4-rc1..3", RMA, rma("movq"), "unrolled"),
    ("6.4.0-rc2", set(), "6.4-rc1..3", RMA, rma("movq"), "unrolled"),
    # 6.4 – 6.5: ERMS back for >= 64; no ERMS -> unrolled loop
    ("6.4.0-rc4", {E, R}, "6.4-6.5", RMA, rma("rep movsb"), None),
    ("6.4.0", {E, F, R}, "6.4-6.5", INLINE, INLINE_ALL, None),
    ("6.5.9", {E, R}, "6.4-6.5", RMA, rma("rep movsb"), None),
    ("6.5.9", {R}, "6.4-6.5", RMA, rma("movq"), "unrolled"),
    ("6.5.9", set(), "6.4-6.5", RMA, rma("movq"), "unrolled"),
    # 6.6 – 6.14: no ERMS -> rep movsq, no alignment
    ("6.6.0", {E, R}, "6.6-6.14", RMA, rma("rep movsb"), None),
    ("6.6.58", {E, F, R}, "6.6-6.14", INLINE, INLINE_ALL, None),
    ("6.14.2", {R}, "6.6-6.14", RMA, rma("rep movsq"), "no alignment"),
    ("6.12.0-1-amd64", set(), "6.6-6.14", RMA, rma("rep movsq"), "no alignment"),
    # 6.15+: no ERMS -> destination-aligned rep movsq
    ("6.15.0", {E, R}, "6.15+", RMA, rma("rep movsb"), None),
    ("6.15.0", {E, F, R}, "6.15+", INLINE, INLINE_ALL, None),
    ("6.18.44-fc-v595", {R}, "6.15+", RMA, rma("rep movsq"), "aligned to 8"),
    ("6.18.0", set(), "6.15+", RMA, rma("rep movsq"), "aligned to 8"),
    ("6.18.0", {F, R}, "6.15+", INLINE, INLINE_ALL, None),
    ("7.0.0", {R}, "6.15+", RMA, rma("rep movsq"), "aligned to 8"),
]


@pytest.mark.parametrize(("release", "flags", "era", "name", "rows", "large_text"), TABLE)
def test_model_table(
    release: str,
    flags: set[str],
    era: str,
    name: str,
    rows: list[tuple[int, int | None, str | None, str]],
    large_text: str | None,
) -> None:
    p = copyroutine.predict(release, flags, None)
    assert p["era"] == era
    assert p["name"] == name
    assert p["inline"] is (name == INLINE)
    assert p["symbol"] == (None if name == INLINE else name)
    got = [(r["min"], r["max"], r["symbol"], r["insn"]) for r in p["by_size"]]
    assert got == rows
    # The ranges tile 0..inf without gaps.
    assert p["by_size"][0]["min"] == 0 and p["by_size"][-1]["max"] is None
    for a, b in zip(p["by_size"], p["by_size"][1:], strict=False):
        assert b["min"] == a["max"] + 1
    if large_text:
        assert large_text in p["by_size"][-1]["path"]
    assert p["why"] and p["kallsyms_check"]["status"] == "unchecked"


def test_every_era_is_covered() -> None:
    eras = {row[2] for row in TABLE}
    assert eras == {
        "<=2017",
        "2017-5.16",
        "5.17",
        "5.18-6.3",
        "6.4-rc1..3",
        "6.4-6.5",
        "6.6-6.14",
        "6.15+",
    }


@pytest.mark.parametrize(
    ("release", "want"),
    [
        ("6.18.44-fc-v595", (6, 18, 44, None)),
        ("6.4.0-rc2", (6, 4, 0, 2)),
        ("6.4-rc3", (6, 4, 0, 3)),
        ("5.10.0-28-amd64", (5, 10, 0, None)),
        ("4.9.337", (4, 9, 337, None)),
        ("6.1", (6, 1, 0, None)),
    ],
)
def test_parse_release(release: str, want: tuple[int, int, int, int | None]) -> None:
    r = copyroutine.parse_release(release)
    assert (r.major, r.minor, r.patch, r.rc) == want


def test_parse_release_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="cannot parse"):
        copyroutine.parse_release("linux")


KALLSYMS_618 = {"_copy_to_iter", "copy_page_to_iter", RMA, "rep_stos_alternative", "vfs_read"}
KALLSYMS_61 = {"_copy_to_iter", FAST, STRING, UNROLLED, "vfs_read"}


def test_kallsyms_consistent_and_inconsistent() -> None:
    ok = copyroutine.predict("6.18.0", {R}, KALLSYMS_618)["kallsyms_check"]
    assert ok["status"] == "consistent" and ok["missing"] == [] and ok["unexpected"] == []
    # A 6.1 prediction against a 6.18 kernel's symbols is caught both ways.
    bad = copyroutine.predict("6.1.0", {E, R}, KALLSYMS_618)["kallsyms_check"]
    assert bad["status"] == "inconsistent"
    assert FAST in bad["missing"] and RMA in bad["unexpected"]
    # copy_user_short_string is an optional (local) symbol: absent does not fail the check.
    old = copyroutine.predict("6.1.0", {E, R}, KALLSYMS_61)["kallsyms_check"]
    assert old["status"] == "consistent" and old["optional_missing"] == [SHORT]
    inline = copyroutine.predict("6.18.0", {E, F, R}, KALLSYMS_618)["kallsyms_check"]
    assert inline["status"] == "consistent" and "_copy_to_iter" in inline["expected"]
    assert "cannot show an inline rep movsb" in inline["reason"]
    none = copyroutine.predict("6.18.0", {E, F, R}, {"vfs_read"})["kallsyms_check"]
    assert none["status"] == "inconsistent"


def test_cpuid_agreement() -> None:
    masked = copyroutine.predict("6.18.0", {R}, None, cpuid={"erms", "fsrm"})["cpuid"]
    assert masked["agree"] is False and "erms: CPUID only" in masked["detail"]
    cleared = copyroutine.predict("6.18.0", {E, F, R}, None, cpuid={"erms"})["cpuid"]
    assert cleared["agree"] is False and "fsrm: kernel flags only" in cleared["detail"]
    same = copyroutine.predict("6.18.0", {E, R}, None, cpuid={"erms"})["cpuid"]
    assert same["agree"] is True
    assert copyroutine.predict("6.18.0", {R}, None)["cpuid"]["read"] is False


def test_notes() -> None:
    assert any(
        "FSRM without ERMS" in n for n in copyroutine.predict("6.1.0", {F, R}, None)["notes"]
    )
    assert any(
        "REP_GOOD plays no part" in n for n in copyroutine.predict("6.6.0", {R}, None)["notes"]
    )


def test_cpuinfo_parsing(tmp_path: os.PathLike[str]) -> None:
    p = os.path.join(tmp_path, "cpuinfo")
    with open(p, "w") as f:
        f.write("processor\t: 0\nflags\t\t: fpu rep_good erms fsrm\n\nprocessor\t: 1\nflags: x\n")
    assert cpu.kernel_flags(p) == {"fpu", "rep_good", "erms", "fsrm"}


def test_kallsyms_parsing(tmp_path: os.PathLike[str]) -> None:
    p = os.path.join(tmp_path, "kallsyms")
    with open(p, "w") as f:
        f.write("ffffffff821e8cf0 T rep_movs_alternative\nffffffffc0000000 t foo\t[mod]\n")
    assert ksyms.read_kallsyms(p)[0] == (0xFFFFFFFF821E8CF0, "T", "rep_movs_alternative")
    assert ksyms.kallsyms_names(p) == {"rep_movs_alternative", "foo"}
    assert ksyms.kallsyms_names(os.path.join(tmp_path, "missing")) is None


KT = 0xFFFFFFFF81000000


def _reader(blobs: dict[int, bytes]):  # type: ignore[no-untyped-def]
    def read(addr: int, n: int) -> bytes | None:
        for base, data in blobs.items():
            if base <= addr < base + len(data):
                return data[addr - base : addr - base + n]
        return None

    return read


def test_text_check_rep_movs_alternative_branches() -> None:
    syms = [(KT, "T", RMA), (KT + 0x100, "T", "after"), (KT + 0x1000, "T", "_copy_to_iter")]
    p = copyroutine.predict("6.18.0", {R}, None)
    movsq_only = b"\x90" * 16 + b"\xf3\x48\xa5" + b"\x90" * 13
    ok = copyroutine.text_check(p, syms, _reader({KT: movsq_only.ljust(0x100, b"\x90")}), "kcore")
    assert ok["status"] == "consistent" and ok["has_rep_movsq"] and not ok["has_rep_movsb"]
    # rep movsb patched in at .Llarge means the kernel saw ERMS: the model (no erms) is wrong.
    patched = (b"\xf3\xa4" + movsq_only).ljust(0x100, b"\x90")
    bad = copyroutine.text_check(p, syms, _reader({KT: patched}), "kcore")
    assert bad["status"] == "inconsistent"
    erms = copyroutine.predict("6.18.0", {E, R}, None)
    assert (
        copyroutine.text_check(erms, syms, _reader({KT: patched}), "kcore")["status"]
        == "consistent"
    )
    assert copyroutine.text_check(p, syms, _reader({}), "kcore")["status"] == "unreadable"
    assert (
        copyroutine.text_check(p, syms, _reader({KT: patched}), "vmlinux")["status"] == "unchecked"
    )


def test_text_check_inline_rep_movsb() -> None:
    syms = [(KT, "T", RMA), (KT + 0x100, "T", "_copy_to_iter"), (KT + 0x400, "T", "next")]
    p = copyroutine.predict("6.18.0", {E, F, R}, None)
    inline = (b"\x90" * 32 + b"\xf3\xa4").ljust(0x300, b"\x90")
    ok = copyroutine.text_check(p, syms, _reader({KT + 0x100: inline}), "kcore")
    assert ok["status"] == "consistent" and ok["rep_movsb_in"] == ["_copy_to_iter"]
    # A call to rep_movs_alternative in the caller means FSRM was not used.
    at = 0x40
    rel = (KT - (KT + 0x100 + at + 5)).to_bytes(4, "little", signed=True)
    called = bytearray(inline)
    called[at : at + 5] = b"\xe8" + rel
    bad = copyroutine.text_check(p, syms, _reader({KT + 0x100: bytes(called)}), "kcore")
    assert bad["status"] == "inconsistent"
    assert bad["calls_rep_movs_alternative"] == ["_copy_to_iter"]
