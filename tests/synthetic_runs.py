"""SYNTHETIC results directories for the stats / report / compare tests.

NOTHING HERE IS A MEASUREMENT. The numbers are drawn from a known model so the
tests can check that the statistics find exactly the effects that were put in.
Every run written here says so in manifest.json (`synthetic`) and in its CPU model.

The files follow docs/contracts.md and are written with the real pyperf API
(pyperf.Run / Benchmark / BenchmarkSuite), so `python -m pyperf compare_to` reads them.

Model of one cell: ns/op = base(workload, size) · hook factor · injected shift
· process effect (lognormal, between-process spread) · value noise (lognormal,
within-process spread) + rare positive spikes (timer interrupts).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyperf

from readbench.model import schema
from readbench.model.matrix import Block, Matrix

SYNTHETIC_NOTE = (
    "SYNTHETIC test fixture (tests/synthetic_runs.py): generated numbers, not a measurement"
)

BASE_NS = {"cached": (300.0, 0.06), "pipe": (900.0, 0.12), "uncached": (2500.0, 0.1)}
# hook -> (fixed ns per op, fraction of base): a known, made-up cost
HOOK_COST = {"rawtp:sys_enter:empty": (60.0, 0.0), "fentry:vfs_read:count": (25.0, 0.0)}


def base_ns(workload: str, size: int) -> float:
    fixed, per_byte = BASE_NS.get(workload, (500.0, 0.08))
    return fixed + per_byte * size


def slug(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def cell_name(workload: str, size: int, hook: str, aa: bool = False) -> str:
    return f"{workload}/{size}/{hook}{'#aa' if aa else ''}"


def probe_object(
    model: str = "SYNTHETIC CPU (test fixture)", erms: bool = True, emulated: bool = False
) -> dict[str, Any]:
    flags = ["fpu", "sse2", "avx2", "rep_good", "hypervisor"] + (["erms", "fsrm"] if erms else [])
    guest = {"launcher": "readbench guest", "accel": "tcg", "emulated": True,
             "cpu_model": "max" if erms else "max,-erms"}  # fmt: skip
    return {
        "virtualization": {
            "hypervisor": True,
            "guest": guest if emulated else None,
            "accel": "tcg" if emulated else None,
            "emulated": emulated,
        },
        "cpu": {"model": model, "flags": flags, "vendor": "SyntheticVendor"},
        "kernel": {"release": "6.1.0-synthetic"},
        "copy_routine": {
            "name": "rep_movs_alternative" if erms else "copy_user_generic_unrolled",
            "why": "synthetic: chosen by the fixture" + (" (FSRM set)" if erms else " (no ERMS)"),
        },
        "perf": {"hardware_counters": False},
        "attach_types": {
            "rawtp": {"available": True, "reason": ""},
            "kprobe": {"available": False, "reason": "errno 1 EPERM: synthetic lockdown"},
        },
    }


def _run(name: str, ns: np.ndarray, **md: Any) -> pyperf.Run:
    return pyperf.Run(
        [float(x) / 1e9 for x in ns],
        warmups=[(1000, float(ns[0]) / 1e9)],
        metadata={"name": name, "loops": 1000, "unit": "second", **md},
        collect_metadata=False,
    )


def _paired_benches(
    name: str,
    mu_off: float,
    factor: float,
    processes: int,
    blocks: int,
    between_cv: float,
    within_cv: float,
    rng: np.random.Generator,
    block_orders: bool = False,
) -> list[pyperf.Benchmark]:
    """Off and on benchmarks of a paired cell: on = off × factor, per process and block.
    `block_orders`: store a random arm order per block, as the paired worker does (the
    values do not depend on it: no position effect is put in)."""
    off_runs, on_runs = [], []
    order_rng = np.random.default_rng(rng.integers(2**32))
    for k in range(processes):
        proc = mu_off * rng.lognormal(0.0, between_cv)
        drift = rng.lognormal(0.0, within_cv, size=blocks)  # shared by both arms of a block
        off = proc * drift * rng.lognormal(0.0, within_cv / 3, size=blocks)
        on = proc * factor * drift * rng.lognormal(0.0, within_cv / 3, size=blocks)
        md = {"readbench_paired": name, "readbench_process": f"synthetic-{k}"}
        if block_orders:
            md["readbench_block_orders"] = " ".join(
                "01" if order_rng.random() < 0.5 else "10" for _ in range(blocks)
            )
        off_runs.append(_run(name + "#off", off, readbench_arm="#off", **md))
        on_runs.append(_run(name, on, readbench_arm="on", **md))
    return [pyperf.Benchmark(off_runs), pyperf.Benchmark(on_runs)]


def _perf(name: str, w: str, s: int, copy: float, ns: float) -> dict[str, Any]:
    """A made-up perf pass: the copy share `copy`, the rest spread over the layers, with call
    chains (folded, as the sampler stores them) and, for uncached and direct, a device wait."""
    top = "entry_SYSCALL_64;do_syscall_64;" + (
        "ksys_read;vfs_read;anon_pipe_read" if w == "pipe" else
        "__x64_sys_pread64;vfs_read;ext4_file_read_iter;filemap_read")  # fmt: skip
    rest = 1 - copy
    stacks = {
        f"{top};copy_page_to_iter;_copy_to_iter;rep_movs_alternative": int(1000 * copy),
        f"{top};filemap_get_pages;filemap_get_read_batch;xas_load": int(300 * rest),
        top: int(100 * rest),
        "entry_SYSCALL_64;do_syscall_64": int(300 * rest),
        "entry_SYSCALL_64;do_syscall_64;__x64_sys_pread64;vfs_read": int(200 * rest),
        "[user]": int(100 * rest),
        # the harness's ioctl around the timed loop: left out of the read's samples
        "entry_SYSCALL_64;do_syscall_64;__x64_sys_ioctl;perf_ioctl": 5,
    }
    leaf: dict[str, int] = {}
    for st, n in stacks.items():
        if "perf_ioctl" not in st:
            leaf[st.rsplit(";", 1)[-1]] = leaf.get(st.rsplit(";", 1)[-1], 0) + n
    device = {"available": False, "reason": "synthetic: no block device"}
    if w in ("uncached", "direct"):
        device = {"available": True, "source": "synthetic", "reads": 1000,
                  "device_ns_per_read": 0.6 * ns, "requests_per_read": 1.0,
                  "request_ns_mean": 0.6 * ns, "bytes_per_read": s}  # fmt: skip
    clock = {"name": "task-clock", "kind": "software", "supported": True,
             "value": int(ns * 1000), "per_op": ns, "hardware": False}  # fmt: skip
    switches = {"name": "context-switches", "kind": "software", "supported": True, "value": 3,
                "per_op": 0.003, "hardware": False}  # fmt: skip
    return {
        "cell": name,
        "workload": w,
        "size": s,
        "copy_fraction": copy,
        "copy_symbol": "rep_movs_alternative",
        "functions": [{"name": k, "samples": v} for k, v in leaf.items()],
        "callchains": {"folded": [[k, v] for k, v in stacks.items() if v]},
        "device_wait": device,
        "counting": {"ops": 1000, "syscalls": 1000, "loop_ns": int(ns * 1000)},
        "counters": [clock, switches],
        "null_syscall_ns": 90.0,
    }


def write_run(
    path: Path,
    *,
    run_id: str = "synthetic-run",
    workloads: Iterable[str] = ("cached", "pipe"),
    sizes: Iterable[int] = (64, 4096, 65536),
    hooks: Iterable[str] = ("none", "rawtp:sys_enter:empty"),
    processes: int = 12,
    values: int = 10,
    aa: bool = True,
    seed: int = 0,
    shift: Mapping[str, float] | None = None,
    between_cv: float = 0.01,
    within_cv: float = 0.01,
    hook_cost: Mapping[str, tuple[float, float]] | None = None,
    erms: bool = True,
    emulated: bool = False,
    cpu_model: str = "SYNTHETIC CPU (test fixture)",
    side_files: bool = True,
    no_data_cells: Mapping[str, str] | None = None,
    alpha: float = schema.DEFAULT_ALPHA,
    margin: float = schema.DEFAULT_MARGIN,
    block_orders: bool = False,
    boot: float = 1.0,
) -> Path:
    """Write a synthetic run directory and return it.

    `shift` multiplies the named cells' times (1.05 = a 5 % slowdown injected).
    `no_data_cells` lists extra manifest cells (name -> reason) with no values.
    `boot` multiplies every read of the run, both arms (the between-boot variance).
    The noise of a cell depends on (seed, cell name) only, so two runs with the same
    seed differ exactly where `shift`/`erms` say they do, plus fresh noise when the
    seeds differ."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    shift = dict(shift or {})
    costs = dict(HOOK_COST if hook_cost is None else hook_cost)
    workloads, sizes, hooks = list(workloads), list(sizes), list(hooks)
    cells: list[dict[str, Any]] = []
    benches: list[pyperf.Benchmark] = []
    for w in workloads:
        for s in sizes:
            for h in hooks + (["none#aa"] if aa and "none" in hooks else []):
                is_aa = h == "none#aa"
                hook = "none" if is_aa else h
                name = cell_name(w, s, hook, is_aa)
                rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
                fixed, frac = costs.get(hook, (0.0, 0.0)) if hook != "none" else (0.0, 0.0)
                # no-ERMS machine: large copies slower, small ones unchanged (made-up shape)
                # `boot`: this run's own factor on every read (a reboot moves everything)
                machine = (1.0 if erms or s < 1024 else 1.15) * boot
                mu = (base_ns(w, s) * machine * (1 + frac) + fixed) * shift.get(name, 1.0)
                if hook != "none" or is_aa:
                    # Paired, as readbench.measure.paired writes it: off and on arms of one
                    # process share its placement and each block's drift.
                    mu_off = base_ns(w, s) * machine
                    benches += _paired_benches(
                        name,
                        mu_off,
                        mu / mu_off,
                        processes,
                        values,
                        between_cv,
                        within_cv,
                        rng,
                        block_orders,
                    )
                else:
                    runs = []
                    for _ in range(processes):
                        proc = mu * rng.lognormal(0.0, between_cv)
                        v = proc * rng.lognormal(0.0, within_cv, size=values)
                        spikes = rng.random(values) < 0.02
                        v = v + spikes * rng.exponential(0.3 * proc, size=values)
                        runs.append(_run(name, v))
                    benches.append(pyperf.Benchmark(runs))
                cells.append(
                    {
                        "name": name,
                        "workload": w,
                        "size": s,
                        "buf_offset": 0,
                        "hook": hook,
                        "aa_copy": is_aa,
                        "status": "done",
                        "reason": "",
                    }
                )
                if side_files and hook != "none":
                    _write_json(
                        path / "bpf" / f"{slug(name)}.json",
                        {
                            "cell": name,
                            "hook": hook,
                            "ops": 1_000_000,
                            "syscalls": 1_000_000,
                            "seconds": 1.0,
                            # totals since load: before + the measured loop's share
                            "snapshot_before": _snap(1000, 5 * 1000),
                            # program time: a made-up 40 % of the fixed cost + a 5 ns floor
                            "snapshot": _snap(
                                1000 + 1_000_000, 5 * 1000 + int((0.4 * fixed + 5) * 1_000_000)
                            ),
                            "floor": {
                                "ops": 1_000_000,
                                "snapshot_before": _snap(10, 50),
                                "snapshot": _snap(10 + 1_000_000, 50 + 5 * 1_000_000),
                            },
                        },
                    )
                if side_files and not is_aa:
                    copy = float(min(0.9, s / (s + 2000.0)))
                    perf = _perf(name, w, s, copy, base_ns(w, s))
                    _write_json(path / "perf" / f"{slug(name)}.json", perf)
    for name, reason in (no_data_cells or {}).items():
        w, s, hook = name.split("/", 2)
        cells.append(
            {
                "name": name,
                "workload": w,
                "size": int(s),
                "buf_offset": 0,
                "hook": hook,
                "aa_copy": False,
                "status": "unavailable",
                "reason": reason,
            }
        )
    pyperf.BenchmarkSuite(benches).dump(str(path / "suite.json"), replace=True)
    if side_files:
        res = []
        for variant, peak in (("movsb", 30.0 if erms else 12.0), ("movsq", 20.0), ("libc", 28.0)):
            for s in (64, 4096, 65536, 1 << 20):
                gbps = peak * s / (s + 512.0)
                res.append({"variant": variant, "size": s, "gbps": gbps, "ns_per_copy": s / gbps})
        _write_json(
            path / "copy.json",
            {
                "results": res,
                "perf_bench": [],
                "skipped": [{"variant": "unrolled", "reason": "synthetic skip"}],
            },
        )
    # The same schema the runner writes (readbench.model.schema), with a synthetic note.
    manifest = schema.new_manifest(
        run_id=run_id,
        created="2026-01-01T00:00:00Z",
        status="complete",
        synthetic=SYNTHETIC_NOTE,
        versions={"readbench": "0.1.0", "pyperf": pyperf.__version__, "python": "3.11"},
        probe=probe_object(cpu_model, erms, emulated),
        matrix=Matrix(
            "synthetic",
            [Block(list(workloads), list(sizes), list(hooks), [0])],
            rounds=2,
            processes_per_round=processes // 2,
            values=values,
            warmups=1,
            aa=aa,
        ).to_json(),
        alpha=alpha,
        margin=margin,
        cells=cells,
    )
    manifest["unavailable"] = [
        {
            "hook": "kprobe:rep_movs_alternative:empty",
            "workload": "*",
            "reason": "errno 1 EPERM: synthetic lockdown",
        }
    ]
    _write_json(path / "manifest.json", manifest)
    return path


def _snap(run_cnt: int, run_time_ns: int) -> dict[str, Any]:
    return {
        "programs": [
            {"name": "synthetic_prog", "id": 7, "run_cnt": run_cnt, "run_time_ns": run_time_ns}
        ]
    }


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1))
