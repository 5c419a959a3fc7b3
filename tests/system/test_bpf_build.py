"""Building the BPF hook object: constants shared with C, tool errors, a real build."""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import pytest

from readbench.bpf import abi, build
from readbench.errors import MissingCapability
from tests.conftest import require

HEADER = build.SRC_DIR / "readhooks.h"


def _defines() -> dict[str, int]:
    out = {}
    for m in re.finditer(r"^#define (RB_\w+) (0x[0-9a-fA-F]+|\d+)u?l*", HEADER.read_text(), re.M):
        out[m.group(1)] = int(m.group(2), 0)
    return out


def test_python_mirrors_header_constants() -> None:
    d = _defines()
    pairs = {
        "RB_A_COUNT": abi.A_COUNT,
        "RB_A_HIST_SIZE": abi.A_HIST_SIZE,
        "RB_A_STASH": abi.A_STASH,
        "RB_A_STASH_TS": abi.A_STASH_TS,
        "RB_A_HIST_LAT": abi.A_HIST_LAT,
        "RB_A_INSPECT": abi.A_INSPECT,
        "RB_K_SYSCALL": abi.K_SYSCALL,
        "RB_K_VFS_READ": abi.K_VFS_READ,
        "RB_K_FILEMAP_READ": abi.K_FILEMAP_READ,
        "RB_K_COPY_PAGE_TO_ITER": abi.K_COPY_PAGE_TO_ITER,
        "RB_K_COPY_TO_ITER": abi.K_COPY_TO_ITER,
        "RB_K_PIPE_READ": abi.K_PIPE_READ,
        "RB_K_REP_MOVS": abi.K_REP_MOVS,
        "RB_K_COPY_USER_OLD": abi.K_COPY_USER_OLD,
        "RB_COUNT_ENTER": abi.COUNT_ENTER,
        "RB_COUNT_EXIT": abi.COUNT_EXIT,
        "RB_I_EVENTS": abi.I_EVENTS,
        "RB_I_BYTES": abi.I_BYTES,
        "RB_I_SKIPPED": abi.I_SKIPPED,
        "RB_I_FAULTS": abi.I_FAULTS,
        "RB_I_NO_STASH": abi.I_NO_STASH,
        "RB_INSPECT_MAX": abi.INSPECT_MAX,
        "RB_FNV_OFFSET": abi.FNV_OFFSET,
        "RB_FNV_PRIME": abi.FNV_PRIME,
    }
    for name, value in pairs.items():
        assert d[name] == value, name
    # struct rb_cfg: six 32-bit fields, packed exactly as hooks packs them
    body = re.search(r"struct rb_cfg \{(.*?)\};", HEADER.read_text(), re.S)
    assert body is not None
    fields = re.findall(r"__[us]32 (\w+);", body.group(1))
    assert fields == ["tgid", "nr", "kind", "enter_actions", "exit_actions", "exit_needs_stash"]
    assert struct.calcsize(abi.CFG_FORMAT) == 4 * len(fields)


def test_fnv_matches_reference_vectors() -> None:
    # Published FNV-1a 64 test vectors.
    assert abi.fnv1a64(b"") == 0xCBF29CE484222325
    assert abi.fnv1a64(b"a") == 0xAF63DC4C8601EC8C
    assert abi.fnv1a64(b"foobar") == 0x85944171F73967E8


def _only_tools(tmp_path: Path, monkeypatch, *tools: str) -> None:  # type: ignore[no-untyped-def]
    """A PATH holding just `tools` (symlinks to the real ones), an empty object cache."""
    import shutil

    only = tmp_path / "bin"
    only.mkdir()
    for t in tools:
        real = shutil.which(t)
        require(real is not None, f"{t} not installed (apt-get install {t})")
        (only / t).symlink_to(real)
    monkeypatch.setenv("PATH", str(only))
    monkeypatch.setattr(build, "EXTRA_TOOL_DIRS", "")
    monkeypatch.setenv("READBENCH_BPF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(build, "_built", {})


def test_missing_clang_names_tool_and_package(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _only_tools(tmp_path, monkeypatch)
    with pytest.raises(MissingCapability, match=r"`clang`.*apt-get install clang"):
        build.object_path()


def test_missing_bpftool_names_tool_and_package(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _only_tools(tmp_path, monkeypatch, "clang")
    with pytest.raises(MissingCapability, match=r"`bpftool`.*apt-get install bpftool"):
        build.object_path()


def test_real_build_into_fresh_cache(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("READBENCH_BPF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(build, "_built", {})
    obj = build.object_path()
    assert obj.is_relative_to(tmp_path / "cache" / os.uname().release)
    head = obj.read_bytes()[:20]
    assert head[:4] == b"\x7fELF"
    assert struct.unpack_from("<H", head, 18)[0] == 247  # EM_BPF
    assert (obj.parent / "vmlinux.h").stat().st_size > 100_000
    # second call reuses, no rebuild
    mtime = obj.stat().st_mtime_ns
    monkeypatch.setattr(build, "_built", {})
    assert build.object_path() == obj
    assert obj.stat().st_mtime_ns == mtime


def test_read_only_cache_names_the_directory_and_the_way_out(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A guest's home is read-only: the build says which directory and how to point it
    elsewhere, instead of an OSError traceback (the 6.1 guest printed EROFS)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    monkeypatch.setenv("READBENCH_BPF_CACHE", str(ro / "cache"))
    monkeypatch.setattr(build, "_built", {})
    if os.geteuid() == 0:  # root writes through 0500: use a read-only bind instead
        monkeypatch.setenv("READBENCH_BPF_CACHE", "/proc/readbench-bpf-cache")
    with pytest.raises(MissingCapability, match=r"not writable.*READBENCH_BPF_CACHE"):
        build.object_path()
