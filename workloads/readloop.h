/* readloop: the timed read() loops of readbench. One context per cell; rb_run()
 * is called once per pyperf value with `loops` and returns the elapsed time of
 * the timed loop only (set-up, eviction and counter control are outside it). */
#ifndef READBENCH_READLOOP_H
#define READBENCH_READLOOP_H
#include <stddef.h>
#include <stdint.h>

enum rb_workload { RB_CACHED = 0, RB_CACHED_STREAM = 1, RB_UNCACHED = 2, RB_DIRECT = 3, RB_PIPE = 4 };

struct rb_result {
    uint64_t ns;        /* elapsed ns inside the timed loop(s) */
    uint64_t ops;       /* operations completed (== loops on success) */
    uint64_t syscalls;  /* read()/pread() calls made (pipe may need more than one per op) */
    uint64_t bytes;     /* bytes delivered to the user buffer */
    uint64_t evictions; /* untimed eviction pauses (uncached) */
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
/* Address of the user buffer (tests check what BPF `inspect` saw). */
void *rb_buffer(struct rb_ctx *c);
/* DIO alignment of `path` via statx(STATX_DIOALIGN); 0 when the kernel or fs
 * does not report it. mem/offset written separately. */
int rb_dio_align(const char *path, uint32_t *mem_align, uint32_t *offset_align);
/* Pages of `path` currently resident in the page cache (mincore). */
int64_t rb_resident_pages(const char *path, int64_t *total_pages);
#endif
