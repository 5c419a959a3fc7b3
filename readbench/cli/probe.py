"""`readbench probe [--json]`: what this CPU and kernel are, which copy routine runs, what the
kernel permits (perf counters, each BPF attach type with its reason)."""

from __future__ import annotations

import argparse
from typing import Any

from readbench.cli.common import add_common_cell_args, emit_json


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("probe", help="what this machine is and permits")
    add_common_cell_args(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from readbench.measure import machine

    data_dir = args.data_dir
    if data_dir is not None:
        from readbench.measure.datafiles import check_data_dir

        check_data_dir(data_dir)
    info = machine.probe(data_dir)
    if args.json:
        emit_json(info)
        return 0
    from rich.console import Console
    from rich.table import Table

    con = Console()
    cpu, k, r = info["cpu"], info["kernel"], info["copy_routine"]
    con.print(
        f"[bold]CPU[/bold]      {cpu['model']} ({cpu['count']} CPUs, LLC {cpu['llc_bytes']} B)"
    )
    kflags = ", ".join(f"{f}={'yes' if v else 'no'}" for f, v in cpu["copy_flags"].items())
    con.print(f"[bold]flags[/bold]    kernel view: {kflags}")
    con.print(f"         CPUID: {', '.join(f'{f}={v}' for f, v in cpu['cpuid'].items())}")
    con.print(f"[bold]kernel[/bold]   {k['release']}  BTF={k['btf']}  kcore={k['kcore_readable']}")
    con.print(f"[bold]copy[/bold]     {r.get('name')}: {r.get('why')}")
    p = info["perf"]
    con.print(
        f"[bold]perf[/bold]     {p['version']}; hardware counters: "
        f"{p['hardware_counters']} ({p['reason']})"
    )
    io = info["io"]
    con.print(
        f"[bold]data dir[/bold] {io['data_dir']} fs={io['fs_type']} O_DIRECT={io['o_direct']} "
        f"align={io['dio_align']}; pipe max {io['pipe_max_size']}"
    )
    t = Table(title="BPF attach types")
    t.add_column("type")
    t.add_column("available")
    t.add_column("reason")
    for name, a in info["attach_types"].items():
        t.add_row(name, "yes" if a["available"] else "[red]no[/red]", str(a.get("reason", "")))
    con.print(t)
    con.print(f"root: {info['root']}")
    return 0
