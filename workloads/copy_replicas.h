/* copy_replicas: user-space copies of the kernel's copy-to-user strategies (x86-64).
 * Each cr_* copy has memcpy's argument order and returns nothing; sizes and branch
 * thresholds follow arch/x86/lib/copy_user_64.S (see ../shared/docs/kernel-copy-paths.md §2). */
#ifndef READBENCH_COPY_REPLICAS_H
#define READBENCH_COPY_REPLICAS_H
#include <stddef.h>
#include <stdint.h>

enum cr_variant {
    CR_MOVSB = 0,     /* copy_user_enhanced_fast_string, ERMS w/o FSRM: <64 short copy, else rep movsb */
    CR_MOVSQ = 1,     /* copy_user_generic_string: align dst, rep movsq, rep movsb tail */
    CR_UNROLLED = 2,  /* copy_user_generic_unrolled: align dst, 64-byte movq blocks, words, bytes */
    CR_LIBC = 3,      /* glibc memcpy */
    CR_REP_MOVSB = 4, /* one rep movsb for every length (FSRM kernels, perf's x86-64-movsb) */
    CR_RMA = 5,       /* rep_movs_alternative on 6.15+ without ERMS: loops <64, aligned rep movsq */
    CR_NVARIANTS = 6
};

void cr_copy(int variant, void *dst, const void *src, size_t n);
/* Time `loops` copies of n bytes src -> dst; returns elapsed ns (CLOCK_MONOTONIC), or 0
 * for an unknown variant. Nothing but the copies sits between the clock reads. */
uint64_t cr_time(int variant, void *dst, const void *src, size_t n, uint64_t loops);
/* CPUID leaf/subleaf -> eax, ebx, ecx, edx; returns -1 where CPUID does not exist. */
/* Same, with a perf event group leader enabled right before and disabled right after
 * the loop (the counters see only the copies), as readloop's ctl_fds. */
uint64_t cr_time_ctl(int variant, void *dst, const void *src, size_t n, uint64_t loops,
                     int ctl_fd);
int cr_cpuid(uint32_t leaf, uint32_t subleaf, uint32_t *regs);
#endif
