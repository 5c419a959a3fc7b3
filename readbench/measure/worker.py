"""The pyperf worker script: one cell, measured with pyperf's bench_time_func.

Run as `python -m readbench.measure.worker --rb-workload W --rb-size N ... [pyperf options]`.
pyperf's main process re-executes this module for each worker process. Each worker opens
the cell (data file, prefaulted buffer, pipe writer), attaches the cell's BPF hook in its
own process (links are its fds, so they die with it), then pyperf calls `timed(loops)`,
which returns the C loop's own elapsed time: Python never sits inside the timed region.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys
from typing import Any

import pyperf

from readbench.measure.readloop import ReadLoop

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """If the orchestrator (or pyperf's main process) is SIGKILLed, take this worker down
    too, so no hooked worker outlives the run that started it."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # parent already gone before prctl took effect
        os._exit(1)


def json_pass_main(p: argparse.ArgumentParser, run: Any, argv: list[str] | None, what: str) -> int:
    """A side pass's entry point (`python -m readbench.measure.X`): parse, die with the
    runner, run `run(args)`, print its one JSON object on stdout; a ReadbenchError goes to
    stderr with its exit code, for the runner to record as the pass's failure."""
    import json

    from readbench.errors import ReadbenchError

    args = p.parse_args(argv)
    die_with_parent()
    try:
        res = run(args)
    except ReadbenchError as e:
        sys.stderr.write(f"readbench {what}: {e}\n")
        return e.exit_code
    json.dump(res, sys.stdout, default=str)
    sys.stdout.write("\n")
    return 0


# One cell on a command line: the pyperf worker and the side passes take the same options
# (prefixed, so they cannot clash with pyperf's own).
def add_cell_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rb-workload", required=True)
    p.add_argument("--rb-size", type=int, required=True)
    p.add_argument("--rb-offset", type=int, default=0)
    p.add_argument("--rb-hook", default="none")
    p.add_argument("--rb-data", default="")
    p.add_argument("--rb-align", type=int, default=0)


def cell_argv(workload: str, size: int, offset: int, hook: str, align: int, data: str) -> list[str]:
    argv = [
        "--rb-workload", workload,
        "--rb-size", str(size),
        "--rb-offset", str(offset),
        "--rb-hook", hook,
        "--rb-align", str(align),
    ]  # fmt: skip
    return [*argv, "--rb-data", data] if data else argv


def open_loop(args: Any) -> ReadLoop:
    return ReadLoop(
        args.rb_workload, args.rb_size, args.rb_data or None, args.rb_offset, args.rb_align
    )


def attach_hook(args: Any, **kw: Any) -> Any:
    """The cell's hook attached in this process (links die with it), or None for `none`."""
    if args.rb_hook == "none":
        return None
    if args.rb_hook.startswith("point:"):
        # The atlas's counting program on any point: point:ATTACH:GROUP/TARGET (its overhead)
        from readbench.bpf.links import NO_TGID
        from readbench.bpf.points import PointHook
        from readbench.model import hookspec

        spec = hookspec.parse(args.rb_hook)
        # floor: the same program with a filter that never matches (the BPF-stats floor)
        tgid = NO_TGID if kw.get("floor") else None
        return PointHook(spec.attach, spec.bare_target, spec.group, tgid=tgid,
                         stats=bool(kw.get("stats")))  # fmt: skip
    from readbench.bpf.attach import attach_hook
    from readbench.model import hookspec

    return attach_hook(
        hookspec.parse(args.rb_hook), tgid=os.getpid(), workload=args.rb_workload, **kw
    )


def _add_args(cmd: list[str], args: Any) -> None:
    # pyperf re-executes us for each worker: pass our own options along.
    cmd.extend(
        cell_argv(
            args.rb_workload, args.rb_size, args.rb_offset, args.rb_hook, args.rb_align,
            args.rb_data,
        )
    )  # fmt: skip
    cmd.extend(["--rb-name", args.rb_name])


class OpenCell:
    """What one worker process holds open while pyperf times it."""

    def __init__(self, args: Any) -> None:
        self.loop = open_loop(args)
        self.hook = attach_hook(args)

    def timed(self, loops: int) -> float:
        return self.loop.run(loops).ns / 1e9


def main(argv: list[str] | None = None) -> None:
    runner = pyperf.Runner(add_cmdline_args=_add_args)
    add_cell_args(runner.argparser)
    runner.argparser.add_argument("--rb-name", required=True)
    args = runner.parse_args(argv)
    runner.metadata.update(
        {
            "readbench_workload": args.rb_workload,
            "readbench_size": args.rb_size,
            "readbench_buf_offset": args.rb_offset,
            "readbench_hook": args.rb_hook,
            "unit": "second",
        }
    )
    die_with_parent()
    if args.worker:
        cell = OpenCell(args)
        # A second thread would tax every read (fdget takes a file reference once a process
        # has several threads): record it so a regression shows in the results.
        runner.metadata["readbench_threads"] = len(os.listdir("/proc/self/task"))
        runner.bench_time_func(args.rb_name, cell.timed)
    else:
        # pyperf's main process only spawns workers; it never calls the function.
        runner.bench_time_func(args.rb_name, _never_called)


def _never_called(loops: int) -> float:  # pragma: no cover
    raise RuntimeError("pyperf main process must not time anything")


if __name__ == "__main__":
    main(sys.argv[1:])
