"""Program time and mechanism time of a hooked cell, from its BPF-stats side file (bpf/):
the split of a paired claim's Δ into what the BPF program itself ran and what attaching it
costs around it (dispatch, trampoline, the tracepoint's own work)."""

from __future__ import annotations

from typing import Any

from readbench.model.sidefiles import BpfFile, BpfFloor, BpfSnapshot


def _program_totals(snapshot: BpfSnapshot) -> dict[str, tuple[int, int]]:
    """{program key: (run_cnt, run_time_ns)}; keyed by id when present, else name."""
    return {
        str(p.get("id", p.get("name", "?"))): (p.get("run_cnt") or 0, p.get("run_time_ns") or 0)
        for p in snapshot["programs"]
    }


def _delta_totals(obj: BpfFile | BpfFloor) -> tuple[int, int, bool]:
    """(run_cnt, run_time_ns) of the measured loop: snapshot − snapshot_before
    (totals count from program load); False when there are no programs."""
    after = _program_totals(obj["snapshot"])
    before = _program_totals(obj["snapshot_before"])
    run_cnt = sum(v[0] - before.get(k, (0, 0))[0] for k, v in after.items())
    run_ns = sum(v[1] - before.get(k, (0, 0))[1] for k, v in after.items())
    return run_cnt, run_ns, bool(after)


def bpf_rows(bpf: list[BpfFile], comps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Split each hooked cell's Δ into BPF program time and mechanism time.

    program ns/op = (run_time_ns − floor ns/run × run_cnt) / ops, where the floor is
    the same program with a never-matching filter (what the stats' own clock reads
    and the dispatch cost inside the measured span); without a floor in the side file
    the raw run_time_ns is used and said so. mechanism = Δ (timing pass) − program."""
    by_name = {c["name"]: c for c in comps}
    rows = []
    for obj in bpf:
        run_cnt, run_ns, has_progs = _delta_totals(obj)
        ops = obj["ops"]
        ok = ops > 0 and has_progs
        floor = obj.get("floor")
        floor_per_run = None
        if floor is not None:
            f_cnt, f_ns, f_ok = _delta_totals(floor)
            if f_ok and f_cnt > 0:
                floor_per_run = f_ns / f_cnt
        raw_ns = run_ns / ops if ok else None
        program_ns = raw_ns
        if ok and floor_per_run is not None:
            program_ns = (run_ns - floor_per_run * run_cnt) / ops
        c = by_name.get(obj["cell"], {})
        delta = c.get("delta_ns")
        rows.append(
            {
                "cell": obj["cell"],
                "workload": obj["workload"],
                "size": obj["size"],
                "hook": obj["hook"],
                "programs": [p.get("name", "?") for p in obj["snapshot"]["programs"]],
                "run_cnt": run_cnt,
                "runs_per_op": run_cnt / ops if ok else None,
                "ns_per_run": run_ns / run_cnt if run_cnt else None,
                "floor_ns_per_run": floor_per_run,
                "raw_program_ns": raw_ns,
                "program_ns": program_ns,
                "side_ns_per_op": obj.get("ns_per_op"),
                "delta_ns": delta,
                "mechanism_ns": (delta - program_ns)
                if delta is not None and program_ns is not None
                else None,
                "significant": c.get("significant"),
            }
        )
    return rows
