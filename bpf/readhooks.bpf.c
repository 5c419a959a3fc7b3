// SPDX-License-Identifier: GPL-2.0
/* readhooks.bpf.c — the programs readbench attaches on the read path.
 *
 * One object holds one program per attach mechanism and side (enter/exit). What a
 * program does (its "body") and what it filters on are read-only globals set by the
 * loader before load: the verifier sees them as constants and removes the branches a
 * body does not use, so an `empty` hook really is the tgid/syscall filter + return 0
 * (tests check the xlated size). readbench/bpf/hookplan.py decides which programs a hook
 * needs (e.g. an `inspect` hook on an enter point pairs it with the matching exit).
 *
 * CO-RE: built against vmlinux.h generated from /sys/kernel/btf/vmlinux (readbench/bpf/build.py).
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "readhooks.h"

char LICENSE[] SEC("license") = "GPL"; /* bpf_probe_read_user is GPL-only */

/* Sole content of .rodata: the loader checks the section size equals sizeof(cfg). */
const volatile struct rb_cfg cfg = {};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RB_N_COUNTS);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RB_HIST_BUCKETS);
	__type(key, __u32);
	__type(value, __u64);
} hist_size SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RB_HIST_BUCKETS);
	__type(key, __u32);
	__type(value, __u64);
} hist_lat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RB_N_ISTATS);
	__type(key, __u32);
	__type(value, __u64);
} istats SEC(".maps");

/* Hash of the first <= 64 bytes delivered -> how many times it was seen. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, RB_MAX_HASHES);
	__type(key, __u64);
	__type(value, __u64);
} hashes SEC(".maps");

/* Enter side -> exit side of the same thread (a syscall or a function call). */
struct stash {
	__u64 ts;
	__u64 dst;
	__u64 len;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct stash);
} stash SEC(".maps");

static __always_inline void bump(void *map, __u32 key)
{
	__u64 *v = bpf_map_lookup_elem(map, &key);

	if (v)
		*v += 1; /* per-CPU slot: no atomics needed */
}

static __always_inline void add(void *map, __u32 key, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(map, &key);

	if (v)
		*v += n;
}

static __always_inline __u32 log2_u32(__u32 v)
{
	__u32 r, shift;

	r = (v > 0xFFFF) << 4;
	v >>= r;
	shift = (v > 0xFF) << 3;
	v >>= shift;
	r |= shift;
	shift = (v > 0xF) << 2;
	v >>= shift;
	r |= shift;
	shift = (v > 0x3) << 1;
	v >>= shift;
	r |= shift;
	r |= (v >> 1);
	return r;
}

/* Bucket b holds [2^b, 2^(b+1)); 0 goes to bucket 0 with 1. */
static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 hi = v >> 32;

	return hi ? log2_u32(hi) + 32 : log2_u32((__u32)v);
}

static __always_inline bool is_target_task(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == cfg.tgid;
}

/* User address the next copy into `i` writes to, or 0 when it is not a plain user
 * buffer (ITER_UBUF: what read()/pread() of one buffer builds on 6.x). */
static __always_inline __u64 iter_dst(struct iov_iter *i)
{
	if (!i)
		return 0;
	if (!bpf_core_field_exists(i->iter_type) || !bpf_core_field_exists(i->ubuf))
		return 0;
	if (BPF_CORE_READ(i, iter_type) != bpf_core_enum_value(enum iter_type, ITER_UBUF))
		return 0;
	return (__u64)BPF_CORE_READ(i, ubuf) + BPF_CORE_READ(i, iov_offset);
}

static __always_inline __u64 iter_count(struct iov_iter *i)
{
	return i ? BPF_CORE_READ(i, count) : 0;
}

/* ---- bodies ---------------------------------------------------------------- */

static __always_inline bool enter_needs_args(void)
{
	return cfg.enter_actions & (RB_A_HIST_SIZE | RB_A_STASH);
}

static __always_inline int do_enter(__u64 dst, __u64 len)
{
	if (cfg.enter_actions & RB_A_COUNT)
		bump(&counts, RB_COUNT_ENTER);
	if (cfg.enter_actions & RB_A_HIST_SIZE)
		bump(&hist_size, log2_u64(len));
	if (cfg.enter_actions & RB_A_STASH) {
		__u32 tid = (__u32)bpf_get_current_pid_tgid();
		struct stash s = {.dst = dst, .len = len};

		if (cfg.enter_actions & RB_A_STASH_TS)
			s.ts = bpf_ktime_get_ns();
		bpf_map_update_elem(&stash, &tid, &s, BPF_ANY);
	}
	return 0;
}

static __always_inline void inspect(__u64 dst, long copied)
{
	__u8 data[RB_INSPECT_MAX];
	__u64 h = RB_FNV_OFFSET;
	__u64 one = 1, *seen;
	__u32 n;

	if (copied <= 0 || !dst) {
		bump(&istats, RB_I_SKIPPED);
		return;
	}
	n = copied > RB_INSPECT_MAX ? RB_INSPECT_MAX : (__u32)copied;
	if (n == 0 || n > RB_INSPECT_MAX) /* restate the bound for the verifier */
		return;
	if (bpf_probe_read_user(data, n, (const void *)dst)) {
		bump(&istats, RB_I_FAULTS);
		return;
	}
	for (int k = 0; k < RB_INSPECT_MAX; k++) {
		if (k >= n)
			break;
		h ^= data[k];
		h *= RB_FNV_PRIME;
	}
	seen = bpf_map_lookup_elem(&hashes, &h);
	if (seen)
		__sync_fetch_and_add(seen, 1);
	else
		bpf_map_update_elem(&hashes, &h, &one, BPF_NOEXIST);
	bump(&istats, RB_I_EVENTS);
	add(&istats, RB_I_BYTES, n);
}

/* Exit side. `dst`/`copied` are the exit point's own view when it has one
 * (own_dst != 0); otherwise they come from the enter stash. */
static __always_inline int do_exit(__u64 own_dst, long ret, bool own)
{
	struct stash *s = NULL;
	__u32 tid;

	if (cfg.exit_actions & RB_A_COUNT)
		bump(&counts, RB_COUNT_EXIT);
	if (!(cfg.exit_actions & (RB_A_HIST_LAT | RB_A_INSPECT)))
		return 0;
	tid = (__u32)bpf_get_current_pid_tgid();
	if (cfg.exit_needs_stash) {
		s = bpf_map_lookup_elem(&stash, &tid);
		if (!s) {
			bump(&istats, RB_I_NO_STASH); /* enter ran before attach, or map full */
			return 0;
		}
	}
	if ((cfg.exit_actions & RB_A_HIST_LAT) && s)
		bump(&hist_lat, log2_u64(bpf_ktime_get_ns() - s->ts));
	if (cfg.exit_actions & RB_A_INSPECT) {
		__u64 dst = own ? own_dst : (s ? s->dst : 0);
		long copied = ret;

		/* asm copy routines return the bytes NOT copied */
		if (s && (cfg.kind == RB_K_REP_MOVS || cfg.kind == RB_K_COPY_USER_OLD))
			copied = (long)s->len - ret;
		inspect(dst, copied);
	}
	if (s)
		bpf_map_delete_elem(&stash, &tid);
	return 0;
}

/* ---- syscall tracepoints: classic, raw, BTF --------------------------------- */

/* Records of syscalls:sys_enter_* / sys_exit_* (struct syscall_trace_enter/exit in
 * kernel/trace/trace_syscalls.c; see events/syscalls/<name>/format). The syscall id is
 * an int at offset 8: vmlinux.h's trace_event_raw_sys_enter has a long there, whose
 * upper half is padding that the kernel does not clear. */
struct rb_sys_enter_rec {
	struct trace_entry ent;
	int nr;
	unsigned long args[6];
};

struct rb_sys_exit_rec {
	struct trace_entry ent;
	int nr;
	long ret;
};

SEC("tracepoint/syscalls/sys_enter_pread64")
int tp_enter(struct rb_sys_enter_rec *ctx)
{
	if (ctx->nr != cfg.nr || !is_target_task())
		return 0;
	if (!enter_needs_args())
		return do_enter(0, 0);
	return do_enter(ctx->args[1], ctx->args[2]);
}

SEC("tracepoint/syscalls/sys_exit_pread64")
int tp_exit(struct rb_sys_exit_rec *ctx)
{
	if (ctx->nr != cfg.nr || !is_target_task())
		return 0;
	return do_exit(0, ctx->ret, false); /* the exit record has no buffer: stash */
}

SEC("raw_tp/sys_enter")
int rawtp_enter(struct bpf_raw_tracepoint_args *ctx)
{
	struct pt_regs *regs;

	if ((long)ctx->args[1] != cfg.nr || !is_target_task())
		return 0;
	if (!enter_needs_args())
		return do_enter(0, 0);
	regs = (struct pt_regs *)ctx->args[0];
	return do_enter(BPF_CORE_READ(regs, si), BPF_CORE_READ(regs, dx));
}

SEC("raw_tp/sys_exit")
int rawtp_exit(struct bpf_raw_tracepoint_args *ctx)
{
	struct pt_regs *regs = (struct pt_regs *)ctx->args[0];

	if (BPF_CORE_READ(regs, orig_ax) != cfg.nr || !is_target_task())
		return 0;
	if (!(cfg.exit_actions & RB_A_INSPECT) || cfg.exit_needs_stash)
		return do_exit(0, (long)ctx->args[1], false);
	return do_exit(BPF_CORE_READ(regs, si), (long)ctx->args[1], true);
}

SEC("tp_btf/sys_enter")
int BPF_PROG(tpbtf_enter, struct pt_regs *regs, long id)
{
	if (id != cfg.nr || !is_target_task())
		return 0;
	if (!enter_needs_args())
		return do_enter(0, 0);
	return do_enter(regs->si, regs->dx); /* typed pointer: direct loads */
}

SEC("tp_btf/sys_exit")
int BPF_PROG(tpbtf_exit, struct pt_regs *regs, long ret)
{
	if (regs->orig_ax != cfg.nr || !is_target_task())
		return 0;
	if (!(cfg.exit_actions & RB_A_INSPECT) || cfg.exit_needs_stash)
		return do_exit(0, ret, false);
	return do_exit(regs->si, ret, true);
}

/* ---- kernel functions: fentry/fexit (trampoline), kprobe/kretprobe ---------- */

static __always_inline __u64 farg(void *ctx, __u32 n)
{
	__u64 v = 0;

	bpf_get_func_arg(ctx, n, &v);
	return v;
}

/* (destination, requested length) of a call, by target kind. */
static __always_inline void fn_args(void *ctx, __u64 *dst, __u64 *len)
{
	switch (cfg.kind) {
	case RB_K_VFS_READ: /* (file, buf, count, pos) */
		*dst = farg(ctx, 1);
		*len = farg(ctx, 2);
		break;
	case RB_K_FILEMAP_READ: /* (iocb, iter, already_read) */
	case RB_K_PIPE_READ:    /* (iocb, to) */
		*dst = iter_dst((struct iov_iter *)farg(ctx, 1));
		*len = iter_count((struct iov_iter *)farg(ctx, 1));
		break;
	case RB_K_COPY_PAGE_TO_ITER: /* (page, offset, bytes, i) */
		*dst = iter_dst((struct iov_iter *)farg(ctx, 3));
		*len = farg(ctx, 2);
		break;
	case RB_K_COPY_TO_ITER: /* (addr, bytes, i) */
		*dst = iter_dst((struct iov_iter *)farg(ctx, 2));
		*len = farg(ctx, 1);
		break;
	}
}

SEC("fentry/vfs_read") /* real target set by the loader (bpf_program__set_attach_target) */
int fentry_fn(void *ctx)
{
	__u64 dst = 0, len = 0;

	if (!is_target_task())
		return 0;
	if (enter_needs_args())
		fn_args(ctx, &dst, &len);
	return do_enter(dst, len);
}

SEC("fexit/vfs_read")
int fexit_fn(void *ctx)
{
	__u64 ret = 0, dst = 0;
	long copied;

	if (!is_target_task())
		return 0;
	bpf_get_func_ret(ctx, &ret);
	copied = (long)ret;
	if (!(cfg.exit_actions & RB_A_INSPECT) || cfg.exit_needs_stash)
		return do_exit(0, copied, false);
	/* fexit sees the arguments too; iterators have already advanced past the copy */
	switch (cfg.kind) {
	case RB_K_VFS_READ:
		dst = farg(ctx, 1);
		break;
	case RB_K_FILEMAP_READ:
		copied -= (long)farg(ctx, 2); /* ret includes already_read */
		dst = iter_dst((struct iov_iter *)farg(ctx, 1));
		break;
	case RB_K_PIPE_READ:
		dst = iter_dst((struct iov_iter *)farg(ctx, 1));
		break;
	case RB_K_COPY_PAGE_TO_ITER:
		dst = iter_dst((struct iov_iter *)farg(ctx, 3));
		break;
	case RB_K_COPY_TO_ITER:
		dst = iter_dst((struct iov_iter *)farg(ctx, 2));
		break;
	}
	if (dst && copied > 0)
		dst -= copied;
	return do_exit(dst, copied, true);
}

SEC("kprobe")
int kprobe_fn(struct pt_regs *ctx)
{
	__u64 dst = 0, len = 0;

	if (!is_target_task())
		return 0;
	if (enter_needs_args()) {
		switch (cfg.kind) {
		case RB_K_VFS_READ:
			dst = PT_REGS_PARM2(ctx);
			len = PT_REGS_PARM3(ctx);
			break;
		case RB_K_FILEMAP_READ:
		case RB_K_PIPE_READ:
			dst = iter_dst((struct iov_iter *)PT_REGS_PARM2(ctx));
			len = iter_count((struct iov_iter *)PT_REGS_PARM2(ctx));
			break;
		case RB_K_COPY_PAGE_TO_ITER:
			dst = iter_dst((struct iov_iter *)PT_REGS_PARM4(ctx));
			len = PT_REGS_PARM3(ctx);
			break;
		case RB_K_COPY_TO_ITER:
			dst = iter_dst((struct iov_iter *)PT_REGS_PARM3(ctx));
			len = PT_REGS_PARM2(ctx);
			break;
		case RB_K_REP_MOVS: /* asm: rdi = user dst, rsi = src, rcx = length */
			dst = ctx->di;
			len = ctx->cx;
			break;
		case RB_K_COPY_USER_OLD: /* pre-6.4 copy_user_*: rdi, rsi, edx = length */
			dst = ctx->di;
			len = (__u32)ctx->dx;
			break;
		}
	}
	return do_enter(dst, len);
}

SEC("kretprobe")
int kretprobe_fn(struct pt_regs *ctx)
{
	long ret;

	if (!is_target_task())
		return 0;
	switch (cfg.kind) {
	case RB_K_REP_MOVS: /* uncopied byte count is left in rcx */
		ret = (long)ctx->cx;
		break;
	case RB_K_COPY_USER_OLD: /* uncopied byte count in eax */
		ret = (long)(__u32)ctx->ax;
		break;
	default:
		ret = (long)PT_REGS_RC(ctx);
	}
	return do_exit(0, ret, false); /* kretprobe has no arguments: stash */
}
