"""Reading a results directory back: manifest.json (through the schema), suite.json (pyperf)
and side files. Pure file reading: report and compare use it on any machine, without root."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyperf

from readbench.errors import BadInput
from readbench.model import schema
from readbench.model.matrix import parse_cell_name
from readbench.model.schema import Manifest

NS_PER_S = 1e9
OFF_SUFFIX = "#off"  # the hook-off arm of a paired cell (readbench.measure.paired.OFF)


def run_alpha(manifest: Manifest) -> float:
    """The significance level the run was made with."""
    return float(manifest["analysis"]["alpha"])


def run_margin(manifest: Manifest) -> float:
    """The equivalence margin the run was made with."""
    return float(manifest["analysis"]["margin"])


@dataclass
class CellData:
    name: str
    workload: str
    size: int
    buf_offset: int
    hook: str
    aa_copy: bool
    status: str = "ok"
    reason: str = ""
    toggle: str = "none"  # what the toggled arm attached: the hook, or an A/A cell's sham
    # one array per worker process, ns per read op (a paired cell: its "on" arm)
    runs: list[np.ndarray] = field(default_factory=list)
    # paired cells: per process, (off values, on values) in block order (value j of one arm
    # and value j of the other were measured in the same block of the same process)
    pairs: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    # paired cells: per process (as `pairs`), the arm order of each block ("01": off then on),
    # from the runs' readbench_block_orders; empty when the run did not store them
    orders: list[list[str]] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.workload, self.size, self.buf_offset)

    @property
    def n_values(self) -> int:
        return int(sum(len(r) for r in self.runs))


@dataclass
class RunData:
    run_dir: Path
    manifest: Manifest
    cells: dict[str, CellData]
    # manifest cells without any data in suite.json (failed, unavailable, not reached)
    no_data: list[dict[str, Any]]
    # benchmark names in suite.json that the manifest does not list
    unlisted: list[str]


def _read_json(path: Path, what: str) -> Any:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise BadInput(f"{path}: missing ({what})") from None
    except OSError as e:
        raise BadInput(f"{path}: cannot read ({e.strerror})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise BadInput(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None


def read_side_json(path: Path) -> Any | None:
    """A side file (perf/, bpf/, copy.json): None when absent or unreadable, since the
    report must still render from the suite alone."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def load_manifest(run_dir: Path) -> Manifest:
    """manifest.json of a run, validated (and migrated) by the schema."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise BadInput(
            f"run directory {run_dir}: does not exist or is not a directory "
            "(expected results/<run-id>/ written by `readbench run`)"
        )
    path = run_dir / "manifest.json"
    return schema.check(_read_json(path, "every run directory has a manifest.json"), str(path))


def load_run(run_dir: Path) -> RunData:
    """Read manifest.json + suite.json; BadInput names the file and the rule broken."""
    run_dir = Path(run_dir)
    manifest = load_manifest(run_dir)
    suite_path = run_dir / "suite.json"
    if not suite_path.exists():
        raise BadInput(
            f"{suite_path}: missing (the run has no finished cell yet; "
            "suite.json is written when the first cell completes)"
        )
    try:
        suite = pyperf.BenchmarkSuite.load(str(suite_path))
    except Exception as e:  # pyperf raises ValueError/KeyError/JSONDecodeError alike
        raise BadInput(
            f"{suite_path}: not a pyperf BenchmarkSuite ({type(e).__name__}: {e})"
        ) from None

    data: dict[str, list[np.ndarray]] = {}
    procs: dict[str, list[str | None]] = {}  # the process each run came from (paired cells)
    block_orders: dict[str, list[str]] = {}
    for bench in suite.get_benchmarks():
        runs = [r for r in bench.get_runs() if r.values]
        if runs:
            data[bench.get_name()] = [np.asarray(r.values, dtype=float) * NS_PER_S for r in runs]
            mds = [r.get_metadata() for r in runs]
            procs[bench.get_name()] = [md.get("readbench_process") for md in mds]
            block_orders[bench.get_name()] = [
                str(md.get("readbench_block_orders", "")) for md in mds
            ]
    paired: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    paired_orders: dict[str, list[list[str]]] = {}
    for name in [n for n in data if n.endswith(OFF_SUFFIX)]:
        cell = name[: -len(OFF_SUFFIX)]
        if cell not in data:
            continue
        off = dict(zip(procs.pop(name), data.pop(name), strict=True))
        keep = [
            (p, on, o)
            for p, on, o in zip(procs[cell], data[cell], block_orders[cell], strict=True)
            if p is not None and p in off and len(off[p]) == len(on)
        ]
        paired[cell] = [(off[p], on) for p, on, _ in keep]
        orders = [o.split() for _, _, o in keep]
        # all or nothing: a model of positions needs every process's orders
        if all(len(o) == len(on) for (_, on, _), o in zip(keep, orders, strict=True)):
            paired_orders[cell] = orders

    cells: dict[str, CellData] = {}
    no_data: list[dict[str, Any]] = []
    for c in manifest["cells"]:
        name = c["name"]
        try:
            w, s, off, hook, aa = parse_cell_name(name)
        except ValueError as e:
            raise BadInput(f"{run_dir / 'manifest.json'}: {e}") from None
        cell = CellData(
            name=name,
            workload=str(c.get("workload", w)),
            size=int(c.get("size", s)),
            buf_offset=int(c.get("buf_offset", off) or 0),
            hook=hook if aa else str(c.get("hook", hook)),
            aa_copy=bool(c.get("aa_copy", aa)),
            status=str(c.get("status", "ok")),
            reason=str(c.get("reason", "") or ""),
        )
        cell.toggle = str(manifest.get("aa_toggle") or "none") if cell.aa_copy else cell.hook
        if name in data:
            cell.runs = data[name]
            cell.pairs = paired.get(name, [])
            cell.orders = paired_orders.get(name, []) if cell.pairs else []
            cells[name] = cell
        else:
            no_data.append(
                {
                    "name": name,
                    "status": cell.status,
                    "reason": cell.reason or "no values in suite.json",
                }
            )
    unlisted = []
    for name, runs in data.items():
        if name in cells:
            continue
        try:
            w, s, off, hook, aa = parse_cell_name(name)
        except ValueError:
            unlisted.append(name)
            continue
        cells[name] = CellData(name, w, s, off, hook, aa, "ok", "not listed in manifest", runs)
        unlisted.append(name)
    return RunData(run_dir, manifest, cells, no_data, unlisted)
