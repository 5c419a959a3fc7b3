"""The constants and the config struct shared with the BPF programs, read from
readbench/bpf/src/readhooks.h itself, so the loader cannot drift from the programs."""

from __future__ import annotations

import re
from pathlib import Path

HEADER = Path(__file__).resolve().parent / "src" / "readhooks.h"

_DEFINE = re.compile(r"^#define\s+RB_([A-Z0-9_]+)\s+(0x[0-9a-fA-F]+|\d+)(?:u|ull|ul)?\b", re.M)
_STRUCT = re.compile(r"struct\s+rb_cfg\s*\{(.*?)\};", re.S)
_FIELD = re.compile(r"^\s*(__[us](?:8|16|32|64))\s+(\w+)\s*;", re.M)
_PACK = {"__u8": "B", "__s8": "b", "__u16": "H", "__s16": "h", "__u32": "I", "__s32": "i",
         "__u64": "Q", "__s64": "q"}  # fmt: skip


def _parse(text: str) -> tuple[dict[str, int], list[tuple[str, str]]]:
    consts = {name: int(value, 0) for name, value in _DEFINE.findall(text)}
    m = _STRUCT.search(text)
    if m is None:
        raise RuntimeError(f"{HEADER}: no struct rb_cfg")
    return consts, _FIELD.findall(m.group(1))


_CONSTS, CFG_FIELDS = _parse(HEADER.read_text())
# struct rb_cfg as struct.pack format; every field is naturally aligned, so '=' matches C.
CFG_FORMAT = "=" + "".join(_PACK[t] for t, _ in CFG_FIELDS)


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
