"""cffi API-mode build of the copy replicas (workloads/copy_replicas.c) -> readbench._copyrep."""

from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "workloads"

ffi = FFI()
ffi.cdef(
    """
    void cr_copy(int variant, void *dst, const void *src, size_t n);
    uint64_t cr_time(int variant, void *dst, const void *src, size_t n, uint64_t loops);
    uint64_t cr_time_ctl(int variant, void *dst, const void *src, size_t n, uint64_t loops,
                         int ctl_fd);
    int cr_cpuid(uint32_t leaf, uint32_t subleaf, uint32_t *regs);
    """
)
ffi.set_source(
    "readbench._copyrep",
    '#include "copy_replicas.h"',
    sources=[str((SRC / "copy_replicas.c").relative_to(ROOT))],
    include_dirs=[str(SRC.relative_to(ROOT))],
    extra_compile_args=["-O2", "-Wall", "-Wextra", "-std=gnu11"],
)

if __name__ == "__main__":
    ffi.compile(verbose=True)
