/* point_counter.c — independent count of how often a kernel tracepoint or function fires per
 * read() call, to cross-check readbench's hook-point atlas (its own BPF program and libbpf
 * loader: no readbench code).
 *
 *   point_counter POINT WORKLOAD FILE SIZE N
 *
 * POINT: a tracepoint name (attached as a raw tracepoint), or fentry:FUNC / kprobe:FUNC for a
 * kernel function.
 *
 * WORKLOAD:
 *   cached    pread(fd, buf, SIZE, 0) N times; FILE is read once first so it is resident
 *   uncached  N preads of SIZE at distinct page-aligned offsets (stride: SIZE rounded up to
 *             pages), each after posix_fadvise(DONTNEED) of the whole file; FADV_RANDOM at
 *             open. FILE must hold N strides.
 *   pipe      a forked child writes a pattern into a pipe forever; an op is read() calls until
 *             SIZE bytes arrived (FILE is ignored: pass "-")
 *   readv     preadv(fd, two iovecs halving SIZE, 0) of a resident FILE
 *   io_uring  one IORING_OP_READ of SIZE at 0 (liburing: prep, submit_and_wait, cqe_seen)
 *   io_uring-fixed  the same with IORING_OP_READ_FIXED into a registered buffer
 *   mmap-fault first touch of SIZE/4096 pages of an evicted mapping per op (MADV_RANDOM; the
 *             whole file is unmapped from the page tables and dropped before each op)
 *   splice    splice(fd, &0, pipe, SIZE) of a resident FILE; the pipe is emptied (read into a
 *             scratch buffer, outside phase 2) after each op
 *
 * Warm up first, then attach the raw_tp program to TRACEPOINT, do the N operations, read the
 * counter (mmapped .bss, no syscall), detach. Prints one JSON object:
 *   count          firings in this process during the N operations
 *   count_in_read  of those, firings inside the read calls themselves (they differ only
 *                  where an op makes other syscalls: uncached's fadvise)
 *   per_read_call  count / read_calls
 * Raw tracepoints are attached by name through bpf(), so no tracefs is needed.
 *
 * Exit: 0 ok, 1 I/O error, 2 bad usage, 3 BPF load/attach failed. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <liburing.h>

#include "point_counter.skel.h"

#define PAGE 4096UL

enum workload { CACHED, UNCACHED, PIPE, READV, URING, URING_FIXED, MMAP_FAULT, SPLICE };

struct ctx {
	enum workload wl;
	int fd;		   /* the file, or the pipe's read end */
	pid_t writer;	   /* pipe: the writer child */
	char *buf;
	size_t size;
	size_t stride;	   /* uncached: distance between offsets */
	long slots;	   /* uncached: strides the file holds */
	volatile __u32 *phase; /* the BPF program's counting switch (mmapped .bss) */
	long read_calls;
	struct io_uring ring;  /* io_uring workloads */
	char *map;             /* mmap-fault: the mapping */
	size_t map_len;
	int pfd[2];            /* splice: the pipe */
	char *scratch;         /* splice: where the pipe is emptied */
};

static void set_phase(struct ctx *c, __u32 p)
{
	if (c->phase)
		*c->phase = p; /* volatile store, ordered before the next syscall */
}

static void die_io(const char *what)
{
	fprintf(stderr, "%s: %s\n", what, strerror(errno));
	exit(1);
}

static void xpread(struct ctx *c, off_t off)
{
	set_phase(c, 2);
	ssize_t r = pread(c->fd, c->buf, c->size, off);
	set_phase(c, 1);
	c->read_calls++;
	if (r != (ssize_t)c->size) {
		if (r >= 0)
			errno = EIO; /* a short read: the file is smaller than promised */
		die_io("pread");
	}
}

/* One operation; i picks the uncached offset. */
static void op(struct ctx *c, long i)
{
	switch (c->wl) {
	case CACHED:
		xpread(c, 0);
		break;
	case UNCACHED:
		/* drop the whole file's cache so this read must go to the device */
		if (posix_fadvise(c->fd, 0, 0, POSIX_FADV_DONTNEED))
			die_io("posix_fadvise(DONTNEED)");
		xpread(c, (off_t)(i % c->slots) * (off_t)c->stride);
		break;
	case READV: {
		struct iovec v[2] = {{c->buf, c->size / 2}, {c->buf + c->size / 2, c->size - c->size / 2}};
		set_phase(c, 2);
		ssize_t r = preadv(c->fd, v, 2, 0);
		set_phase(c, 1);
		c->read_calls++;
		if (r != (ssize_t)c->size) {
			if (r >= 0)
				errno = EIO;
			die_io("preadv");
		}
		break;
	}
	case URING:
	case URING_FIXED: {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&c->ring);
		if (!sqe) {
			errno = EBUSY;
			die_io("io_uring_get_sqe");
		}
		if (c->wl == URING)
			io_uring_prep_read(sqe, c->fd, c->buf, (unsigned)c->size, 0);
		else
			io_uring_prep_read_fixed(sqe, c->fd, c->buf, (unsigned)c->size, 0, 0);
		set_phase(c, 2);
		int e = io_uring_submit_and_wait(&c->ring, 1);
		set_phase(c, 1);
		c->read_calls++;
		if (e < 0) {
			errno = -e;
			die_io("io_uring_submit_and_wait");
		}
		struct io_uring_cqe *cqe;
		e = io_uring_peek_cqe(&c->ring, &cqe);
		if (e < 0 || cqe->res != (int)c->size) {
			errno = e < 0 ? -e : (cqe->res < 0 ? -cqe->res : EIO);
			die_io("io_uring read");
		}
		io_uring_cqe_seen(&c->ring, cqe);
		break;
	}
	case MMAP_FAULT: {
		long slot = i % c->slots;
		if (madvise(c->map, c->map_len, MADV_DONTNEED) ||
		    posix_fadvise(c->fd, 0, 0, POSIX_FADV_DONTNEED))
			die_io("evicting the mapping");
		volatile char sink = 0;
		char *base = c->map + (size_t)slot * c->size;
		set_phase(c, 2);
		for (size_t off = 0; off < c->size; off += PAGE)
			sink += base[off];
		set_phase(c, 1);
		(void)sink;
		c->read_calls++;
		break;
	}
	case SPLICE: {
		loff_t off = 0;
		set_phase(c, 2);
		ssize_t r = splice(c->fd, &off, c->pfd[1], NULL, c->size, 0);
		set_phase(c, 1);
		c->read_calls++;
		if (r != (ssize_t)c->size) {
			if (r >= 0)
				errno = EIO;
			die_io("splice");
		}
		for (size_t got = 0; got < c->size;) {
			ssize_t n = read(c->pfd[0], c->scratch, c->size - got);
			if (n <= 0)
				die_io("emptying the pipe");
			got += (size_t)n;
		}
		break;
	}
	case PIPE:
		for (size_t got = 0; got < c->size;) {
			set_phase(c, 2);
			ssize_t r = read(c->fd, c->buf + got, c->size - got);
			set_phase(c, 1);
			c->read_calls++;
			if (r <= 0) {
				if (r == 0)
					errno = EPIPE; /* the writer is gone */
				die_io("read(pipe)");
			}
			got += (size_t)r;
		}
		break;
	}
}

static pid_t start_writer(int wfd, int rfd)
{
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		die_io("fork");
	if (pid)
		return pid;
	/* the child must not outlive the reader, whatever way it ends */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent)
		_exit(0);
	close(rfd);
	static char pattern[65536];
	for (size_t i = 0; i < sizeof(pattern); i++)
		pattern[i] = (char)(i * 31 + 7);
	for (;;)
		if (write(wfd, pattern, sizeof(pattern)) < 0)
			_exit(0);
}

static int usage(const char *argv0, const char *why)
{
	if (why)
		fprintf(stderr, "%s: %s\n", argv0, why);
	fprintf(stderr, "usage: %s [fentry:|kprobe:]POINT cached|uncached|pipe FILE SIZE N\n",
		argv0);
	return 2;
}

static int parse_pos(const char *s, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 0);
	if (errno || end == s || *end || v <= 0)
		return -1;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 6)
		return usage(argv[0], NULL);
	const char *tp = argv[1], *wname = argv[2], *path = argv[3];
	const char *how = "raw_tp";
	if (!strncmp(tp, "fentry:", 7) || !strncmp(tp, "kprobe:", 7)) {
		how = !strncmp(tp, "fentry:", 7) ? "fentry" : "kprobe";
		tp += 7;
	}
	long size_l, n;
	if (parse_pos(argv[4], &size_l) || parse_pos(argv[5], &n))
		return usage(argv[0], "SIZE and N must be positive integers");
	/* tracepoint names are C identifiers; checking keeps the JSON below unescaped */
	if (!*tp || strspn(tp, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") !=
			    strlen(tp))
		return usage(argv[0], "POINT must be a tracepoint or function name like sys_enter");

	struct ctx c = {.size = (size_t)size_l, .writer = -1};
	if (!strcmp(wname, "cached"))
		c.wl = CACHED;
	else if (!strcmp(wname, "uncached"))
		c.wl = UNCACHED;
	else if (!strcmp(wname, "pipe"))
		c.wl = PIPE;
	else if (!strcmp(wname, "readv"))
		c.wl = READV;
	else if (!strcmp(wname, "io_uring"))
		c.wl = URING;
	else if (!strcmp(wname, "io_uring-fixed"))
		c.wl = URING_FIXED;
	else if (!strcmp(wname, "mmap-fault"))
		c.wl = MMAP_FAULT;
	else if (!strcmp(wname, "splice"))
		c.wl = SPLICE;
	else
		return usage(argv[0], "WORKLOAD must be cached, uncached, pipe, readv, io_uring, "
			     "io_uring-fixed, mmap-fault or splice");
	if (c.wl == MMAP_FAULT && c.size % PAGE)
		return usage(argv[0], "mmap-fault: SIZE must be a multiple of 4096");

	c.buf = aligned_alloc(PAGE, (c.size + PAGE - 1) / PAGE * PAGE);
	if (!c.buf)
		die_io("alloc");
	memset(c.buf, 0, c.size); /* fault the buffer in before counting */

	if (c.wl == PIPE) {
		int p[2];
		if (pipe2(p, O_CLOEXEC))
			die_io("pipe");
		/* forked before the BPF object exists: the child shares none of it */
		c.writer = start_writer(p[1], p[0]);
		close(p[1]);
		c.fd = p[0];
	} else {
		c.fd = open(path, O_RDONLY | O_CLOEXEC);
		if (c.fd < 0)
			die_io(path);
		struct stat st;
		if (fstat(c.fd, &st))
			die_io("fstat");
		if ((size_t)st.st_size < c.size) {
			fprintf(stderr, "%s: %lld bytes, smaller than SIZE %zu\n", path,
				(long long)st.st_size, c.size);
			return 2;
		}
		if (c.wl != UNCACHED && c.wl != MMAP_FAULT) {
			/* read it all once: every later pread is a page-cache hit */
			for (off_t off = 0; off < st.st_size; off += (off_t)c.size)
				if (pread(c.fd, c.buf, c.size, off) < 0)
					die_io("pread (warming the cache)");
		} else {
			c.stride = (c.size + PAGE - 1) / PAGE * PAGE;
			c.slots = (long)((size_t)st.st_size / c.stride);
			if (c.slots < n) {
				fprintf(stderr,
					"%s: %lld bytes hold %ld strides of %zu, fewer than N=%ld "
					"distinct offsets\n",
					path, (long long)st.st_size, c.slots, c.stride, n);
				return 2;
			}
			/* no readahead, and nothing dirty that DONTNEED would have to skip */
			if (posix_fadvise(c.fd, 0, 0, POSIX_FADV_RANDOM))
				die_io("posix_fadvise(RANDOM)");
			if (fdatasync(c.fd))
				die_io("fdatasync");
			if (c.wl == MMAP_FAULT) {
				c.map_len = (size_t)st.st_size / PAGE * PAGE;
				c.map = mmap(NULL, c.map_len, PROT_READ, MAP_SHARED, c.fd, 0);
				if (c.map == MAP_FAILED)
					die_io("mmap");
				if (madvise(c.map, c.map_len, MADV_RANDOM))
					die_io("madvise(RANDOM)");
				c.stride = c.size;
				c.slots = (long)(c.map_len / c.size);
			}
		}
		if (c.wl == URING || c.wl == URING_FIXED) {
			int e = io_uring_queue_init(4, &c.ring, 0);
			if (e) {
				fprintf(stderr, "io_uring_queue_init: %s\n", strerror(-e));
				return 3;
			}
			struct iovec v = {c.buf, c.size};
			if (c.wl == URING_FIXED && (e = io_uring_register_buffers(&c.ring, &v, 1))) {
				fprintf(stderr, "io_uring_register_buffers: %s\n", strerror(-e));
				return 3;
			}
		}
		if (c.wl == SPLICE) {
			if (pipe2(c.pfd, O_CLOEXEC))
				die_io("pipe2");
			if (fcntl(c.pfd[1], F_SETPIPE_SZ, 1 << 20) < 0)
				die_io("F_SETPIPE_SZ");
			c.scratch = malloc(c.size);
			if (!c.scratch)
				die_io("malloc");
		}
	}

	/* warm up before attaching: first-touch work is not part of a steady read */
	long warm = n < 100 ? n : 100;
	for (long i = 0; i < warm; i++)
		op(&c, i);

	struct point_counter_bpf *skel = point_counter_bpf__open();
	if (!skel) {
		fprintf(stderr, "open BPF skeleton: %s\n", strerror(errno));
		return 3;
	}
	skel->rodata->target_tgid = (__u32)getpid();
	struct bpf_program *prog = !strcmp(how, "fentry") ? skel->progs.pc_fentry
				   : !strcmp(how, "kprobe") ? skel->progs.pc_kprobe
							    : skel->progs.pc_count;
	/* load only the program asked for: the others may be refused on this kernel */
	bpf_program__set_autoload(skel->progs.pc_count, prog == skel->progs.pc_count);
	bpf_program__set_autoload(skel->progs.pc_fentry, prog == skel->progs.pc_fentry);
	bpf_program__set_autoload(skel->progs.pc_kprobe, prog == skel->progs.pc_kprobe);
	if (prog == skel->progs.pc_fentry && bpf_program__set_attach_target(prog, 0, tp)) {
		fprintf(stderr, "fentry target %s: %s\n", tp, strerror(errno));
		return 3;
	}
	int err = point_counter_bpf__load(skel);
	if (err) {
		char msg[256];
		libbpf_strerror(err, msg, sizeof(msg));
		fprintf(stderr, "load BPF program: %s\n", msg);
		return 3;
	}
	if (!skel->bss) {
		fprintf(stderr, "the kernel did not mmap the program's .bss\n");
		return 3;
	}
	struct bpf_link *link = prog == skel->progs.pc_count
					? bpf_program__attach_raw_tracepoint(prog, tp)
				: prog == skel->progs.pc_kprobe ? bpf_program__attach_kprobe(prog, false, tp)
								: bpf_program__attach(prog);
	if (!link) {
		int e = errno;
		char msg[256];
		libbpf_strerror(-e, msg, sizeof(msg));
		fprintf(stderr, "attach %s to %s: %s\n", how, tp, msg);
		return 3;
	}

	c.phase = &skel->bss->phase;
	c.read_calls = 0;
	set_phase(&c, 1);
	for (long i = 0; i < n; i++)
		op(&c, warm + i);
	set_phase(&c, 0);
	/* the program only runs in this thread's syscalls, which have all returned */
	unsigned long long count = __atomic_load_n(&skel->bss->count, __ATOMIC_RELAXED);
	unsigned long long in_read = __atomic_load_n(&skel->bss->count_in_read, __ATOMIC_RELAXED);
	bpf_link__destroy(link);

	/* runs of the program the kernel skipped (nested on one CPU), for any process */
	struct bpf_prog_info info = {0};
	__u32 len = sizeof(info);
	long long misses = -1;
	if (!bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len))
		misses = (long long)info.recursion_misses;

	if (c.writer > 0) {
		kill(c.writer, SIGKILL);
		waitpid(c.writer, NULL, 0);
	}
	printf("{\"tracepoint\": \"%s\", \"attach\": \"%s\", \"workload\": \"%s\", "
	       "\"size\": %zu, \"ops\": %ld, "
	       "\"read_calls\": %ld, \"count\": %llu, \"per_read_call\": %.17g, "
	       "\"count_in_read\": %llu, \"in_read_per_read_call\": %.17g, "
	       "\"recursion_misses\": %lld, \"pid\": %d}\n",
	       tp, how, wname, c.size, n, c.read_calls, count, (double)count / (double)c.read_calls,
	       in_read, (double)in_read / (double)c.read_calls, misses, (int)getpid());
	point_counter_bpf__destroy(skel);
	return 0;
}
