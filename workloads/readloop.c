/* readloop.c — the measured loops. Python calls rb_run() once per pyperf value;
 * nothing but the read syscalls (and, for stream/uncached, a wrap or an untimed
 * eviction pause) sits between the two clock reads. */
#define _GNU_SOURCE
#include "readloop.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <linux/perf_event.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define PIPE_CHUNK 65536u
#define RESIDENCY_SAMPLES 64u /* pages mincore()d per uncached batch, outside the clock */
#define DIO_PROBE_BYTES 65536u /* O_DIRECT read at open that must leave no cached page */

static const char *const wl_names[RB_NWORKLOADS] = {
    "cached", "cached-stream", "uncached", "direct", "pipe", "readv", "preadv2-nowait",
    "io_uring", "io_uring-fixed", "mmap-cached", "mmap-fault", "splice"};

/* An io_uring of one entry, set up with the raw syscalls (no liburing: nothing to install
 * before the package builds). One SQE per op: written, published, submitted and waited for
 * with one io_uring_enter, its CQE reaped. */
struct ring {
    int fd;
    void *sq_map, *cq_map;
    size_t sq_len, cq_len;
    struct io_uring_sqe *sqes;
    size_t sqes_len;
    unsigned *sq_tail, *sq_mask, *sq_array;
    unsigned *cq_head, *cq_tail, *cq_mask;
    struct io_uring_cqe *cqes;
};

struct rb_ctx {
    int workload;
    int fd;               /* data file, or the pipe's read end */
    int wfd;              /* pipe write end */
    uint64_t size;        /* bytes per operation */
    uint64_t file_size;
    uint64_t stride;      /* uncached/direct: distance between successive offsets */
    uint64_t pos;         /* stream/uncached/direct: next offset */
    char *mem;            /* allocation holding the (possibly offset) user buffer */
    size_t mem_len;
    char *buf;
    pid_t writer; /* pipe writer process, 0 if none */
    uint64_t spin; /* injected delay per op (readbench calibrate), 0 = none */
    volatile uint32_t *gate; /* 1 inside a timed loop (rb_set_gate), or NULL */
    struct ring ring;        /* io_uring workloads (ring.fd < 0 otherwise) */
    char *map;               /* mmap workloads: the file's mapping */
    size_t map_len;
    int pipe_r, pipe_w, null_fd; /* splice: the pipe it fills, /dev/null it is drained to */
    uint64_t pipe_slots;     /* splice: buffers the pipe holds */
    struct rusage ru0;       /* faults at the window's opening */
};

static int is_cached_file(int w)
{
    return w == RB_CACHED || w == RB_CACHED_STREAM || w == RB_READV || w == RB_PREADV2_NOWAIT ||
           w == RB_IO_URING || w == RB_IO_URING_FIXED || w == RB_MMAP_CACHED || w == RB_SPLICE;
}

/* A known slowdown for calibration: `n` iterations of an empty loop the compiler cannot
 * remove. With spin == 0 the loops below pay one predicted compare per op. */
static inline void spin_for(uint64_t n)
{
    for (; n; n--)
        __asm__ volatile("" ::: "memory");
}

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int fail(char *err, size_t errlen, int e, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int e, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return e > 0 ? -e : (e == 0 ? -EIO : e);
}

/* The pipe writer is a child process, not a thread: a second thread in the reader's process
 * would make every fd lookup take a reference (the fdget slow path, ~40 ns per read here),
 * a cost a single-threaded reader never pays. It dies with its parent (PDEATHSIG). */
static void pipe_writer(int wfd, pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(0);
    static char src[PIPE_CHUNK];
    memset(src, 0x5a, sizeof(src));
    for (;;) {
        ssize_t w = write(wfd, src, sizeof(src));
        if (w < 0 && errno != EINTR)
            _exit(0); /* EPIPE once the reader closes its end */
    }
}

int rb_dio_align(const char *path, uint32_t *mem_align, uint32_t *offset_align)
{
    /* struct statx from glibc >= 2.28; the DIO fields exist from Linux 6.1 headers.
     * Read them by offset-stable names through a raw buffer so older headers build. */
    struct statx stx;
    memset(&stx, 0, sizeof(stx));
    *mem_align = 0;
    *offset_align = 0;
    if (statx(AT_FDCWD, path, 0, 0x00002000U /* STATX_DIOALIGN */, &stx) != 0)
        return -errno;
    if (!(stx.stx_mask & 0x00002000U))
        return 0;
    /* stx_dio_mem_align and stx_dio_offset_align follow stx_mnt_id (u64) in the
     * kernel ABI: byte offsets 0x98 and 0x9c. */
    const unsigned char *raw = (const unsigned char *)&stx;
    memcpy(mem_align, raw + 0x98, 4);
    memcpy(offset_align, raw + 0x9c, 4);
    return 0;
}

int64_t rb_resident_pages(const char *path, int64_t *total_pages)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    size_t len = (size_t)st.st_size;
    size_t pages = (len + PAGE - 1) / PAGE;
    *total_pages = (int64_t)pages;
    if (len == 0) {
        close(fd);
        return 0;
    }
    void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return -errno;
    unsigned char *vec = malloc(pages);
    if (!vec) {
        munmap(m, len);
        return -ENOMEM;
    }
    int64_t resident = 0;
    if (mincore(m, len, vec) == 0) {
        for (size_t i = 0; i < pages; i++)
            resident += vec[i] & 1;
    } else {
        resident = -errno;
    }
    free(vec);
    munmap(m, len);
    return resident;
}

/* Of `n` pages spread evenly over [off, off + len) of `fd`'s file, how many are in the page
 * cache (mincore on a PROT_READ mapping; the mapping is never touched, so it faults nothing
 * in, and it is gone again before any timed loop). *sampled gets the count checked.
 * Returns >= 0 or a negative errno. */
static int64_t resident_sample(int fd, uint64_t off, uint64_t len, unsigned n, unsigned *sampled)
{
    *sampled = 0;
    if (len == 0)
        return 0;
    uint64_t first = off / PAGE, pages = (off + len + PAGE - 1) / PAGE - first;
    if (n > pages)
        n = (unsigned)pages;
    void *m = mmap(NULL, (size_t)(pages * PAGE), PROT_READ, MAP_SHARED, fd, (off_t)(first * PAGE));
    if (m == MAP_FAILED)
        return -errno;
    int64_t resident = 0;
    for (unsigned i = 0; i < n; i++) {
        unsigned char v = 0;
        uint64_t pg = (uint64_t)i * pages / n; /* first, ..., near the last page */
        if (mincore((char *)m + pg * PAGE, PAGE, &v) != 0) {
            resident = -errno;
            break;
        }
        resident += v & 1;
    }
    munmap(m, (size_t)(pages * PAGE));
    *sampled = n;
    return resident;
}

/* Why the kernel refuses io_uring here, for a refusal message (errno e from io_uring_setup). */
static void io_uring_reason(int e, char *err, size_t errlen)
{
    int disabled = -1;
    FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "r");
    if (f) {
        if (fscanf(f, "%d", &disabled) != 1)
            disabled = -1;
        fclose(f);
    }
    int seccomp = -1;
    f = fopen("/proc/self/status", "r");
    if (f) {
        char line[256];
        while (fgets(line, sizeof(line), f))
            if (sscanf(line, "Seccomp: %d", &seccomp) == 1)
                break;
        fclose(f);
    }
    const char *why;
    if (e == ENOSYS)
        why = seccomp > 0 ? "ENOSYS: the kernel has no io_uring (CONFIG_IO_URING off), or this "
                            "process's seccomp filter returns ENOSYS for io_uring_setup"
                          : "ENOSYS: the kernel has no io_uring (CONFIG_IO_URING off)";
    else if (e == EPERM && disabled == 2)
        why = "EPERM: kernel.io_uring_disabled = 2 (io_uring is disabled for every process)";
    else if (e == EPERM && disabled == 1)
        why = "EPERM: kernel.io_uring_disabled = 1 (only CAP_SYS_ADMIN or members of "
              "kernel.io_uring_group may create rings)";
    else if (e == EPERM)
        why = seccomp > 0 ? "EPERM: this process's seccomp filter denies io_uring_setup"
                          : "EPERM: an LSM policy denies io_uring_setup";
    else
        why = strerror(e);
    snprintf(err, errlen, "io_uring refused: io_uring_setup failed with %s (errno %d; "
             "kernel.io_uring_disabled = %d, Seccomp: %d)", why, e, disabled, seccomp);
}

static void ring_close(struct ring *r)
{
    if (r->sqes && r->sqes != MAP_FAILED)
        munmap(r->sqes, r->sqes_len);
    if (r->cq_map && r->cq_map != MAP_FAILED && r->cq_map != r->sq_map)
        munmap(r->cq_map, r->cq_len);
    if (r->sq_map && r->sq_map != MAP_FAILED)
        munmap(r->sq_map, r->sq_len);
    if (r->fd >= 0)
        close(r->fd);
    memset(r, 0, sizeof(*r));
    r->fd = -1;
}

/* 0, or -(RB_REFUSED + errno) when io_uring_setup is refused, or -errno. */
static int ring_open(struct ring *r, char *err, size_t errlen)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    memset(r, 0, sizeof(*r));
    r->fd = (int)syscall(__NR_io_uring_setup, 1, &p);
    if (r->fd < 0) {
        int e = errno;
        r->fd = -1;
        io_uring_reason(e, err, errlen);
        return -(RB_REFUSED + e);
    }
    r->sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    r->cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    int single = (p.features & IORING_FEAT_SINGLE_MMAP) != 0;
    if (single && r->cq_len > r->sq_len)
        r->sq_len = r->cq_len;
    r->sq_map = mmap(NULL, r->sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
                     IORING_OFF_SQ_RING);
    if (r->sq_map == MAP_FAILED)
        goto fail;
    r->cq_map = single ? r->sq_map
                       : mmap(NULL, r->cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                              r->fd, IORING_OFF_CQ_RING);
    if (r->cq_map == MAP_FAILED)
        goto fail;
    r->sqes_len = p.sq_entries * sizeof(struct io_uring_sqe);
    r->sqes = mmap(NULL, r->sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
                   IORING_OFF_SQES);
    if (r->sqes == MAP_FAILED)
        goto fail;
    char *sq = r->sq_map, *cq = r->cq_map;
    r->sq_tail = (unsigned *)(sq + p.sq_off.tail);
    r->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
    r->sq_array = (unsigned *)(sq + p.sq_off.array);
    r->cq_head = (unsigned *)(cq + p.cq_off.head);
    r->cq_tail = (unsigned *)(cq + p.cq_off.tail);
    r->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
    r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
    return 0;
fail: {
    int e = errno;
    snprintf(err, errlen, "io_uring: mmap of the rings failed: %s", strerror(e));
    ring_close(r);
    return -e;
}
}

/* One read SQE submitted and waited for: the CQE's result (bytes or -errno), or the
 * io_uring_enter failure as -errno - RB_REFUSED*2 (never a valid result). */
static inline int64_t ring_read(struct ring *r, uint8_t opcode, int fd, char *buf,
                                uint32_t len, uint64_t off)
{
    unsigned tail = *r->sq_tail; /* only this thread writes the SQ tail */
    unsigned idx = tail & *r->sq_mask;
    struct io_uring_sqe *sqe = &r->sqes[idx];
    memset(sqe, 0, sizeof(*sqe));
    sqe->opcode = opcode;
    sqe->fd = fd;
    sqe->addr = (uint64_t)(uintptr_t)buf;
    sqe->len = len;
    sqe->off = off;
    sqe->buf_index = 0; /* READ_FIXED: the one registered buffer */
    r->sq_array[idx] = idx;
    __atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
    int n = (int)syscall(__NR_io_uring_enter, r->fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0);
    if (n != 1)
        return -(int64_t)(n < 0 ? errno : EIO) - 2 * RB_REFUSED;
    unsigned head = *r->cq_head;
    if (head == __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE))
        return -(int64_t)EIO - 2 * RB_REFUSED; /* waited for one and none is there */
    int64_t res = r->cqes[head & *r->cq_mask].res;
    __atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
    return res;
}

int rb_io_uring_probe(char *err, size_t errlen)
{
    struct ring r;
    int rc = ring_open(&r, err, errlen);
    if (rc == 0)
        ring_close(&r);
    return rc;
}

/* Name of the filesystem holding `fd`, for error messages. */
static const char *fs_name(int fd, char *tmp, size_t len)
{
    struct statfs sf;
    if (fstatfs(fd, &sf) != 0)
        return "unknown";
    switch ((unsigned long)sf.f_type) {
    case 0x01021994UL:
        return "tmpfs";
    case 0x858458f6UL:
        return "ramfs";
    case 0x794c7630UL:
        return "overlay";
    case 0x65735546UL:
        return "fuse";
    case 0xef53UL:
        return "ext4";
    case 0x58465342UL:
        return "xfs";
    case 0x9123683eUL:
        return "btrfs";
    }
    snprintf(tmp, len, "f_type 0x%lx", (unsigned long)sf.f_type);
    return tmp;
}

/* Untimed, at open: O_DIRECT must not go through the page cache. Drop the first blocks,
 * prove they are gone, read them with O_DIRECT, and require they are still not cached
 * (tmpfs, since Linux 6.6, accepts O_DIRECT and serves it as a page-cache copy). */
static int check_direct_bypass(struct rb_ctx *c, uint64_t align, char *err, size_t errlen)
{
    char fsb[32];
    uint64_t len = c->file_size < DIO_PROBE_BYTES ? c->file_size : DIO_PROBE_BYTES;
    len = len / align * align;
    if (len == 0)
        return 0; /* smaller than one block: rb_run reports that */
    /* Whole file, after a flush: dirty pages cannot be dropped, and a large folio reaching past
     * a ranged DONTNEED is kept whole (ext4 uses large folios). */
    fdatasync(c->fd);
    int e = posix_fadvise(c->fd, 0, 0, POSIX_FADV_DONTNEED);
    if (e)
        return fail(err, errlen, e, "workload direct: fadvise(DONTNEED): %s", strerror(e));
    unsigned n = 0;
    int64_t before = resident_sample(c->fd, 0, len, RESIDENCY_SAMPLES, &n);
    if (before < 0)
        return fail(err, errlen, (int)-before, "workload direct: cannot check the page cache "
                    "(mmap/mincore: %s)", strerror((int)-before));
    if (before > 0)
        return fail(err, errlen, EOPNOTSUPP, "direct: %lld of %u sampled pages still resident after "
                    "POSIX_FADV_DONTNEED on %s (it does not evict), so O_DIRECT cannot be shown "
                    "to bypass the page cache; no timing recorded", (long long)before, n, fs_name(c->fd, fsb, sizeof(fsb)));
    void *tmp = NULL;
    if (posix_memalign(&tmp, align > PAGE ? align : PAGE, len) != 0)
        return fail(err, errlen, ENOMEM, "workload direct: out of memory");
    ssize_t r = pread(c->fd, tmp, len, 0);
    e = errno;
    free(tmp);
    if (r != (ssize_t)len)
        return fail(err, errlen, r < 0 ? e : EIO, "workload direct: probe read of %llu bytes "
                    "with O_DIRECT %s", (unsigned long long)len, r < 0 ? strerror(e) : "came up short");
    int64_t after = resident_sample(c->fd, 0, len, RESIDENCY_SAMPLES, &n);
    if (after < 0)
        return fail(err, errlen, (int)-after, "workload direct: cannot check the page cache "
                    "(mmap/mincore: %s)", strerror((int)-after));
    if (after > 0)
        return fail(err, errlen, EOPNOTSUPP, "direct: an O_DIRECT read left %lld of %u sampled "
                    "pages in the page cache: %s serves O_DIRECT through the page cache, not as "
                    "direct I/O; no timing recorded", (long long)after, n,
                    fs_name(c->fd, fsb, sizeof(fsb)));
    return 0;
}

int rb_open(int workload, const char *path, uint64_t size, uint32_t buf_offset,
            uint64_t io_align, struct rb_ctx **out, char *err, size_t errlen)
{
    if (workload < 0 || workload >= RB_NWORKLOADS)
        return fail(err, errlen, EINVAL, "unknown workload id %d", workload);
    const char *wl = wl_names[workload];
    if (size == 0)
        return fail(err, errlen, EINVAL, "workload %s: size must be > 0", wl);
    struct rb_ctx *c = calloc(1, sizeof(*c));
    if (!c)
        return fail(err, errlen, ENOMEM, "workload %s: out of memory", wl);
    c->workload = workload;
    c->size = size;
    c->fd = -1;
    c->wfd = -1;
    c->ring.fd = -1;
    c->pipe_r = c->pipe_w = c->null_fd = -1;
    if ((workload == RB_MMAP_CACHED || workload == RB_MMAP_FAULT) && size % PAGE) {
        free(c);
        return fail(err, errlen, EINVAL, "workload %s: size %llu is not a multiple of the "
                    "page size %u", wl, (unsigned long long)size, PAGE);
    }
    if (workload == RB_READV && size < 2) {
        free(c);
        return fail(err, errlen, EINVAL, "workload readv: size must be >= 2 (two iovecs)");
    }

    /* User buffer: 4 KiB aligned (DIO needs more at most io_align), then offset by
     * buf_offset bytes to test destination misalignment. Prefaulted so first-touch
     * clear_page never lands inside a timed loop. */
    size_t align = io_align > PAGE ? io_align : PAGE;
    c->mem_len = (size + buf_offset + align + PAGE - 1) / PAGE * PAGE;
    if (posix_memalign((void **)&c->mem, align, c->mem_len) != 0) {
        free(c);
        return fail(err, errlen, ENOMEM, "workload %s: cannot allocate %llu-byte buffer", wl,
                    (unsigned long long)size);
    }
    memset(c->mem, 0, c->mem_len);
    c->buf = c->mem + buf_offset;

    int rc = 0;
    if (workload == RB_PIPE) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) != 0) {
            rc = fail(err, errlen, errno, "workload pipe: pipe2 failed: %s", strerror(errno));
            goto out_free;
        }
        c->fd = p[0];
        c->wfd = p[1];
        /* As large as allowed, so the writer stays ahead of the reader. */
        int want = 1 << 20;
        FILE *f = fopen("/proc/sys/fs/pipe-max-size", "r");
        if (f) {
            if (fscanf(f, "%d", &want) != 1)
                want = 1 << 20;
            fclose(f);
        }
        if (fcntl(c->wfd, F_SETPIPE_SZ, want) < 0) {
            rc = fail(err, errlen, errno, "workload pipe: F_SETPIPE_SZ(%d) failed: %s", want,
                      strerror(errno));
            goto out_close;
        }
        pid_t parent = getpid();
        pid_t pid = fork();
        if (pid < 0) {
            rc = fail(err, errlen, errno, "workload pipe: cannot fork the writer: %s", strerror(errno));
            goto out_close;
        }
        if (pid == 0) {
            close(c->fd);
            pipe_writer(c->wfd, parent);
        }
        c->writer = pid;
        close(c->wfd); /* the reader keeps only its end: EOF if the writer dies */
        c->wfd = -1;
        *out = c;
        return 0;
    }

    int flags = O_RDONLY | O_CLOEXEC | (workload == RB_DIRECT ? O_DIRECT : 0);
    c->fd = open(path, flags);
    if (c->fd < 0) {
        rc = fail(err, errlen, errno, "workload %s: open(%s%s) failed: %s", wl, path,
                  workload == RB_DIRECT ? ", O_DIRECT" : "", strerror(errno));
        goto out_free;
    }
    struct stat st;
    if (fstat(c->fd, &st) != 0) {
        rc = fail(err, errlen, errno, "workload %s: fstat(%s): %s", wl, path, strerror(errno));
        goto out_close;
    }
    c->file_size = (uint64_t)st.st_size;
    if (c->file_size < size) {
        rc = fail(err, errlen, EINVAL, "workload %s: data file %s has %llu bytes, fewer than size %llu",
                  wl, path, (unsigned long long)c->file_size, (unsigned long long)size);
        goto out_close;
    }
    if (workload == RB_UNCACHED) {
        /* Readahead off: each op must fault exactly its own page(s) in. */
        int e = posix_fadvise(c->fd, 0, 0, POSIX_FADV_RANDOM);
        if (e) {
            rc = fail(err, errlen, e, "workload uncached: fadvise(RANDOM): %s", strerror(e));
            goto out_close;
        }
        /* DONTNEED cannot drop dirty pages: make sure none are left from the file's creation. */
        fdatasync(c->fd);
        c->stride = (size + PAGE - 1) / PAGE * PAGE;
    } else if (workload == RB_DIRECT) {
        uint64_t a = io_align ? io_align : 512;
        c->stride = (size + a - 1) / a * a;
        rc = check_direct_bypass(c, a, err, errlen);
        if (rc)
            goto out_close;
    }
    if (is_cached_file(workload)) {
        /* Warm the page cache with the bytes the loop will read, in 1 MiB chunks (a 256 MiB
         * stream file read 17 bytes at a time would take seconds per worker process). */
        uint64_t upto = workload == RB_CACHED ? size : c->file_size;
        size_t chunk = 1u << 20;
        char *tmp = malloc(chunk);
        if (!tmp) {
            rc = fail(err, errlen, ENOMEM, "workload %s: out of memory", wl);
            goto out_close;
        }
        for (uint64_t off = 0; off < upto;) {
            size_t want = upto - off < chunk ? (size_t)(upto - off) : chunk;
            ssize_t r = pread(c->fd, tmp, want, (off_t)off);
            if (r <= 0) {
                rc = fail(err, errlen, r < 0 ? errno : EIO, "workload %s: warm-up pread at %llu: %s", wl,
                          (unsigned long long)off, r < 0 ? strerror(errno) : "unexpected EOF");
                free(tmp);
                goto out_close;
            }
            off += (uint64_t)r;
        }
        free(tmp);
        /* The user buffer starts with the bytes a cached op returns (tests compare them). */
        if (workload == RB_CACHED && pread(c->fd, c->buf, size, 0) != (ssize_t)size) {
            rc = fail(err, errlen, EIO, "workload cached: warm-up pread of %llu bytes came up short",
                      (unsigned long long)size);
            goto out_close;
        }
    }
    if (workload == RB_IO_URING || workload == RB_IO_URING_FIXED) {
        rc = ring_open(&c->ring, err, errlen);
        if (rc)
            goto out_close;
        if (workload == RB_IO_URING_FIXED) {
            struct iovec iov = {c->buf, size};
            if (syscall(__NR_io_uring_register, c->ring.fd, IORING_REGISTER_BUFFERS, &iov, 1)) {
                int e = errno;
                rc = fail(err, errlen, e, "workload io_uring-fixed: registering the %llu-byte "
                          "buffer failed: %s%s", (unsigned long long)size, strerror(e),
                          e == ENOMEM ? " (RLIMIT_MEMLOCK too low?)" : "");
                goto out_close;
            }
        }
    }
    if (workload == RB_MMAP_CACHED || workload == RB_MMAP_FAULT) {
        c->map_len = (size_t)(c->file_size / PAGE * PAGE);
        c->map = mmap(NULL, c->map_len, PROT_READ, MAP_SHARED, c->fd, 0);
        if (c->map == MAP_FAILED) {
            c->map = NULL;
            rc = fail(err, errlen, errno, "workload %s: mmap of %s failed: %s", wl, path,
                      strerror(errno));
            goto out_close;
        }
        if (workload == RB_MMAP_CACHED) {
            /* Map every page of [0, size) now (the page cache holds them: warmed above), so
             * the timed touches fault nothing; rb_run checks getrusage that they did not. */
            volatile char sink = 0;
            for (uint64_t off = 0; off < size; off += PAGE)
                sink += c->map[off];
            (void)sink;
            (void)now_ns(); /* the vDSO's data page too: its first read is a minor fault */
        } else {
            /* Each first touch must read its own page: no fault-around readahead. */
            int e = posix_fadvise(c->fd, 0, 0, POSIX_FADV_RANDOM);
            if (e || madvise(c->map, c->map_len, MADV_RANDOM)) {
                rc = fail(err, errlen, e ? e : errno, "workload mmap-fault: fadvise/madvise "
                          "(RANDOM): %s", strerror(e ? e : errno));
                goto out_close;
            }
            fdatasync(c->fd); /* DONTNEED cannot drop dirty pages */
            c->stride = size;
        }
    }
    if (workload == RB_SPLICE) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) != 0) {
            rc = fail(err, errlen, errno, "workload splice: pipe2 failed: %s", strerror(errno));
            goto out_close;
        }
        c->pipe_r = p[0];
        c->pipe_w = p[1];
        int want = 1 << 20;
        FILE *f = fopen("/proc/sys/fs/pipe-max-size", "r");
        if (f) {
            if (fscanf(f, "%d", &want) != 1)
                want = 1 << 20;
            fclose(f);
        }
        int got = fcntl(c->pipe_w, F_SETPIPE_SZ, want);
        if (got < 0) {
            rc = fail(err, errlen, errno, "workload splice: F_SETPIPE_SZ(%d) failed: %s", want,
                      strerror(errno));
            goto out_close;
        }
        /* A page-cache splice adds one pipe buffer per page it spans. */
        c->pipe_slots = (uint64_t)got / PAGE;
        uint64_t need = (size + PAGE - 1) / PAGE;
        if (need > c->pipe_slots) {
            rc = fail(err, errlen, EINVAL, "workload splice: size %llu spans %llu pages, the "
                      "pipe holds %llu buffers (fs.pipe-max-size = %d)", (unsigned long long)size,
                      (unsigned long long)need, (unsigned long long)c->pipe_slots, got);
            goto out_close;
        }
        c->null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (c->null_fd < 0) {
            rc = fail(err, errlen, errno, "workload splice: open(/dev/null): %s", strerror(errno));
            goto out_close;
        }
    }
    *out = c;
    return 0;

out_close:
    if (c->map)
        munmap(c->map, c->map_len);
    ring_close(&c->ring);
    if (c->pipe_r >= 0)
        close(c->pipe_r);
    if (c->pipe_w >= 0)
        close(c->pipe_w);
    if (c->null_fd >= 0)
        close(c->null_fd);
    if (c->wfd >= 0)
        close(c->wfd);
    if (c->fd >= 0)
        close(c->fd);
out_free:
    free(c->mem);
    free(c);
    return rc;
}

static int evict(struct rb_ctx *c, char *err, size_t errlen)
{
    int e = posix_fadvise(c->fd, 0, 0, POSIX_FADV_DONTNEED);
    if (e)
        return fail(err, errlen, e, "workload uncached: fadvise(DONTNEED): %s", strerror(e));
    return 0;
}

static void ctl(const int *fds, int n, unsigned long req)
{
    for (int i = 0; i < n; i++)
        ioctl(fds[i], req, PERF_IOC_FLAG_GROUP);
}

/* The timed window: faults counted from before it opens (getrusage, a syscall, outside the
 * perf counters and the gate), perf counters on, the gate open; closed in reverse. */
static void win_open(struct rb_ctx *c, const int *fds, int n)
{
    getrusage(RUSAGE_THREAD, &c->ru0);
    ctl(fds, n, PERF_EVENT_IOC_ENABLE);
    if (c->gate)
        __atomic_store_n(c->gate, 1, __ATOMIC_SEQ_CST);
}

static void win_close(struct rb_ctx *c, const int *fds, int n, struct rb_result *res)
{
    if (c->gate)
        __atomic_store_n(c->gate, 0, __ATOMIC_SEQ_CST);
    ctl(fds, n, PERF_EVENT_IOC_DISABLE);
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    res->major_faults += (uint64_t)(ru.ru_majflt - c->ru0.ru_majflt);
    res->minor_faults += (uint64_t)(ru.ru_minflt - c->ru0.ru_minflt);
}

/* Untimed, between splice segments: empty the pipe into /dev/null. */
static int drain_pipe(struct rb_ctx *c, char *err, size_t errlen)
{
    for (;;) {
        int queued = 0;
        if (ioctl(c->pipe_r, FIONREAD, &queued) != 0)
            return fail(err, errlen, errno, "workload splice: FIONREAD: %s", strerror(errno));
        if (queued == 0)
            return 0;
        ssize_t r = splice(c->pipe_r, NULL, c->null_fd, NULL, (size_t)queued, 0);
        if (r <= 0)
            return fail(err, errlen, r < 0 ? errno : EIO, "workload splice: draining the pipe: "
                        "%s", r < 0 ? strerror(errno) : "no progress");
    }
}

/* The loops below return early on the first short or failed read: the caller
 * gets an error, never a timing over fewer bytes than asked for. */
int rb_run(struct rb_ctx *c, uint64_t loops, const int *ctl_fds, int n_ctl,
           struct rb_result *res, char *err, size_t errlen)
{
    const char *wl = wl_names[c->workload];
    const size_t size = (size_t)c->size;
    char *const buf = c->buf;
    const int fd = c->fd;
    const uint64_t spin = c->spin;
    uint64_t i = 0, syscalls = 0, t0, t1, total = 0;
    ssize_t r = 0;
    memset(res, 0, sizeof(*res));

    switch (c->workload) {
    case RB_CACHED:
        win_open(c, ctl_fds, n_ctl);
        t0 = now_ns();
        for (i = 0; i < loops; i++) {
            r = pread(fd, buf, size, 0);
            if ((size_t)r != size)
                break;
            if (spin)
                spin_for(spin);
        }
        t1 = now_ns();
        win_close(c, ctl_fds, n_ctl, res);
        total = t1 - t0;
        syscalls = i + (i < loops);
        break;

    case RB_CACHED_STREAM: {
        uint64_t pos = c->pos;
        const uint64_t fsz = c->file_size;
        win_open(c, ctl_fds, n_ctl);
        t0 = now_ns();
        for (i = 0; i < loops; i++) {
            if (pos + size > fsz) { /* wrap: once per file_size/size ops */
                lseek(fd, 0, SEEK_SET);
                pos = 0;
            }
            r = read(fd, buf, size);
            if ((size_t)r != size)
                break;
            pos += size;
            if (spin)
                spin_for(spin);
        }
        t1 = now_ns();
        win_close(c, ctl_fds, n_ctl, res);
        c->pos = pos;
        total = t1 - t0;
        syscalls = i + (i < loops);
        break;
    }

    case RB_UNCACHED:
    case RB_DIRECT: {
        /* Each op reads a different offset. Uncached: the file is evicted before each
         * timed segment, and a segment never revisits a page, so every op misses. */
        const uint64_t slots = c->file_size / c->stride;
        if (slots == 0)
            return fail(err, errlen, EINVAL, "workload %s: data file smaller than one op", wl);
        uint64_t done = 0;
        while (done < loops) {
            uint64_t seg = loops - done;
            if (c->workload == RB_UNCACHED) {
                if (seg > slots)
                    seg = slots;
                int e = evict(c, err, errlen);
                if (e)
                    return e;
                /* The pages this segment reads must really be gone, or it would time copies
                 * from the page cache under the name "uncached". Before the clock starts. */
                uint64_t span = (seg - 1) * c->stride + size;
                unsigned n = 0;
                int64_t left = resident_sample(fd, 0, span, RESIDENCY_SAMPLES, &n);
                if (left < 0)
                    return fail(err, errlen, (int)-left, "workload uncached: cannot check the "
                                "eviction (mmap/mincore: %s); no timing recorded",
                                strerror((int)-left));
                if (left > 0) {
                    char fsb[32];
                    return fail(err, errlen, EAGAIN, "uncached: %lld of %u sampled pages still "
                                "resident after POSIX_FADV_DONTNEED (%s does not evict?); no "
                                "timing recorded", (long long)left, n, fs_name(fd, fsb, sizeof(fsb)));
                }
                c->pos = 0;
                res->evictions++;
            }
            uint64_t slot = c->pos;
            win_open(c, ctl_fds, n_ctl);
            t0 = now_ns();
            for (i = 0; i < seg; i++) {
                r = pread(fd, buf, size, (off_t)(slot * c->stride));
                if ((size_t)r != size)
                    break;
                if (++slot == slots)
                    slot = 0;
                if (spin)
                    spin_for(spin);
            }
            t1 = now_ns();
            win_close(c, ctl_fds, n_ctl, res);
            c->pos = slot;
            total += t1 - t0;
            done += i;
            syscalls += i + (i < seg);
            if (i < seg)
                break;
        }
        i = done;
        break;
    }

    case RB_PIPE: {
        /* One op = `size` bytes received. A pipe may hand over less than asked for
         * when the writer has not caught up; the op then continues reading and the
         * extra calls are counted (res->syscalls > res->ops), never hidden. */
        win_open(c, ctl_fds, n_ctl);
        t0 = now_ns();
        for (i = 0; i < loops; i++) {
            size_t got = 0;
            do {
                r = read(fd, buf + got, size - got);
                syscalls++;
                if (r <= 0)
                    break;
                got += (size_t)r;
            } while (got < size);
            if (got != size)
                break;
            if (spin)
                spin_for(spin);
        }
        t1 = now_ns();
        win_close(c, ctl_fds, n_ctl, res);
        total = t1 - t0;
        break;
    }

    case RB_READV:
    case RB_PREADV2_NOWAIT: {
        /* readv: two iovecs splitting size; preadv2-nowait: one, with RWF_NOWAIT. */
        const int vec = c->workload == RB_READV;
        const size_t first = vec ? size / 2 : size;
        struct iovec iov[2] = {{buf, first}, {buf + first, size - first}};
        uint64_t eagains = 0;
        win_open(c, ctl_fds, n_ctl);
        t0 = now_ns();
        if (vec) {
            for (i = 0; i < loops; i++) {
                r = preadv(fd, iov, 2, 0);
                if ((size_t)r != size)
                    break;
                if (spin)
                    spin_for(spin);
            }
        } else {
            for (i = 0; i < loops; i++) {
                r = preadv2(fd, iov, 1, 0, RWF_NOWAIT);
                if ((size_t)r != size) {
                    if (r < 0 && errno == EAGAIN) {
                        eagains++; /* counted, and the batch fails below: never a timing */
                        continue;
                    }
                    break;
                }
                if (spin)
                    spin_for(spin);
            }
        }
        t1 = now_ns();
        win_close(c, ctl_fds, n_ctl, res);
        total = t1 - t0;
        syscalls = i + (i < loops);
        res->eagains = eagains;
        if (eagains && i == loops) {
            res->ns = total;
            res->ops = loops - eagains;
            res->syscalls = syscalls;
            return fail(err, errlen, EAGAIN, "workload preadv2-nowait: %llu of %llu reads "
                        "returned EAGAIN (RWF_NOWAIT: the data was not all in the page cache, "
                        "or the read would have blocked); a batch with EAGAINs is no timing "
                        "of cached reads", (unsigned long long)eagains, (unsigned long long)loops);
        }
        break;
    }

    case RB_IO_URING:
    case RB_IO_URING_FIXED: {
        const uint8_t opc = c->workload == RB_IO_URING ? IORING_OP_READ : IORING_OP_READ_FIXED;
        int64_t got = 0;
        win_open(c, ctl_fds, n_ctl);
        t0 = now_ns();
        for (i = 0; i < loops; i++) {
            got = ring_read(&c->ring, opc, fd, buf, (uint32_t)size, 0);
            if (got != (int64_t)size)
                break;
            if (spin)
                spin_for(spin);
        }
        t1 = now_ns();
        win_close(c, ctl_fds, n_ctl, res);
        total = t1 - t0;
        syscalls = i + (i < loops);
        if (i < loops) {
            res->ns = total;
            res->ops = i;
            res->syscalls = syscalls;
            if (got <= -2 * (int64_t)RB_REFUSED) {
                int e = (int)(-got - 2 * RB_REFUSED);
                return fail(err, errlen, e, "workload %s: io_uring_enter for read #%llu failed: "
                            "%s", wl, (unsigned long long)i, strerror(e));
            }
            if (got < 0)
                return fail(err, errlen, (int)-got, "workload %s: read #%llu of %llu bytes "
                            "failed: its CQE carries %s", wl, (unsigned long long)i,
                            (unsigned long long)size, strerror((int)-got));
            return fail(err, errlen, EIO, "workload %s: short read #%llu: %lld of %llu bytes",
                        wl, (unsigned long long)i, (long long)got, (unsigned long long)size);
        }
        break;
    }

    case RB_MMAP_CACHED: {
        /* One load per page of [0, size): the pages are mapped, so no kernel entry at all. */
        const char *m = c->map;
        uint64_t acc = 0;
        win_open(c, ctl_fds, n_ctl);
        t0 = now_ns();
        for (i = 0; i < loops; i++) {
            for (uint64_t off = 0; off < size; off += PAGE)
                acc += (unsigned char)*(volatile const char *)(m + off);
            if (spin)
                spin_for(spin);
        }
        t1 = now_ns();
        win_close(c, ctl_fds, n_ctl, res);
        total = t1 - t0;
        c->pos += acc; /* keep the loads */
        if (res->major_faults || res->minor_faults)
            return fail(err, errlen, EAGAIN, "workload mmap-cached: %llu minor and %llu major "
                        "page faults inside the timed loop: the mapping's pages were not all "
                        "mapped; no timing recorded", (unsigned long long)res->minor_faults,
                        (unsigned long long)res->major_faults);
        break;
    }

    case RB_MMAP_FAULT: {
        /* Each op first-touches size/PAGE pages of evicted file data: one major fault each.
         * Before each segment, untimed: the mapping's page tables are zapped (mapped pages
         * cannot be evicted), the file evicted, and the eviction proven with mincore. */
        const uint64_t slots = c->map_len / size;
        if (slots == 0)
            return fail(err, errlen, EINVAL, "workload %s: data file smaller than one op", wl);
        uint64_t done = 0, acc = 0;
        while (done < loops) {
            uint64_t seg = loops - done < slots ? loops - done : slots;
            if (madvise(c->map, c->map_len, MADV_DONTNEED))
                return fail(err, errlen, errno, "workload mmap-fault: madvise(DONTNEED): %s",
                            strerror(errno));
            int e = evict(c, err, errlen);
            if (e)
                return e;
            unsigned n = 0;
            int64_t left = resident_sample(fd, 0, seg * size, RESIDENCY_SAMPLES, &n);
            if (left < 0)
                return fail(err, errlen, (int)-left, "workload mmap-fault: cannot check the "
                            "eviction (mmap/mincore: %s); no timing recorded", strerror((int)-left));
            if (left > 0) {
                char fsb[32];
                return fail(err, errlen, EAGAIN, "mmap-fault: %lld of %u sampled pages still "
                            "resident after POSIX_FADV_DONTNEED (%s does not evict?); no timing "
                            "recorded", (long long)left, n, fs_name(fd, fsb, sizeof(fsb)));
            }
            res->evictions++;
            const uint64_t faults0 = res->major_faults + res->minor_faults;
            const char *base = c->map;
            win_open(c, ctl_fds, n_ctl);
            t0 = now_ns();
            for (i = 0; i < seg; i++) {
                for (uint64_t off = 0; off < size; off += PAGE)
                    acc += (unsigned char)*(volatile const char *)(base + off);
                base += size;
                if (spin)
                    spin_for(spin);
            }
            t1 = now_ns();
            win_close(c, ctl_fds, n_ctl, res);
            total += t1 - t0;
            done += seg;
            /* Every first touch must fault (the page was not mapped). Most are accounted major;
             * a fault that retried after its I/O (the per-VMA-lock path falling back to the
             * mmap lock) is accounted minor, so the major count alone is no invariant. */
            uint64_t want = seg * (size / PAGE);
            uint64_t got = res->major_faults + res->minor_faults - faults0;
            if (got != want)
                return fail(err, errlen, EAGAIN, "workload mmap-fault: %llu first touches of "
                            "evicted pages made %llu page faults (one per page expected: pages "
                            "were mapped or the loop faulted elsewhere); no timing recorded",
                            (unsigned long long)want, (unsigned long long)got);
        }
        c->pos += acc;
        i = done;
        /* Leave no page mapped: mapped pages cannot be evicted, by this loop's next batch or
         * by another loop on the same file (uncached, direct). */
        madvise(c->map, c->map_len, MADV_DONTNEED);
        break;
    }

    case RB_SPLICE: {
        /* One op = one splice of size bytes from offset 0 of the resident file into the
         * pipe. Segments fill the pipe's buffers; it is drained, untimed, before each. */
        const uint64_t per_seg = c->pipe_slots / ((size + PAGE - 1) / PAGE);
        uint64_t done = 0;
        while (done < loops) {
            uint64_t seg = loops - done < per_seg ? loops - done : per_seg;
            int e = drain_pipe(c, err, errlen);
            if (e)
                return e;
            res->drains++;
            win_open(c, ctl_fds, n_ctl);
            t0 = now_ns();
            for (i = 0; i < seg; i++) {
                loff_t off = 0;
                r = splice(fd, &off, c->pipe_w, NULL, size, 0);
                if ((size_t)r != size)
                    break;
                if (spin)
                    spin_for(spin);
            }
            t1 = now_ns();
            win_close(c, ctl_fds, n_ctl, res);
            total += t1 - t0;
            done += i;
            syscalls += i + (i < seg);
            if (i < seg)
                break;
        }
        i = done;
        break;
    }
    }

    res->ns = total;
    res->ops = i;
    res->syscalls = syscalls;
    res->bytes = i * c->size;
    if (i < loops) {
        if (r < 0)
            return fail(err, errlen, errno, "workload %s: read #%llu of %llu bytes failed: %s (errno %d)",
                        wl, (unsigned long long)i, (unsigned long long)c->size, strerror(errno), errno);
        if (c->workload == RB_PIPE && r == 0)
            return fail(err, errlen, EPIPE, "workload pipe: the writer process is gone (EOF on read #%llu)",
                        (unsigned long long)i);
        return fail(err, errlen, EIO, "workload %s: short read #%llu: %zd of %llu bytes", wl,
                    (unsigned long long)i, r, (unsigned long long)c->size);
    }
    return 0;
}

void *rb_buffer(struct rb_ctx *c) { return c->buf; }

void rb_set_spin(struct rb_ctx *c, uint64_t iters) { c->spin = iters; }

uint64_t rb_null_syscall_ns(uint64_t loops)
{
    /* A syscall number no kernel defines: entry, the ENOSYS dispatch, exit. Nothing else. */
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < loops; i++)
        syscall(100000);
    return now_ns() - t0;
}

uint64_t rb_spin_ns(uint64_t iters, uint64_t reps)
{
    uint64_t t0 = now_ns();
    for (uint64_t r = 0; r < reps; r++)
        spin_for(iters);
    return now_ns() - t0;
}

void rb_close(struct rb_ctx *c)
{
    if (!c)
        return;
    if (c->writer > 0) {
        /* Closing the read end ends the writer with EPIPE; SIGKILL makes sure. */
        close(c->fd);
        c->fd = -1;
        kill(c->writer, SIGKILL);
        waitpid(c->writer, NULL, 0);
    }
    if (c->map)
        munmap(c->map, c->map_len);
    ring_close(&c->ring);
    if (c->pipe_r >= 0)
        close(c->pipe_r);
    if (c->pipe_w >= 0)
        close(c->pipe_w);
    if (c->null_fd >= 0)
        close(c->null_fd);
    if (c->fd >= 0)
        close(c->fd);
    if (c->wfd >= 0)
        close(c->wfd);
    free(c->mem);
    free(c);
}

void rb_set_gate(struct rb_ctx *c, volatile uint32_t *gate) { c->gate = gate; }
