/* readloop: the timed read() loops of readbench. One context per cell; rb_run()
 * is called once per pyperf value with `loops` and returns the elapsed time of
 * the timed loop only (set-up, eviction and counter control are outside it). */
#ifndef READBENCH_READLOOP_H
#define READBENCH_READLOOP_H
#include <stddef.h>
#include <stdint.h>

/* readbench/model/workloads.py holds one record per id (tests/unit/test_c_abi.py checks). */
enum rb_workload {
    RB_CACHED = 0, RB_CACHED_STREAM = 1, RB_UNCACHED = 2, RB_DIRECT = 3, RB_PIPE = 4,
    RB_READV = 5, RB_PREADV2_NOWAIT = 6, RB_IO_URING = 7, RB_IO_URING_FIXED = 8,
    RB_MMAP_CACHED = 9, RB_MMAP_FAULT = 10, RB_SPLICE = 11, RB_NWORKLOADS = 12
};

/* rb_open returns -(RB_REFUSED + errno) when the kernel refuses what the workload needs
 * (io_uring disabled, not built, or denied by seccomp/LSM): a missing capability, not a
 * failed measurement. */
enum rb_status { RB_REFUSED = 4096 };

struct rb_result {
    uint64_t ns;        /* elapsed ns inside the timed loop(s) */
    uint64_t ops;       /* operations completed (== loops on success) */
    uint64_t syscalls;  /* read syscalls made (pipe may need more than one per op; 0: mmap) */
    uint64_t bytes;     /* bytes delivered (to the user buffer, the pipe, or touched) */
    uint64_t evictions; /* untimed eviction pauses (uncached, mmap-fault) */
    uint64_t eagains;   /* reads that returned EAGAIN (preadv2-nowait): the batch then fails */
    uint64_t drains;    /* untimed pipe drains between timed segments (splice) */
    uint64_t major_faults; /* major page faults inside the timed window(s) (getrusage) */
    uint64_t minor_faults; /* minor page faults inside the timed window(s) */
};

struct rb_ctx;

/* Returns 0 or a negative errno; on failure `err` holds a message. */
int rb_open(int workload, const char *path, uint64_t size, uint32_t buf_offset,
            uint64_t io_align, struct rb_ctx **out, char *err, size_t errlen);
/* ctl_fds: perf event group leaders enabled right before and disabled right after
 * the timed loop (PERF_IOC_FLAG_GROUP), so counters see exactly the loop. */
int rb_run(struct rb_ctx *c, uint64_t loops, const int *ctl_fds, int n_ctl,
           struct rb_result *res, char *err, size_t errlen);
void rb_close(struct rb_ctx *c);
/* Injected delay after every op of later rb_run calls: `iters` turns of an empty loop
 * (readbench calibrate's known slowdown); 0 turns it off. */
void rb_set_spin(struct rb_ctx *c, uint64_t iters);
/* Elapsed ns of `reps` delays of `iters` turns, to size a delay in ns. */
uint64_t rb_spin_ns(uint64_t iters, uint64_t reps);
/* Elapsed ns of `loops` calls of an undefined syscall: the floor every syscall pays. */
uint64_t rb_null_syscall_ns(uint64_t loops);
/* A flag set to 1 while a timed loop runs and to 0 outside it (NULL: none). The atlas's
 * counting program reads it, so it counts the reads and never the untimed pauses between
 * segments (an eviction's fadvise, a pipe drain). */
void rb_set_gate(struct rb_ctx *c, volatile uint32_t *gate);
/* Address of the user buffer (tests check what BPF `inspect` saw). */
void *rb_buffer(struct rb_ctx *c);
/* DIO alignment of `path` via statx(STATX_DIOALIGN); 0 when the kernel or fs
 * does not report it. mem/offset written separately. */
int rb_dio_align(const char *path, uint32_t *mem_align, uint32_t *offset_align);
/* 0 when this process may create an io_uring, else -(RB_REFUSED + errno) with the kernel's
 * reason in `err` (kernel.io_uring_disabled, no io_uring, a seccomp or LSM policy). */
int rb_io_uring_probe(char *err, size_t errlen);
/* Pages of `path` currently resident in the page cache (mincore). */
int64_t rb_resident_pages(const char *path, int64_t *total_pages);
#endif
