"""cffi API-mode build of the C read loops (workloads/readloop.c) -> readbench._readloop."""

from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "workloads"

ffi = FFI()
ffi.cdef(
    """
    struct rb_result { uint64_t ns; uint64_t ops; uint64_t syscalls; uint64_t bytes;
                       uint64_t evictions; };
    struct rb_ctx;
    int rb_open(int workload, const char *path, uint64_t size, uint32_t buf_offset,
                uint64_t io_align, struct rb_ctx **out, char *err, size_t errlen);
    int rb_run(struct rb_ctx *c, uint64_t loops, const int *ctl_fds, int n_ctl,
               struct rb_result *res, char *err, size_t errlen);
    void rb_close(struct rb_ctx *c);
    void *rb_buffer(struct rb_ctx *c);
    int rb_dio_align(const char *path, uint32_t *mem_align, uint32_t *offset_align);
    int64_t rb_resident_pages(const char *path, int64_t *total_pages);
    """
)
ffi.set_source(
    "readbench._readloop",
    '#include "readloop.h"',
    sources=[str((SRC / "readloop.c").relative_to(ROOT))],
    include_dirs=[str(SRC.relative_to(ROOT))],
    extra_compile_args=["-O2", "-Wall", "-Wextra", "-std=gnu11"],
)

if __name__ == "__main__":
    ffi.compile(verbose=True)
