/* copy_replicas.c — the kernel's copy-to-user strategies as user-space functions, so one
 * CPU can run all of them side by side (the kernel picks one per boot).
 *
 * Written in assembly, instruction for instruction from arch/x86/lib/copy_user_64.S
 * (5.18–6.3 for the three classic routines, 6.15 for rep_movs_alternative), minus
 * STAC/CLAC and the exception tables. Lengths are 64-bit here (the old kernel code used
 * 32-bit %edx), which changes nothing below 4 GiB. */
#define _GNU_SOURCE
#include "copy_replicas.h"

#include <cpuid.h>
#include <linux/perf_event.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

typedef void *(*copy_fn)(void *, const void *, size_t);

#define DECL(name) __attribute__((visibility("hidden"))) void *name(void *, const void *, size_t)
DECL(cr_movsb_asm);
DECL(cr_movsq_asm);
DECL(cr_unrolled_asm);
DECL(cr_rep_movsb_asm);
DECL(cr_rma_asm);

/* SysV: %rdi = dst, %rsi = src, %rdx = len; everything used is caller-saved. */
__asm__(
    ".text\n"

    /* copy_user_enhanced_fast_string on a CPU with ERMS and without FSRM: below 64 bytes
     * the `rep` startup cost is avoided by jumping to copy_user_short_string. */
    ".p2align 4\n"
    ".globl cr_movsb_asm\n.hidden cr_movsb_asm\n.type cr_movsb_asm,@function\n"
    "cr_movsb_asm:\n"
    "  cmpq $64, %rdx\n"
    "  jb cr_short_string\n"
    "  movq %rdx, %rcx\n"
    "  rep movsb\n"
    "  ret\n"
    /* copy_user_short_string: 8-byte movq loop, then a byte loop for len % 8. */
    "cr_short_string:\n"
    "  movl %edx, %ecx\n"
    "  andl $7, %edx\n"
    "  shrl $3, %ecx\n"
    "  jz .Lss_bytes\n"
    ".Lss_words:\n"
    "  movq (%rsi), %r8\n"
    "  movq %r8, (%rdi)\n"
    "  leaq 8(%rsi), %rsi\n"
    "  leaq 8(%rdi), %rdi\n"
    "  decl %ecx\n"
    "  jnz .Lss_words\n"
    ".Lss_bytes:\n"
    "  andl %edx, %edx\n"
    "  jz .Lss_done\n"
    "  movl %edx, %ecx\n"
    ".Lss_b:\n"
    "  movb (%rsi), %al\n"
    "  movb %al, (%rdi)\n"
    "  incq %rsi\n"
    "  incq %rdi\n"
    "  decl %ecx\n"
    "  jnz .Lss_b\n"
    ".Lss_done:\n"
    "  ret\n"
    ".size cr_movsb_asm, .-cr_movsb_asm\n"

    /* copy_user_generic_string (REP_GOOD, no ERMS): < 8 bytes -> rep movsb; else
     * ALIGN_DESTINATION (byte loop up to the next 8-aligned dst), rep movsq, rep movsb. */
    ".p2align 4\n"
    ".globl cr_movsq_asm\n.hidden cr_movsq_asm\n.type cr_movsq_asm,@function\n"
    "cr_movsq_asm:\n"
    "  cmpq $8, %rdx\n"
    "  jb .Lsq_tail\n"
    "  movl %edi, %ecx\n"
    "  andl $7, %ecx\n"
    "  jz .Lsq_aligned\n"
    "  subl $8, %ecx\n"
    "  negl %ecx\n"
    "  subq %rcx, %rdx\n"
    ".Lsq_align:\n"
    "  movb (%rsi), %al\n"
    "  movb %al, (%rdi)\n"
    "  incq %rsi\n"
    "  incq %rdi\n"
    "  decl %ecx\n"
    "  jnz .Lsq_align\n"
    ".Lsq_aligned:\n"
    "  movq %rdx, %rcx\n"
    "  shrq $3, %rcx\n"
    "  andl $7, %edx\n"
    "  rep movsq\n"
    ".Lsq_tail:\n"
    "  movl %edx, %ecx\n"
    "  rep movsb\n"
    "  ret\n"
    ".size cr_movsq_asm, .-cr_movsq_asm\n"

    /* copy_user_generic_unrolled (neither flag): < 8 -> bytes; else align dst, 64-byte
     * blocks through r8-r11 (four loads, four stores, twice), 8-byte words, bytes. */
    ".p2align 4\n"
    ".globl cr_unrolled_asm\n.hidden cr_unrolled_asm\n.type cr_unrolled_asm,@function\n"
    "cr_unrolled_asm:\n"
    "  cmpq $8, %rdx\n"
    "  jb .Lu_bytes\n"
    "  movl %edi, %ecx\n"
    "  andl $7, %ecx\n"
    "  jz .Lu_aligned\n"
    "  subl $8, %ecx\n"
    "  negl %ecx\n"
    "  subq %rcx, %rdx\n"
    ".Lu_align:\n"
    "  movb (%rsi), %al\n"
    "  movb %al, (%rdi)\n"
    "  incq %rsi\n"
    "  incq %rdi\n"
    "  decl %ecx\n"
    "  jnz .Lu_align\n"
    ".Lu_aligned:\n"
    "  movq %rdx, %rcx\n"
    "  andl $63, %edx\n"
    "  shrq $6, %rcx\n"
    "  jz .Lu_short\n"
    ".Lu_loop:\n"
    "  movq (%rsi), %r8\n"
    "  movq 1*8(%rsi), %r9\n"
    "  movq 2*8(%rsi), %r10\n"
    "  movq 3*8(%rsi), %r11\n"
    "  movq %r8, (%rdi)\n"
    "  movq %r9, 1*8(%rdi)\n"
    "  movq %r10, 2*8(%rdi)\n"
    "  movq %r11, 3*8(%rdi)\n"
    "  movq 4*8(%rsi), %r8\n"
    "  movq 5*8(%rsi), %r9\n"
    "  movq 6*8(%rsi), %r10\n"
    "  movq 7*8(%rsi), %r11\n"
    "  movq %r8, 4*8(%rdi)\n"
    "  movq %r9, 5*8(%rdi)\n"
    "  movq %r10, 6*8(%rdi)\n"
    "  movq %r11, 7*8(%rdi)\n"
    "  leaq 64(%rsi), %rsi\n"
    "  leaq 64(%rdi), %rdi\n"
    "  decq %rcx\n"
    "  jnz .Lu_loop\n"
    ".Lu_short:\n"
    "  movl %edx, %ecx\n"
    "  andl $7, %edx\n"
    "  shrl $3, %ecx\n"
    "  jz .Lu_bytes\n"
    ".Lu_words:\n"
    "  movq (%rsi), %r8\n"
    "  movq %r8, (%rdi)\n"
    "  leaq 8(%rsi), %rsi\n"
    "  leaq 8(%rdi), %rdi\n"
    "  decl %ecx\n"
    "  jnz .Lu_words\n"
    ".Lu_bytes:\n"
    "  andl %edx, %edx\n"
    "  jz .Lu_done\n"
    "  movl %edx, %ecx\n"
    ".Lu_b:\n"
    "  movb (%rsi), %al\n"
    "  movb %al, (%rdi)\n"
    "  incq %rsi\n"
    "  incq %rdi\n"
    "  decl %ecx\n"
    "  jnz .Lu_b\n"
    ".Lu_done:\n"
    "  ret\n"
    ".size cr_unrolled_asm, .-cr_unrolled_asm\n"

    /* One rep movsb for every length: the FSRM path, and perf bench's memcpy_erms. */
    ".p2align 4\n"
    ".globl cr_rep_movsb_asm\n.hidden cr_rep_movsb_asm\n.type cr_rep_movsb_asm,@function\n"
    "cr_rep_movsb_asm:\n"
    "  movq %rdx, %rcx\n"
    "  rep movsb\n"
    "  ret\n"
    ".size cr_rep_movsb_asm, .-cr_rep_movsb_asm\n"

    /* rep_movs_alternative as patched on 6.15+ for a CPU without ERMS (this VM):
     * < 8 byte loop, 8..63 word loop, >= 64 one unaligned word, dst aligned to 8
     * (rewriting up to 8 bytes), rep movsq, byte tail. */
    ".p2align 4\n"
    ".globl cr_rma_asm\n.hidden cr_rma_asm\n.type cr_rma_asm,@function\n"
    "cr_rma_asm:\n"
    "  movq %rdx, %rcx\n"
    "  cmpq $64, %rcx\n"
    "  jae .Lr_large\n"
    "  cmp $8, %ecx\n"
    "  jae .Lr_word\n"
    "  testl %ecx, %ecx\n"
    "  je .Lr_exit\n"
    ".Lr_tail:\n"
    "  movb (%rsi), %al\n"
    "  movb %al, (%rdi)\n"
    "  inc %rdi\n"
    "  inc %rsi\n"
    "  dec %rcx\n"
    "  jne .Lr_tail\n"
    ".Lr_exit:\n"
    "  ret\n"
    ".p2align 4\n"
    ".Lr_word:\n"
    "  movq (%rsi), %rax\n"
    "  movq %rax, (%rdi)\n"
    "  addq $8, %rsi\n"
    "  addq $8, %rdi\n"
    "  sub $8, %ecx\n"
    "  je .Lr_exit\n"
    "  cmp $8, %ecx\n"
    "  jae .Lr_word\n"
    "  jmp .Lr_tail\n"
    ".Lr_large:\n"
    "  movq (%rsi), %rax\n"
    "  movq %rax, (%rdi)\n"
    "  leaq 8(%rdi), %rax\n"
    "  andq $-8, %rax\n"
    "  subq %rdi, %rax\n"
    "  addq %rax, %rdi\n"
    "  addq %rax, %rsi\n"
    "  subq %rax, %rcx\n"
    "  movq %rcx, %rax\n"
    "  shrq $3, %rcx\n"
    "  andl $7, %eax\n"
    "  rep movsq\n"
    "  movl %eax, %ecx\n"
    "  testl %ecx, %ecx\n"
    "  jne .Lr_tail\n"
    "  ret\n"
    ".size cr_rma_asm, .-cr_rma_asm\n");

/* Read once through a volatile so the compiler cannot turn libc's memcpy into a builtin. */
static copy_fn volatile libc_memcpy = memcpy;

static copy_fn pick(int variant)
{
    switch (variant) {
    case CR_MOVSB:
        return cr_movsb_asm;
    case CR_MOVSQ:
        return cr_movsq_asm;
    case CR_UNROLLED:
        return cr_unrolled_asm;
    case CR_LIBC:
        return libc_memcpy;
    case CR_REP_MOVSB:
        return cr_rep_movsb_asm;
    case CR_RMA:
        return cr_rma_asm;
    default:
        return NULL;
    }
}

void cr_copy(int variant, void *dst, const void *src, size_t n)
{
    copy_fn f = pick(variant);
    if (f)
        f(dst, src, n);
}

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t cr_time_ctl(int variant, void *dst, const void *src, size_t n, uint64_t loops,
                     int ctl_fd)
{
    copy_fn f = pick(variant);
    if (!f)
        return 0;
    /* Same buffers every iteration, like `perf bench mem memcpy -l N`: a hot-cache copy.
     * Every variant pays the same indirect call, as the kernel's call does. */
    if (ctl_fd >= 0)
        ioctl(ctl_fd, PERF_EVENT_IOC_ENABLE, PERF_IOC_FLAG_GROUP);
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < loops; i++) {
        f(dst, src, n);
        __asm__ volatile("" ::: "memory");
    }
    uint64_t t1 = now_ns();
    if (ctl_fd >= 0)
        ioctl(ctl_fd, PERF_EVENT_IOC_DISABLE, PERF_IOC_FLAG_GROUP);
    return t1 - t0 ? t1 - t0 : 1;
}

uint64_t cr_time(int variant, void *dst, const void *src, size_t n, uint64_t loops)
{
    return cr_time_ctl(variant, dst, src, n, loops, -1);
}

int cr_cpuid(uint32_t leaf, uint32_t subleaf, uint32_t *regs)
{
    unsigned int a, b, c, d;
    if (!__get_cpuid_count(leaf, subleaf, &a, &b, &c, &d))
        return -1;
    regs[0] = a;
    regs[1] = b;
    regs[2] = c;
    regs[3] = d;
    return 0;
}
