// SPDX-License-Identifier: GPL-2.0
/* fileops.bpf.c — which functions the kernel really calls to read one open file.
 *
 * The atlas must hook the filesystem's own read_iter (ext4_file_read_iter,
 * v9fs_file_read_iter, shmem_file_read_iter, nfs_file_read, anon_pipe_read …). Its name
 * cannot be built from the filesystem type, so this program reads it from the file itself:
 * on the measuring process's read()/pread64() of fd `cfg.fd`, it walks
 * current->files->fdt->fd[fd]->f_op and records the function pointers and the superblock's
 * filesystem name; the loader symbolizes the pointers through /proc/kallsyms.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

/* The sole content of .rodata (the loader packs it as "=Iiq"). */
const volatile struct {
	__u32 tgid;
	__s32 fd;
	__s64 nr; /* the syscall the loader issues on fd: read or pread64 */
} cfg = {};

/* The sole content of .bss, read by the loader through an mmap of the map. */
struct {
	__u64 hits;
	__u64 read_iter;
	__u64 read;
	__u64 splice_read;
	__u64 mmap;
	char fstype[32];
} out = {};

SEC("raw_tp/sys_enter")
int fileops_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	struct pt_regs *regs = (struct pt_regs *)ctx->args[0];
	const struct file_operations *op;
	struct file **fds;
	struct file *f;
	const char *name;
	int fd;

	if ((bpf_get_current_pid_tgid() >> 32) != cfg.tgid || (long)ctx->args[1] != cfg.nr)
		return 0;
	fd = (int)BPF_CORE_READ(regs, di);
	if (fd != cfg.fd || fd < 0)
		return 0;
	fds = BPF_CORE_READ((struct task_struct *)bpf_get_current_task(), files, fdt, fd);
	if (bpf_probe_read_kernel(&f, sizeof(f), fds + fd) || !f)
		return 0;
	op = BPF_CORE_READ(f, f_op);
	out.read_iter = (__u64)BPF_CORE_READ(op, read_iter);
	out.read = (__u64)BPF_CORE_READ(op, read);
	out.splice_read = (__u64)BPF_CORE_READ(op, splice_read);
	out.mmap = (__u64)BPF_CORE_READ(op, mmap);
	name = BPF_CORE_READ(f, f_inode, i_sb, s_type, name);
	bpf_probe_read_kernel_str(out.fstype, sizeof(out.fstype), name);
	__sync_fetch_and_add(&out.hits, 1);
	return 0;
}
