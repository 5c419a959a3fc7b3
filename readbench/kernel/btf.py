"""The kernel's BTF (/sys/kernel/btf/vmlinux), read directly: function prototypes with
argument names and C types, and the `btf_trace_<tracepoint>` prototypes raw and BTF
tracepoint programs receive. Only what the atlas needs: no relocation, no modules.

Format: include/uapi/linux/btf.h (header, type section, string section; type ids from 1).
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from pathlib import Path

VMLINUX = Path("/sys/kernel/btf/vmlinux")

INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF = 1, 2, 3, 4, 5, 6, 7, 8
VOLATILE, CONST, RESTRICT, FUNC, FUNC_PROTO, VAR, DATASEC, FLOAT = 9, 10, 11, 12, 13, 14, 15, 16
DECL_TAG, TYPE_TAG, ENUM64 = 17, 18, 19
# bytes of kind-specific data after the 12-byte btf_type: fixed, or per vlen item
_FIXED = {INT: 4, ARRAY: 12, VAR: 4, DECL_TAG: 4}
_PER_ITEM = {STRUCT: 12, UNION: 12, ENUM: 8, FUNC_PROTO: 8, DATASEC: 12, ENUM64: 12}


@dataclass(frozen=True)
class BtfType:
    kind: int
    name: str
    ref: int  # size or referenced type id, by kind
    params: tuple[tuple[str, int], ...] = ()  # FUNC_PROTO: (name, type id)


class Btf:
    def __init__(self, data: bytes) -> None:
        magic, _ver, _flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(
            "<HBBIIIII", data, 0
        )
        if magic != 0xEB9F:
            raise ValueError("not BTF (bad magic)")
        types = data[hdr_len + type_off : hdr_len + type_off + type_len]
        self._strs = data[hdr_len + str_off : hdr_len + str_off + str_len]
        self.types: list[BtfType] = [BtfType(0, "void", 0)]
        self.by_name: dict[tuple[int, str], int] = {}
        off = 0
        while off < len(types):
            name_off, info, ref = struct.unpack_from("<III", types, off)
            off += 12
            kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
            params: tuple[tuple[str, int], ...] = ()
            if kind == FUNC_PROTO:
                params = tuple(
                    (self._str(n), t)
                    for n, t in (struct.unpack_from("<II", types, off + 8 * i) for i in range(vlen))
                )
            off += _FIXED.get(kind, 0) + _PER_ITEM.get(kind, 0) * vlen
            name = self._str(name_off)
            self.types.append(BtfType(kind, name, ref, params))
            if name:
                self.by_name.setdefault((kind, name), len(self.types) - 1)

    def _str(self, off: int) -> str:
        end = self._strs.index(b"\0", off)
        return self._strs[off:end].decode()

    def c_type(self, tid: int) -> str:
        """C spelling of a type id: `struct file *`, `const char __user *`, `size_t`."""
        t = self.types[tid]
        if t.kind in (PTR,):
            inner = self.c_type(t.ref)
            return f"{inner}*" if inner.endswith("*") else f"{inner} *"
        if t.kind == CONST:
            return f"const {self.c_type(t.ref)}"
        if t.kind == VOLATILE:
            return f"volatile {self.c_type(t.ref)}"
        if t.kind == RESTRICT:
            return self.c_type(t.ref)
        if t.kind == TYPE_TAG:  # e.g. __user on a pointee (pahole's btf_type_tag)
            return f"{self.c_type(t.ref)} __{t.name}"
        if t.kind in (STRUCT, FWD):
            return f"struct {t.name}"
        if t.kind == UNION:
            return f"union {t.name}"
        if t.kind in (ENUM, ENUM64):
            return f"enum {t.name}"
        if t.kind == FUNC_PROTO:
            return "function pointer"
        return t.name or "void"

    def _proto(self, proto_id: int) -> list[dict[str, str]]:
        p = self.types[proto_id]
        return [{"name": n, "type": self.c_type(t)} for n, t in p.params]

    def function(self, name: str) -> list[dict[str, str]] | None:
        """Arguments of kernel function `name`, or None when BTF has no such function
        (inlined everywhere, renamed, static without BTF, or not built)."""
        tid = self.by_name.get((FUNC, name))
        return None if tid is None else self._proto(self.types[tid].ref)

    def tracepoint(self, name: str) -> list[dict[str, str]] | None:
        """Arguments of tracepoint `name` as a raw/BTF tracepoint program gets them: the
        `btf_trace_<name>` typedef's prototype less its leading `void *` (the data cookie)."""
        tid = self.by_name.get((TYPEDEF, f"btf_trace_{name}"))
        if tid is None:
            return None
        ptr = self.types[self.types[tid].ref]
        if ptr.kind != PTR or self.types[ptr.ref].kind != FUNC_PROTO:
            return None
        return self._proto(ptr.ref)[1:]


@functools.cache
def running() -> Btf | None:
    """The running kernel's BTF, parsed once per process; None where it is not exposed."""
    try:
        return Btf(VMLINUX.read_bytes())
    except (OSError, ValueError):
        return None
