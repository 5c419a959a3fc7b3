// SPDX-License-Identifier: GPL-2.0
/* point_counter.bpf.c — independent count of a point's firings per read() call.
 *
 * Written separately from readbench's bpf/ on purpose (no vmlinux.h, no shared header,
 * no readbench loader), to cross-check the hook-point atlas's fires-per-read column.
 *
 * One generic raw tracepoint program: SEC("raw_tp") without a name, so the loader attaches it
 * by name to any tracepoint; and, for kernel functions, one fentry program (the loader sets
 * its target before load) and one kprobe program. Only the one asked for is loaded. Each
 * counts only the measuring process, and only while the loader
 * says so through `phase`, which lives in the mmapped .bss: user space flips it with a plain
 * store, no syscall, so the attach and detach syscalls themselves (and their sys_enter /
 * sys_exit) never fall inside the counted window.
 *   phase 0: not counting (attach, warm-up, detach)
 *   phase 1: inside the N operations, between read calls (e.g. an uncached op's fadvise)
 *   phase 2: inside a read()/pread() call
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

const volatile __u32 target_tgid = 0;

volatile __u32 phase = 0;
__u64 count = 0;	 /* firings in phases 1 and 2: the whole N operations */
__u64 count_in_read = 0; /* firings in phase 2 only: inside the read calls */

static __always_inline int bump(void)
{
	__u32 p;

	if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	p = phase;
	if (!p)
		return 0;
	__sync_fetch_and_add(&count, 1);
	if (p == 2)
		__sync_fetch_and_add(&count_in_read, 1);
	return 0;
}

SEC("raw_tp")
int pc_count(struct bpf_raw_tracepoint_args *ctx)
{
	return bump();
}

SEC("fentry/vfs_read") /* the loader sets the real target */
int pc_fentry(void *ctx)
{
	return bump();
}

SEC("kprobe")
int pc_kprobe(void *ctx)
{
	return bump();
}

char LICENSE[] SEC("license") = "GPL";
