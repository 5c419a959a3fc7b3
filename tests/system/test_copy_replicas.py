"""The user-space copy replicas copy exactly the right bytes, and are the instructions they claim.

Run before any timing: a replica that copied the wrong bytes would time a different job.
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess

import pytest

from readbench.copy import replicas

cffi_mod = pytest.importorskip("readbench.copy._replicas", reason="C extension not built")
ffi, lib = cffi_mod.ffi, cffi_mod.lib

GUARD = 0xEE
PAD = 128


def copy_once(variant: int, data: bytes, src_align: int, dst_align: int) -> bytes:
    n = len(data)
    # 64-byte aligned base so the misalignment is exactly what we ask for.
    src_raw = ffi.new("unsigned char[]", n + 2 * PAD + 64)
    dst_raw = ffi.new("unsigned char[]", n + 2 * PAD + 64)
    sbase = (-int(ffi.cast("uintptr_t", src_raw))) % 64
    dbase = (-int(ffi.cast("uintptr_t", dst_raw))) % 64
    src = src_raw + sbase + PAD
    dst = dst_raw + dbase + PAD
    assert int(ffi.cast("uintptr_t", src)) % 64 == 0
    ffi.memmove(src + src_align, data, n)
    ffi.memmove(dst_raw, bytes([GUARD]) * len(dst_raw), len(dst_raw))
    lib.cr_copy(variant, dst + dst_align, src + src_align, n)
    return bytes(ffi.buffer(dst_raw, len(dst_raw))), dbase + PAD + dst_align


@pytest.mark.parametrize("variant", sorted(replicas.VARIANTS))
def test_byte_exact_all_sizes_sampled_alignments(variant: str) -> None:
    vid = replicas.VARIANTS[variant]
    rng = random.Random(f"replica-{variant}")
    for n in range(0, 301):
        pairs = {(0, 0), (63, 63), (1, 7), (7, 1)}
        pairs |= {(rng.randrange(64), rng.randrange(64)) for _ in range(4)}
        for sa, da in sorted(pairs):
            data = rng.randbytes(n)
            out, start = copy_once(vid, data, sa, da)
            assert out[start : start + n] == data, (variant, n, sa, da)
            # Nothing outside [dst, dst+n) is touched.
            assert set(out[:start]) <= {GUARD} and set(out[start + n :]) <= {GUARD}, (
                variant,
                n,
                sa,
                da,
            )


@pytest.mark.parametrize("variant", sorted(replicas.VARIANTS))
def test_byte_exact_all_misalignments_around_thresholds(variant: str) -> None:
    """Every src/dst misalignment 0..63 at the sizes where the paths switch."""
    vid = replicas.VARIANTS[variant]
    rng = random.Random(7)
    for n in (7, 8, 63, 64, 65, 129):
        data = rng.randbytes(n)
        for sa in range(64):
            for da in range(0, 64, 3):
                out, start = copy_once(vid, data, sa, da)
                assert out[start : start + n] == data, (variant, n, sa, da)
                assert out[start - 1] == GUARD and out[start + n] == GUARD


@pytest.mark.parametrize("variant", sorted(replicas.VARIANTS))
@pytest.mark.parametrize("n", [4096, 65536 + 13])
def test_byte_exact_large(variant: str, n: int) -> None:
    data = random.Random(n).randbytes(n)
    out, start = copy_once(replicas.VARIANTS[variant], data, 5, 3)
    assert out[start : start + n] == data
    assert out[start - 1] == GUARD and out[start + n] == GUARD


def _disasm(symbol: str) -> str:
    so = cffi_mod.__file__
    text = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", so], capture_output=True, text=True, check=True
    ).stdout
    m = re.search(rf"<{symbol}>:\n(.*?)(?:\n\n|\Z)", text, re.S)
    assert m, f"{symbol} not found in {so}"
    return m.group(1)


@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump (binutils) not installed")
def test_replicas_are_the_kernel_instructions() -> None:
    movsb = _disasm("cr_movsb_asm")
    assert "cmp    $0x40,%rdx" in movsb and "rep movsb" in movsb and "movsq" not in movsb
    movsq = _disasm("cr_movsq_asm")
    assert "rep movsq" in movsq and "rep movsb" in movsq and "and    $0x7,%ecx" in movsq
    unrolled = _disasm("cr_unrolled_asm")
    assert "rep" not in unrolled
    assert unrolled.count("mov    %r8,") >= 3 and "add    $0x40,%rsi" in unrolled.replace(
        "lea    0x40(%rsi),%rsi", "add    $0x40,%rsi"
    )
    rma = _disasm("cr_rma_asm")
    assert "rep movsq" in rma and "and    $0xfffffffffffffff8,%rax" in rma
    assert "rep movsb" in _disasm("cr_rep_movsb_asm")


def test_unknown_variant_is_refused() -> None:
    assert lib.cr_time(99, ffi.NULL, ffi.NULL, 0, 1) == 0
