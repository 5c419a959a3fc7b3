"""The paired worker: one process measures a cell in several *arms* (hook off, hook on; or, for
`readbench calibrate`, nothing toggled and known injected delays), alternating per value.

Everything but the arm is shared inside the process: fd, user buffer, pipe writer, data file,
CPU placement. Each block of values runs every arm once, in a random order; after each toggle
a short settling batch is run and discarded (the first reads after attaching a link or
changing the delay pay for cold caches and branch predictors). Across processes these per-arm
values pair up by block, so the statistic is one-sample: see readbench.analysis.paired.

    python -m readbench.measure.paired --rb-workload cached --rb-size 64 --rb-hook rawtp:sys_enter
        --rb-name NAME --processes 4 --pairs 20 --min-time 0.02 --output round.json

The parent spawns --processes children one after the other (never two at once: they would
compete for the CPUs) and writes one pyperf BenchmarkSuite to --output: one benchmark per arm,
one pyperf run per child, runs of one child marked with the same `readbench_process`, so
pyperf's own tools read the file (e.g. `python -m pyperf compare_to` across arms).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyperf

from readbench.errors import MeasurementError
from readbench.measure.readloop import ReadLoop
from readbench.measure.worker import add_cell_args, attach_hook, cell_argv, die_with_parent
from readbench.model.schema import OFF_SUFFIX

SETTLE_FRACTION = 0.25  # settling batch after a toggle, as a fraction of a value's loops
# The A/A arm's sham toggle: the atlas's counting program (readbench.measure.survey.PointHook)
# attached and detached like a hook, on a point the read loop never reaches: task_rename
# fires only when a task's comm changes (exec, PR_SET_NAME), never in read(), pread64() or a
# pipe read (tests/system/test_paired.py counts 0 per read). A real link, real attach and
# detach (RCU, static keys, text patching land where a hook's would), and nothing in the
# timed path: an A/A false positive then measures toggling's side effects, not nothing.
SHAM_HOOKS = {"rawtp": "point:rawtp:task/task_rename", "tp": "point:tp:task/task_rename"}


def sham_hook(attach_types: dict[str, Any], root: bool) -> tuple[str, str]:
    """(the A/A arm's --rb-hook, why) from the probe's attach types: raw_tp, else a classic
    tracepoint, else nothing toggled (said so: the A/A check is then the weak one)."""
    if not root:
        return "none", "not root: the A/A arm toggles nothing (a sham link needs BPF)"
    for kind, hook in SHAM_HOOKS.items():
        v = attach_types.get(kind) or {}
        if v.get("available"):
            return hook, f"a counting program on {kind} task_rename (never fires in a read)"
    reasons = "; ".join(f"{k}: {(attach_types.get(k) or {}).get('reason')}" for k in SHAM_HOOKS)
    return "none", f"no tracepoint attach type here ({reasons}): the A/A arm toggles nothing"


def child_seed(seed: int, process_no: int) -> int:
    """Independent seeds per (trial or round, process): seed + k would make trial s's
    process k+1 replay trial s+1's process k (the same block orders). A hash, not numpy:
    importing numpy starts an OpenBLAS thread in the measuring process, and a second thread
    taxes every read (fdget takes a file reference; readbench_threads records it)."""
    digest = hashlib.blake2b(f"{seed}:{process_no}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little")


@dataclass(frozen=True)
class Arm:
    """One state of the cell. `suffix` names its benchmark (cell name + suffix)."""

    suffix: str
    hook: bool = False  # the cell's hook attached
    delay_pct: float = 0.0  # injected busy delay per op, % of the op's measured time

    def label(self) -> str:
        return self.suffix or "on"


def hook_arms() -> list[Arm]:
    return [Arm(OFF_SUFFIX), Arm("", hook=True)]


def parse_arms(text: str) -> list[Arm]:
    """'off,on' (a hook toggled) or, for calibration, 'off,aa' (the cell's hook, the sham,
    toggled: nothing else changes) and 'off,dX' (the sham toggled as well, plus a busy
    delay of X % of the read)."""
    arms = []
    for t in text.split(","):
        t = t.strip()
        if t == "off":
            arms.append(Arm(OFF_SUFFIX))
        elif t == "on":
            arms.append(Arm("", hook=True))
        elif t == "aa":
            arms.append(Arm("#aa", hook=True))
        elif t.startswith("d") and _is_pct(t[1:]):
            arms.append(Arm(f"#d{t[1:]}", hook=True, delay_pct=float(t[1:])))
        else:
            raise ValueError(f"arm {t!r}: expected off, on, aa or dPCT")
    return arms


def _is_pct(s: str) -> bool:
    try:
        return 0 < float(s) < 1000
    except ValueError:
        return False


def arms_arg(arms: list[Arm]) -> str:
    out = []
    for a in arms:
        if a.suffix == OFF_SUFFIX:
            out.append("off")
        elif a.delay_pct:
            out.append(f"d{a.delay_pct:g}")
        elif a.suffix == "#aa":
            out.append("aa")
        else:
            out.append("on")
    return ",".join(out)


# -- one child process ---------------------------------------------------------------------


def measure_process(args: argparse.Namespace, arms: list[Arm], seed: int) -> dict[str, Any]:
    """Run in the child: every block times each arm once, in a random order."""
    rng = random.Random(seed)
    loop = ReadLoop(args.rb_workload, args.rb_size, args.rb_data or None, args.rb_offset,
                    args.rb_align)  # fmt: skip
    hook = attach_hook(args) if any(a.hook for a in arms) else None
    try:
        if hook is not None:
            hook.detach()  # calibrate the hook-off loop count; arms attach as they need
        loops = args.loops or loop.calibrate(args.min_time * 1e9)
        settle = max(1, int(loops * SETTLE_FRACTION))
        spins = {}
        if any(a.delay_pct for a in arms):
            base = min(loop.run(loops).ns / loops for _ in range(3))
            spins = {a.suffix: loop.spin_for(base * a.delay_pct / 100, loops) for a in arms}
        state: Arm | None = None

        def enter(arm: Arm) -> None:
            nonlocal state
            if hook is not None:
                if arm.hook:
                    hook.reattach()
                else:
                    hook.detach()
            loop.set_spin(spins.get(arm.suffix, 0))
            if state != arm:
                loop.run(settle)  # discarded: the first reads after a toggle
            state = arm

        for arm in arms:  # warm-up value of each arm, discarded
            enter(arm)
            loop.run(loops)
        values: dict[str, list[float]] = {a.suffix: [] for a in arms}
        orders = []
        for _ in range(args.pairs):
            order = list(arms)
            rng.shuffle(order)
            orders.append("".join(str(arms.index(a)) for a in order))
            for arm in order:
                enter(arm)
                r = loop.run(loops)
                values[arm.suffix].append(r.ns / r.ops / 1e9)
        return {
            "pid": os.getpid(),
            "loops": loops,
            "settle_loops": settle,
            "spin_iters": spins,
            "values": values,
            "orders": orders,
            "threads": len(os.listdir("/proc/self/task")),
        }
    finally:
        if hook is not None:
            hook.close()
        loop.close()


# -- the parent: children one after the other, one pyperf suite -----------------------------


def child_cmd(args: argparse.Namespace, process_no: int) -> list[str]:
    return [
        sys.executable, "-m", "readbench.measure.paired", "--child",
        *cell_argv(args.rb_workload, args.rb_size, args.rb_offset, args.rb_hook, args.rb_align,
                   args.rb_data),
        "--rb-name", args.rb_name, "--arms", args.arms, "--pairs", str(args.pairs),
        "--min-time", str(args.min_time), "--loops", str(args.loops or 0),
        "--seed", str(child_seed(args.seed, process_no)),
    ]  # fmt: skip


def suite_of(
    name: str, arms: list[Arm], children: list[dict[str, Any]], tag: str, toggle: str = "none"
) -> str:
    """The pyperf suite JSON: one benchmark per arm, one run per child process. `toggle`:
    what the toggled arms attach (the cell's hook, or the A/A arm's sham)."""
    benches = []
    for a in arms:
        runs = []
        for k, ch in enumerate(children):
            md = {
                "name": name + a.suffix,
                "loops": ch["loops"],
                "unit": "second",
                "readbench_paired": name,
                "readbench_arm": a.label(),
                "readbench_process": f"{tag}-{k}-{ch['pid']}",
                "readbench_block_orders": " ".join(ch["orders"]),
                "readbench_settle_loops": ch["settle_loops"],
                "readbench_threads": ch["threads"],
                "readbench_toggle": toggle,
            }
            if a.delay_pct:
                md["readbench_delay_pct"] = a.delay_pct
                md["readbench_spin_iters"] = ch["spin_iters"][a.suffix]
            runs.append(pyperf.Run(ch["values"][a.suffix], metadata=md, collect_metadata=False))
        benches.append(pyperf.Benchmark(runs))
    buf = io.StringIO()
    pyperf.BenchmarkSuite(benches).dump(buf)
    return buf.getvalue()


def command(
    cell: list[str],
    name: str,
    arms: str,
    *,
    processes: int,
    pairs: int,
    min_time: float,
    seed: int,
    output: Path,
) -> list[str]:
    """The paired worker's command line: one cell (worker.cell_argv), its arms, its design.
    The one place it is spelled, for a run's hooked cells, calibrate and the atlas."""
    return [
        sys.executable, "-m", "readbench.measure.paired", *cell,
        "--rb-name", name, "--arms", arms, "--processes", str(processes),
        "--pairs", str(pairs), "--min-time", str(min_time), "--seed", str(seed),
        "--output", str(output),
    ]  # fmt: skip


def measure(
    cell: list[str],
    arm: str = "on",
    *,
    processes: int,
    pairs: int,
    min_time: float,
    seed: int,
    timeout: float = 900,
    name: str = "paired",
) -> list[tuple[Any, Any]]:
    """Cell and arm in, pairs out: `processes` fresh worker processes of `pairs` blocks
    each, timing `arm` ("on", "aa", "dPCT") against off; per process (off, arm) ns.
    MeasurementError with the worker's own message when it fails."""
    (arm_obj,) = parse_arms(arm)
    with tempfile.TemporaryDirectory(prefix="readbench-paired-") as tmp:
        out = Path(tmp) / "suite.json"
        cmd = command(cell, name, f"off,{arm}", processes=processes, pairs=pairs,
                      min_time=min_time, seed=seed, output=out)  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=timeout)
        if proc.returncode != 0:
            raise MeasurementError(f"paired worker ({arm}): {proc.stderr.strip()[-500:]}")
        # imported here, in the parent: store.load brings numpy, whose OpenBLAS thread would
        # tax every read of a worker that imported this module (readbench_threads)
        from readbench.store.load import suite_pairs

        return suite_pairs(pyperf.BenchmarkSuite.load(str(out)), name, arm_obj.suffix)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m readbench.measure.paired")
    add_cell_args(p)
    p.add_argument("--rb-name", required=True)
    p.add_argument("--arms", default="off,on")
    p.add_argument("--processes", type=int, default=4)
    p.add_argument("--pairs", type=int, default=20)
    p.add_argument("--min-time", type=float, default=0.02)
    p.add_argument("--loops", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--affinity", default=None)
    p.add_argument("--output", type=Path)
    p.add_argument("--child", action="store_true")
    args = p.parse_args(argv)
    arms = parse_arms(args.arms)
    die_with_parent()
    if args.child:
        json.dump(measure_process(args, arms, args.seed), sys.stdout)
        sys.stdout.write("\n")
        return 0
    children = []
    for k in range(args.processes):
        cmd = child_cmd(args, k)
        if args.affinity:
            cmd = ["taskset", "-c", args.affinity, *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
            return proc.returncode or 1
        children.append(json.loads(proc.stdout))
    text = suite_of(args.rb_name, arms, children, tag=f"s{args.seed}", toggle=args.rb_hook)
    if args.output:
        args.output.write_text(text)  # the runner renames it into place when whole
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
