"""cffi API-mode builds of the C loops: workloads/readloop.c -> readbench.measure._readloop and
workloads/copy_replicas.c -> readbench.copy._replicas. The cdefs are the headers themselves,
less preprocessor lines and comments, so the Python side cannot drift from the C side.
setup.py runs this file by path (cffi_modules), before readbench is importable."""

import re
from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "workloads"
CFLAGS = ["-O2", "-Wall", "-Wextra", "-std=gnu11"]


def cdef_of(header: Path) -> str:
    text = re.sub(r"/\*.*?\*/", "", header.read_text(), flags=re.S)
    return "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))


def _ffi(module: str, name: str) -> FFI:
    ffi = FFI()
    ffi.cdef(cdef_of(SRC / f"{name}.h"))
    ffi.set_source(
        module,
        f'#include "{name}.h"',
        sources=[str((SRC / f"{name}.c").relative_to(ROOT))],
        include_dirs=[str(SRC.relative_to(ROOT))],
        extra_compile_args=CFLAGS,
    )
    return ffi


readloop_ffi = _ffi("readbench.measure._readloop", "readloop")
replicas_ffi = _ffi("readbench.copy._replicas", "copy_replicas")
