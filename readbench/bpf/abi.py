"""The constants and the structs shared with the BPF programs, read from the headers in
bpf/ themselves (readhooks.h, devwait.h), so a loader cannot drift from its programs."""

from __future__ import annotations

import re
from pathlib import Path

from readbench.bpf.build import SRC_DIR

HEADER = SRC_DIR / "readhooks.h"

_DEFINE = re.compile(r"^#define\s+RB_([A-Z0-9_]+)\s+(0x[0-9a-fA-F]+|\d+)(?:u|ull|ul)?\b", re.M)
_FIELD = re.compile(r"^\s*(__[us](?:8|16|32|64))\s+(\w+)\s*;", re.M)
_PACK = {"__u8": "B", "__s8": "b", "__u16": "H", "__s16": "h", "__u32": "I", "__s32": "i",
         "__u64": "Q", "__s64": "q"}  # fmt: skip


def struct_fields(header: Path, name: str) -> list[tuple[str, str]]:
    """(type, field) of `struct name` in `header`, in order (fixed-width integer fields)."""
    m = re.search(rf"struct\s+{name}\s*\{{(.*?)\}};", header.read_text(), re.S)
    if m is None:
        raise RuntimeError(f"{header}: no struct {name}")
    return _FIELD.findall(m.group(1))


def struct_format(fields: list[tuple[str, str]]) -> str:
    """struct.pack format of naturally aligned fields ('=' then matches the C layout)."""
    return "=" + "".join(_PACK[t] for t, _ in fields)


_CONSTS = {name: int(value, 0) for name, value in _DEFINE.findall(HEADER.read_text())}
CFG_FIELDS = struct_fields(HEADER, "rb_cfg")
CFG_FORMAT = struct_format(CFG_FIELDS)


def const(name: str) -> int:
    """RB_<name> from the header."""
    return _CONSTS[name]


A_COUNT, A_HIST_SIZE, A_STASH = const("A_COUNT"), const("A_HIST_SIZE"), const("A_STASH")
A_STASH_TS, A_HIST_LAT, A_INSPECT = const("A_STASH_TS"), const("A_HIST_LAT"), const("A_INSPECT")
K_SYSCALL, K_VFS_READ, K_FILEMAP_READ = (
    const("K_SYSCALL"),
    const("K_VFS_READ"),
    const("K_FILEMAP_READ"),
)
K_COPY_PAGE_TO_ITER, K_COPY_TO_ITER = const("K_COPY_PAGE_TO_ITER"), const("K_COPY_TO_ITER")
K_PIPE_READ, K_REP_MOVS, K_COPY_USER_OLD = (
    const("K_PIPE_READ"),
    const("K_REP_MOVS"),
    const("K_COPY_USER_OLD"),
)
COUNT_ENTER, COUNT_EXIT = const("COUNT_ENTER"), const("COUNT_EXIT")
I_EVENTS, I_BYTES, I_SKIPPED = const("I_EVENTS"), const("I_BYTES"), const("I_SKIPPED")
I_FAULTS, I_NO_STASH = const("I_FAULTS"), const("I_NO_STASH")
INSPECT_MAX = const("INSPECT_MAX")
FNV_OFFSET, FNV_PRIME = const("FNV_OFFSET"), const("FNV_PRIME")


def fnv1a64(data: bytes) -> int:
    """The hash the inspect body computes (for checking it from user space)."""
    h = FNV_OFFSET
    for b in data:
        h ^= b
        h = (h * FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return h
