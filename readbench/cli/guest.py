"""`readbench guest [--kernel K] [--cpu MODEL] [--clearcpuid FLAGS] … -- COMMAND …`: run any
readbench command inside a QEMU guest booted with a chosen kernel and CPU model.

    readbench guest --kernel debian-6.1 -- probe --json
    readbench guest --kernel debian-6.1 --cpu max,-erms --clearcpuid rep_good -- \\
        one --workload cached --size 64K --perf --json
    readbench guest --kernel debian-6.1 -- run --matrix quick --report

The kernel is an image path, a Debian package name (fetched with apt-get download and
unpacked into the cache, never installed), an alias (debian-6.1, debian-6.12) or `running`.
The host root stays read-only in the guest; the cache and --out are writable; the data
files sit on an ext4 virtio disk. KVM is used where a guest really boots under it; else
TCG, and then every time is emulated: the run's manifest, report and `compare` say so.
A run lands in --out as a normal run directory with guest.json beside its manifest.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from readbench.errors import BadInput

# Subcommands that make no sense inside a guest (or would boot one inside the guest).
_NOT_INSIDE = ("guest",)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "guest",
        help="run a readbench command in a guest kernel and CPU model (QEMU)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--kernel",
        default="debian-6.1",
        help="image path, Debian package, alias (debian-6.1, debian-6.12), running",
    )
    p.add_argument("--cpu", default="max", help="QEMU -cpu with flag edits, e.g. max,-erms,-fsrm")
    p.add_argument(
        "--clearcpuid",
        default=None,
        help="flags the guest kernel clears (clearcpuid=), e.g. rep_good",
    )
    p.add_argument("--append", action="append", default=[], help="another kernel argument")
    p.add_argument("--accel", default="auto", help="auto (KVM if it boots, else TCG), kvm, tcg")
    p.add_argument("--guest-cpus", type=int, default=2, help="guest vCPUs")
    p.add_argument("--memory", default="3G", help="guest memory")
    p.add_argument("--out", type=Path, default=Path("results"), help="results root (writable)")
    p.add_argument("--timeout", type=float, default=None, help="stop the guest after S seconds")
    p.add_argument("--show-console", action="store_true", help="also print the guest console")
    p.add_argument(
        "--pytest", action="store_true", help="run `python -m pytest ARGS` in the guest (tests)"
    )
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- then the readbench command")
    p.set_defaults(func=run)
    return p


def spec_of(args: argparse.Namespace, release: tuple[int, int] | None) -> Any:
    from readbench.model.guest import GuestSpec, parse_clearcpuid, parse_cpu, parse_memory

    return GuestSpec(
        kernel=args.kernel,
        cpu=parse_cpu(args.cpu),
        clearcpuid=parse_clearcpuid(args.clearcpuid, release) if args.clearcpuid else (),
        append=tuple(args.append),
        accel=args.accel,
        cpus=args.guest_cpus,
        memory_mib=parse_memory(args.memory),
    )


def command_of(args: argparse.Namespace) -> list[str]:
    cmd = list(args.command)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise BadInput("readbench guest: give the command to run after --, e.g. -- probe --json")
    if args.pytest:
        return ["-m", "pytest", "-p", "no:cacheprovider", *cmd]
    if cmd[0] in _NOT_INSIDE:
        raise BadInput(f"readbench guest -- {cmd[0]}: a guest cannot start another guest")
    from readbench.cli.main import COMMANDS

    names = {m.__name__.rsplit(".", 1)[1] for m in COMMANDS}
    if cmd[0] not in names and cmd[0] != "--version":
        raise BadInput(
            f"readbench guest -- {cmd[0]}: not a readbench command ({', '.join(sorted(names))})"
        )
    return ["-m", "readbench", *cmd]


# Inner options that name a directory the command writes: the guest gets each writable.
_WRITES = ("--out", "--report-out")


def writable_dirs(argv: list[str], results: Path) -> tuple[list[str], list[Path]]:
    """The command with `--out` pointing at the results root where the command writes runs
    and gave none, and the host directories it writes (made writable in the guest)."""
    argv = list(argv)
    sub = argv[2] if len(argv) > 2 and argv[:2] == ["-m", "readbench"] else ""
    # `one` keeps its temporary run directory inside the guest unless given --out
    if sub == "run" and not any(a == "--out" or a.startswith("--out=") for a in argv):
        argv += ["--out", str(results.resolve())]
    dirs = [results.resolve()]
    for i, a in enumerate(argv):
        for opt in _WRITES:
            if a == opt and i + 1 < len(argv):
                dirs.append(Path(argv[i + 1]).resolve())
            elif a.startswith(opt + "="):
                dirs.append(Path(a.split("=", 1)[1]).resolve())
    if sub == "run" and "--report" in argv and "--report-out" not in " ".join(argv):
        dirs.append(Path("reports").resolve())
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    return argv, sorted(set(dirs))


def run(args: argparse.Namespace) -> int:
    import signal

    from readbench.guest import kernels, launch
    from readbench.model.guest import parse_cpu

    parse_cpu(args.cpu)  # bad input is refused before anything is fetched or booted
    argv, dirs = writable_dirs(command_of(args), args.out)
    spec_of(args, None)
    kernel = kernels.resolve(args.kernel)
    spec = spec_of(args, kernel.release_tuple)

    def say(msg: str) -> None:
        sys.stderr.write(f"readbench guest: {msg}\n")
        sys.stderr.flush()

    def stop(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    old = signal.signal(signal.SIGTERM, stop)  # the guest is stopped on the way out
    try:
        res = launch.run(
            spec,
            kernel,
            argv,
            writable=dirs,
            say=say,
            timeout=args.timeout,
            show_console=args.show_console,
        )
    except KeyboardInterrupt as e:
        say(f"interrupted ({e or 'SIGINT'}): the guest was stopped; finished results are kept")
        return 143 if str(e) == "SIGTERM" else 130
    finally:
        signal.signal(signal.SIGTERM, old)
    for d in res.run_dirs:
        say(f"run directory {d} (guest.json beside its manifest)")
    say(
        f"Linux {kernel.release}, -cpu {spec.cpu.qemu}, {res.accel.name.upper()}: command "
        f"exited {res.returncode} after {res.seconds:.1f} s (boot included); console log "
        f"{res.console_log}"
    )
    if res.returncode == 125:
        say("the guest never reached user space, twice: read the console log")
        return 1
    if res.returncode == 255:
        say(
            "the guest stopped without the command's exit status (kernel panic, QEMU error or "
            "out of memory): read the console log"
        )
        return 1
    return res.returncode
