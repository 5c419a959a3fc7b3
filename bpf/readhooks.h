/* readhooks.h — constants shared by readhooks.bpf.c and its loader.
 * readbench/bpf/abi.py reads every value below from this file itself, and
 * tests/system/test_bpf_build.py checks the loader and the header agree. */
#ifndef READHOOKS_H
#define READHOOKS_H

/* What a program does (bits of rb_cfg.enter_actions / exit_actions). */
#define RB_A_COUNT 1u     /* counts[RB_COUNT_ENTER or RB_COUNT_EXIT]++ */
#define RB_A_HIST_SIZE 2u /* hist_size[log2(requested length)]++ (enter) */
#define RB_A_STASH 4u     /* remember (dst, len) for the exit side (enter) */
#define RB_A_STASH_TS 8u  /* ... and the enter time (enter) */
#define RB_A_HIST_LAT 16u /* hist_lat[log2(exit - enter ns)]++ (exit) */
#define RB_A_INSPECT 32u  /* hash the first <= 64 bytes delivered (exit) */

/* Target kinds: how to find (destination, length, bytes copied) at a hook. */
#define RB_K_SYSCALL 0
#define RB_K_VFS_READ 1
#define RB_K_FILEMAP_READ 2
#define RB_K_COPY_PAGE_TO_ITER 3
#define RB_K_COPY_TO_ITER 4
#define RB_K_PIPE_READ 5
#define RB_K_REP_MOVS 6
#define RB_K_COPY_USER_OLD 7

#define RB_COUNT_ENTER 0
#define RB_COUNT_EXIT 1
#define RB_N_COUNTS 2

#define RB_I_EVENTS 0   /* inspected reads */
#define RB_I_BYTES 1    /* bytes hashed */
#define RB_I_SKIPPED 2  /* nothing delivered, or not a plain user buffer */
#define RB_I_FAULTS 3   /* bpf_probe_read_user failed */
#define RB_I_NO_STASH 4 /* exit without a matching enter */
#define RB_N_ISTATS 5

#define RB_HIST_BUCKETS 64
#define RB_MAX_HASHES 1024
#define RB_INSPECT_MAX 64

/* FNV-1a 64 */
#define RB_FNV_OFFSET 0xcbf29ce484222325ull
#define RB_FNV_PRIME 0x100000001b3ull

struct rb_cfg {
	__u32 tgid;            /* only this process */
	__s32 nr;              /* syscall tracepoints: only this syscall id */
	__u32 kind;            /* RB_K_* */
	__u32 enter_actions;   /* RB_A_* */
	__u32 exit_actions;    /* RB_A_* */
	__u32 exit_needs_stash; /* exit side reads (ts, dst, len) saved at enter */
};

#endif
