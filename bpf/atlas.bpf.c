// SPDX-License-Identifier: GPL-2.0
/* atlas.bpf.c — one counting program per attach type, for the hook-point atlas.
 *
 * Each program counts the firings of whatever point it is attached to, for the measuring
 * process only, and does nothing else: the atlas attaches one at a time (the loader sets
 * the target of the trampoline and tp_btf programs before load) and reads `fired` after a
 * known number of reads. The same programs with `count = 0` are the atlas's trial loads:
 * an attach type the kernel refuses fails here with the kernel's errno.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

/* The sole content of .rodata (the loader packs it as "=IIqI"). `only_sys`: 1 on sys_enter,
 * 2 on sys_exit: count only syscall `nr` there, so the reads are counted and not the
 * harness's other syscalls (an uncached batch's fadvise and mincore). */
const volatile struct {
	__u32 tgid;
	__u32 only_sys;
	__s64 nr;
	__u32 gated; /* count only while cnt.gate is 1 (the read loop's timed window) */
} cfg = {};

/* In .bss, mmapped by the loader: it reads `fired`, and the C read loop writes `gate` (1
 * inside its timed loops, 0 in the untimed pauses: an eviction, a pipe drain). */
struct {
	__u64 fired;
	__u32 gate;
} cnt = {};

static __always_inline int hit(void)
{
	if ((bpf_get_current_pid_tgid() >> 32) != cfg.tgid)
		return 0;
	if (cfg.gated && !*(volatile __u32 *)&cnt.gate)
		return 0;
	__sync_fetch_and_add(&cnt.fired, 1);
	return 0;
}

/* args[0], args[1] of raw sys_enter (regs, id) and sys_exit (regs, ret): on sys_exit the
 * syscall number is in regs->orig_ax. */
static __always_inline int hit_syscall(__u64 regs, __u64 id)
{
	if (cfg.only_sys == 1 && (long)id != cfg.nr)
		return 0;
	if (cfg.only_sys == 2 && BPF_CORE_READ((struct pt_regs *)regs, orig_ax) != cfg.nr)
		return 0;
	return hit();
}

/* The syscall filter reads two arguments: only where it applies (the loader's cfg is a
 * constant the verifier sees, so elsewhere the reads are dead code and a one-argument
 * tracepoint still accepts the program). */
SEC("raw_tp")
int atlas_rawtp(struct bpf_raw_tracepoint_args *ctx)
{
	if (!cfg.only_sys)
		return hit();
	return hit_syscall(ctx->args[0], ctx->args[1]);
}

/* A classic raw_syscalls:sys_enter/sys_exit record holds the syscall number as `long id`
 * right after the 8-byte common header. */
SEC("tracepoint")
int atlas_tp(void *ctx)
{
	long id;

	if (!cfg.only_sys)
		return hit();
	if (bpf_probe_read_kernel(&id, sizeof(id), ctx + 8) || id != cfg.nr)
		return 0;
	return hit();
}

SEC("tp_btf/sys_enter") /* target set by the loader */
int atlas_tpbtf(__u64 *ctx)
{
	if (!cfg.only_sys)
		return hit(); /* any other tracepoint: its arguments are never read */
	return hit_syscall(ctx[0], ctx[1]);
}

SEC("fentry/vfs_read") /* target set by the loader */
int BPF_PROG(atlas_fentry) { return hit(); }

SEC("fexit/vfs_read") /* target set by the loader */
int BPF_PROG(atlas_fexit) { return hit(); }

SEC("kprobe")
int atlas_kprobe(struct pt_regs *ctx) { return hit(); }

SEC("kretprobe")
int atlas_kretprobe(struct pt_regs *ctx) { return hit(); }

SEC("lsm/file_permission")
int BPF_PROG(atlas_lsm, struct file *file, int mask) { return hit(); }

/* fmod_ret may change a function's return value: the kernel allows it on security_*
 * functions and on the error-injection list. Returning 0 keeps the real return value. */
SEC("fmod_ret/security_file_permission") /* target set by the loader */
int BPF_PROG(atlas_fmodret)
{
	hit();
	return 0;
}
