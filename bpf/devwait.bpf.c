// SPDX-License-Identifier: GPL-2.0
/* devwait.bpf.c — how long a read waits for the device, measured from the block
 * tracepoints (never inferred from wall - CPU).
 *
 * The bios the measuring process queues (block_bio_queue, and the pieces block_split cuts
 * off them, in the submitter's context) are remembered; a request whose first bio is one of
 * them is timed from block_rq_issue (handed to the driver) to block_rq_complete. The loader
 * divides by the reads of the pass: requests, bytes, the sum of request times and the time
 * at least one of them was in flight (the union of their intervals: what a synchronous
 * reader waits). Raw tracepoints, arguments read with CO-RE: 6.1 and later.
 *
 * The scheduler tracepoints time the reader itself off the CPU: from sched_switch out to
 * sched_switch in, and within that from becoming runnable (sched_wakeup, or switched out
 * still runnable: preempted) to running again, the wait for a CPU.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "devwait.h"

char LICENSE[] SEC("license") = "GPL";

const volatile struct dw_cfg cfg = {};
struct dw_out out = {};

/* bio -> queue time, deleted when its request completes (every bio of the request: a batched
 * completion ends them without block_bio_complete). A plain hash: an LRU hash loses fresh
 * entries now and then (per-CPU free lists), about one request in a thousand here. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, DW_MAX_BIOS);
	__type(key, __u64);
	__type(value, __u64);
} bios SEC(".maps");

/* request -> issue time, deleted at completion or requeue */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, DW_MAX_INFLIGHT);
	__type(key, __u64);
	__type(value, __u64);
} rqs SEC(".maps");

static __always_inline int ours(void)
{
	return out.on && (bpf_get_current_pid_tgid() >> 32) == cfg.tgid;
}

static __always_inline void follow(__u64 bio, __u64 *counter)
{
	__u64 now = bpf_ktime_get_ns();

	bpf_map_update_elem(&bios, &bio, &now, BPF_ANY);
	__sync_fetch_and_add(counter, 1);
}

SEC("raw_tp/block_bio_queue")
int dw_bio_queue(struct bpf_raw_tracepoint_args *ctx)
{
	if (ours())
		follow(ctx->args[0], &out.bios);
	return 0;
}

/* block_split(struct bio *split, unsigned int new_sector): the split is the piece that
 * goes on; it never passes block_bio_queue itself. */
SEC("raw_tp/block_split")
int dw_split(struct bpf_raw_tracepoint_args *ctx)
{
	if (ours())
		follow(ctx->args[0], &out.splits);
	return 0;
}

SEC("raw_tp/block_bio_complete")
int dw_bio_complete(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 bio = ctx->args[1]; /* (struct request_queue *q, struct bio *bio) */

	bpf_map_delete_elem(&bios, &bio);
	return 0;
}

static __always_inline void leave(__u64 now)
{
	if (__sync_fetch_and_add(&out.inflight, -1) == 1)
		__sync_fetch_and_add(&out.busy_ns, now - out.busy_start);
}

SEC("raw_tp/block_rq_issue")
int dw_rq_issue(struct bpf_raw_tracepoint_args *ctx)
{
	struct request *rq = (struct request *)ctx->args[0];
	__u64 key = (__u64)rq, bio = (__u64)BPF_CORE_READ(rq, bio), now, *issued;

	if (!bio || !bpf_map_lookup_elem(&bios, &bio))
		return 0;
	now = bpf_ktime_get_ns();
	issued = bpf_map_lookup_elem(&rqs, &key);
	if (issued) {
		/* issued again: after a requeue (0) its device time starts now; without a requeue
		 * event the last issue counts */
		if (*issued == 0 && __sync_fetch_and_add(&out.inflight, 1) == 0)
			out.busy_start = now;
		*issued = now;
		return 0;
	}
	bpf_map_update_elem(&rqs, &key, &now, BPF_ANY);
	__sync_fetch_and_add(&out.issued, 1);
	if (__sync_fetch_and_add(&out.inflight, 1) == 0)
		out.busy_start = now;
	return 0;
}

/* block_rq_requeue(struct request *rq): the driver could not take it (a full virtqueue);
 * it will be issued again, and its device time starts then. The request stays known (its
 * issue time 0) until it completes: deleting it here lost completions under a concurrent
 * writer (9 of 13 requeued requests in one pass; kept, 0 of 510 in twelve passes). */
SEC("raw_tp/block_rq_requeue")
int dw_rq_requeue(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 key = ctx->args[0], *issued;

	issued = bpf_map_lookup_elem(&rqs, &key);
	if (!issued || *issued == 0)
		return 0;
	*issued = 0;
	__sync_fetch_and_add(&out.requeues, 1);
	leave(bpf_ktime_get_ns());
	return 0;
}

/* block_rq_complete(struct request *rq, blk_status_t error, unsigned int nr_bytes) */
SEC("raw_tp/block_rq_complete")
int dw_rq_complete(struct bpf_raw_tracepoint_args *ctx)
{
	struct request *rq = (struct request *)ctx->args[0];
	__u64 key = (__u64)rq, bio, now, d, *issued;

	issued = bpf_map_lookup_elem(&rqs, &key);
	if (!issued)
		return 0;
	now = bpf_ktime_get_ns();
	d = *issued ? now - *issued : 0; /* 0: its requeue was seen after its last issue */
	if (*issued)
		leave(now);
	bpf_map_delete_elem(&rqs, &key);
	bio = (__u64)BPF_CORE_READ(rq, bio);
	for (int i = 0; i < DW_MAX_BIOS_PER_RQ && bio; i++) {
		bpf_map_delete_elem(&bios, &bio);
		bio = (__u64)BPF_CORE_READ((struct bio *)bio, bi_next);
	}
	__sync_fetch_and_add(&out.requests, 1);
	__sync_fetch_and_add(&out.bytes, (__u32)ctx->args[2]);
	__sync_fetch_and_add(&out.sum_ns, d);
	if (d > out.max_ns)
		out.max_ns = d;
	return 0;
}

static __always_inline int reader(struct task_struct *t)
{
	return BPF_CORE_READ(t, pid) == cfg.tgid;
}

/* sched_switch(bool preempt, struct task_struct *prev, struct task_struct *next,
 *              unsigned int prev_state): prev_state 0 (TASK_RUNNING) or a preemption
 * leaves prev runnable, waiting for a CPU from this moment. */
SEC("raw_tp/sched_switch")
int dw_switch(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *prev = (struct task_struct *)ctx->args[1];
	struct task_struct *next = (struct task_struct *)ctx->args[2];
	__u64 now;

	if (out.on && reader(prev)) {
		now = bpf_ktime_get_ns();
		out.off_at = now;
		out.runnable_at = ((ctx->args[0] & 1) || (__u32)ctx->args[3] == 0) ? now : 0;
		__sync_fetch_and_add(&out.switches, 1);
	} else if (out.off_at && reader(next)) {
		now = bpf_ktime_get_ns();
		out.off_ns += now - out.off_at;
		if (out.runnable_at)
			out.runnable_ns += now - out.runnable_at;
		out.off_at = 0;
		out.runnable_at = 0;
	}
	return 0;
}

/* sched_wakeup(struct task_struct *p): p is runnable from here until it is switched in. */
SEC("raw_tp/sched_wakeup")
int dw_wakeup(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *p = (struct task_struct *)ctx->args[0];

	if (out.off_at && !out.runnable_at && reader(p))
		out.runnable_at = bpf_ktime_get_ns();
	return 0;
}
