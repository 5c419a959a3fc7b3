/* bare_pread.c — the reference a harness-overhead benchmark compares readbench against:
 * the same pread(fd, buf, size, 0) loop with nothing around it, one process per run.
 * Usage: bare_pread FILE SIZE LOOPS VALUES WARMUPS   -> one ns/op per value on stdout. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s FILE SIZE LOOPS VALUES WARMUPS\n", argv[0]);
        return 2;
    }
    size_t size = strtoull(argv[2], NULL, 0);
    uint64_t loops = strtoull(argv[3], NULL, 0);
    int values = atoi(argv[4]), warmups = atoi(argv[5]);
    int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        perror(argv[1]);
        return 1;
    }
    char *buf;
    if (posix_memalign((void **)&buf, 4096, size + 4096)) /* same alignment as readloop.c */
        return 1;
    memset(buf, 0, size + 4096);
    if (pread(fd, buf, size, 0) != (ssize_t)size)
        return 1;
    for (int v = 0; v < warmups + values; v++) {
        uint64_t t0 = now_ns();
        for (uint64_t i = 0; i < loops; i++)
            if (pread(fd, buf, size, 0) != (ssize_t)size) {
                perror("pread");
                return 1;
            }
        uint64_t t1 = now_ns();
        if (v >= warmups)
            printf("%.3f\n", (double)(t1 - t0) / (double)loops);
    }
    return 0;
}
