/* bpf_crosscheck.c — independent C/libbpf measurement of what an empty BPF program on
 * raw_tp/sys_enter and on tracepoint syscalls/sys_enter_pread64 adds to a cached pread.
 *
 *   bpf_crosscheck FILE SIZE ROUNDS LOOPS BATCHES SEED
 *
 * Rounds of the three configurations (none, rawtp, tp) in a shuffled order; in each,
 * attach (libbpf link, an fd of this process), warm up, time BATCHES batches of LOOPS
 * pread(fd, buf, SIZE, 0) with CLOCK_MONOTONIC, keep the fastest batch's ns/op (the
 * least disturbed by other processes on a shared machine), detach.
 * Prints one JSON object: per configuration, the per-round medians. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <time.h>
#include <unistd.h>

#include <bpf/libbpf.h>

#include "bpf_crosscheck.skel.h"

enum { NONE, RAWTP, TP, NCFG };
static const char *const cfg_name[NCFG] = {"none", "rawtp:sys_enter", "tp:syscalls/sys_enter_pread64"};

static unsigned long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double batch(int fd, char *buf, size_t size, long loops)
{
	unsigned long long t0 = now_ns();
	for (long i = 0; i < loops; i++) {
		if (pread(fd, buf, size, 0) != (ssize_t)size) {
			fprintf(stderr, "pread failed: %s\n", strerror(errno));
			exit(1);
		}
	}
	return (double)(now_ns() - t0) / loops;
}

/* libbpf finds a classic tracepoint's id under tracefs, which a freshly booted machine has not
 * mounted. Mount it in a private mount namespace of this process: the host's mount table is
 * untouched, and the mount goes away with the process. */
static int ensure_tracefs(void)
{
	if (access("/sys/kernel/tracing/events", F_OK) == 0 ||
	    access("/sys/kernel/debug/tracing/events", F_OK) == 0)
		return 0;
	if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
	    mount("nodev", "/sys/kernel/tracing", "tracefs", 0, NULL)) {
		fprintf(stderr, "tracefs is not mounted and a private mount failed: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 7) {
		fprintf(stderr, "usage: %s FILE SIZE ROUNDS LOOPS BATCHES SEED\n", argv[0]);
		return 2;
	}
	const char *path = argv[1];
	size_t size = strtoul(argv[2], NULL, 0);
	int rounds = atoi(argv[3]);
	long loops = atol(argv[4]);
	int batches = atoi(argv[5]);
	srand((unsigned)atoi(argv[6]));

	if (ensure_tracefs())
		return 3;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *buf = aligned_alloc(4096, (size + 4095) / 4096 * 4096);
	if (fd < 0 || !buf) {
		fprintf(stderr, "open %s: %s\n", path, strerror(errno));
		return 1;
	}
	memset(buf, 0, size);

	struct bpf_crosscheck_bpf *skel = bpf_crosscheck_bpf__open();
	if (!skel) {
		fprintf(stderr, "open skeleton: %s\n", strerror(errno));
		return 3;
	}
	skel->rodata->target_tgid = (unsigned)getpid();
	int err = bpf_crosscheck_bpf__load(skel);
	if (err) {
		fprintf(stderr, "load: %s\n", strerror(-err));
		return 3;
	}

	double *res = calloc((size_t)NCFG * rounds, sizeof(double));
	double *b = calloc(batches, sizeof(double));
	for (int r = 0; r < rounds; r++) {
		int order[NCFG] = {NONE, RAWTP, TP};
		for (int i = NCFG - 1; i > 0; i--) { /* Fisher-Yates */
			int j = rand() % (i + 1), t = order[i];
			order[i] = order[j];
			order[j] = t;
		}
		for (int k = 0; k < NCFG; k++) {
			int c = order[k];
			struct bpf_link *link = NULL;
			if (c == RAWTP)
				link = bpf_program__attach_raw_tracepoint(skel->progs.cc_rawtp, "sys_enter");
			else if (c == TP)
				link = bpf_program__attach_tracepoint(skel->progs.cc_tp, "syscalls",
								      "sys_enter_pread64");
			if (c != NONE && !link) {
				fprintf(stderr, "attach %s: %s\n", cfg_name[c], strerror(errno));
				return 3;
			}
			batch(fd, buf, size, loops / 4 + 1); /* warm the hooked path */
			for (int i = 0; i < batches; i++)
				b[i] = batch(fd, buf, size, loops);
			qsort(b, batches, sizeof(double), cmp_d);
			res[c * rounds + r] = b[0];
			bpf_link__destroy(link);
		}
	}

	printf("{\"tool\": \"bpf_crosscheck.c\", \"size\": %zu, \"rounds\": %d, \"loops\": %ld, "
	       "\"batches\": %d, \"ns_per_op\": {",
	       size, rounds, loops, batches);
	for (int c = 0; c < NCFG; c++) {
		printf("%s\"%s\": [", c ? ", " : "", cfg_name[c]);
		for (int r = 0; r < rounds; r++)
			printf("%s%.3f", r ? ", " : "", res[c * rounds + r]);
		printf("]");
	}
	printf("}}\n");
	bpf_crosscheck_bpf__destroy(skel);
	return 0;
}
