/* devwait.h — the layout shared by devwait.bpf.c and its loader (readbench/bpf/devwait.py
 * reads both structs from this file; tests/unit/test_c_abi.py checks the parse). */
#ifndef DEVWAIT_H
#define DEVWAIT_H

#define DW_MAX_BIOS 16384    /* bios remembered at once */
#define DW_MAX_BIOS_PER_RQ 64 /* bios of one request forgotten at its completion */
#define DW_MAX_INFLIGHT 4096 /* requests in flight at once */

/* .rodata: set by the loader before load. */
struct dw_cfg {
	__u32 tgid; /* the measuring process: only the bios it queues are followed, and its
		     * main thread (pid == tgid, the one running the C loop) off the CPU */
	__u32 pad;
};

/* .bss: read (and `on` written) by the loader through an mmap of the map. */
struct dw_out {
	__u64 on;         /* the loader sets 1 around the timed loop: bios queued then count */
	__u64 bios;       /* bios this process queued (block_bio_queue) while on */
	__u64 splits;     /* bios split off them (block_split) */
	__u64 issued;     /* requests issued carrying one of them (block_rq_issue) */
	__u64 requests;   /* of those, completed (block_rq_complete) */
	__u64 requeues;   /* issues the driver handed back (block_rq_requeue) */
	__u64 bytes;      /* bytes those completions reported */
	__u64 sum_ns;     /* sum over requests of complete - issue */
	__u64 max_ns;     /* the longest one */
	__u64 busy_ns;    /* union of the requests' intervals: time >= 1 request was in flight */
	__u64 inflight;   /* requests issued and not yet complete */
	__u64 busy_start; /* when inflight last went 0 -> 1 */
	/* The measuring thread off the CPU (sched_switch, sched_wakeup): the rest of wall - CPU
	 * beside the device, measured. */
	__u64 switches;    /* times it was switched out while on */
	__u64 off_ns;      /* sum of switched out -> switched in */
	__u64 runnable_ns; /* of that, runnable (woken, or preempted) -> switched in */
	__u64 off_at;      /* when it was last switched out; 0 while it runs */
	__u64 runnable_at; /* when it last became runnable while out; 0 while asleep */
};

#endif
