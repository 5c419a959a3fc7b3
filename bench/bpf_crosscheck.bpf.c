// SPDX-License-Identifier: GPL-2.0
/* bpf_crosscheck.bpf.c — independent cross-check of readbench's hook overhead.
 *
 * Written separately from bpf/readhooks.bpf.c on purpose (no vmlinux.h, no shared
 * header, no readbench loader): two "empty" programs that only filter on the
 * measured process and on pread64, as readbench's `empty` body does. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define NR_PREAD64 17 /* x86-64 */

const volatile __u32 target_tgid = 0;

SEC("raw_tp/sys_enter")
int cc_rawtp(struct bpf_raw_tracepoint_args *ctx)
{
	/* args[1] = syscall id; runs for every syscall on the machine */
	if (ctx->args[1] != NR_PREAD64)
		return 0;
	if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	return 0;
}

/* events/syscalls/sys_enter_pread64/format: 8-byte common header, int nr at 8, args at 16 */
struct pread64_enter {
	__u64 common;
	int nr;
	__u64 fd, buf, count, pos;
};

SEC("tracepoint/syscalls/sys_enter_pread64")
int cc_tp(struct pread64_enter *ctx)
{
	if (ctx->nr != NR_PREAD64)
		return 0;
	if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
