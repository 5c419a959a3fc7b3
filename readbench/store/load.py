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
from readbench.model import schema, sidefiles
from readbench.model.cpuflags import KEY_FLAGS
from readbench.model.matrix import parse_cell_name
from readbench.model.schema import OFF_SUFFIX, Manifest

NS_PER_S = 1e9


def run_alpha(manifest: Manifest) -> float:
    """The significance level the run was made with."""
    return float(manifest["analysis"]["alpha"])


def run_margin(manifest: Manifest) -> float:
    """The equivalence margin the run was made with."""
    return float(manifest["analysis"]["margin"])


@dataclass
class CellSamples:
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
    cells: dict[str, CellSamples]
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


def read_side(path: Path, kind: str) -> Any | None:
    """A side file checked against its type (model.sidefiles): None when absent (a run
    without that pass); BadInput naming the file, and the field, when it is unreadable or
    breaks its type: readbench wrote it, so a broken one is a damaged or edited run."""
    if not path.exists():
        return None
    return sidefiles.check(kind, _read_json(path, f"a {kind} side file"), str(path))


@dataclass(frozen=True)
class ArmRun:
    """One worker process's run of one benchmark (a paired cell's arm): its values in ns per
    read, the process that made it, and the arm order of each block."""

    process: str | None
    ns: np.ndarray
    orders: list[str]


def arm_runs(bench: pyperf.Benchmark) -> list[ArmRun]:
    out = []
    for r in bench.get_runs():
        if r.values:
            md = r.get_metadata()
            ns = np.asarray(r.values, dtype=float) * NS_PER_S
            orders = str(md.get("readbench_block_orders", "")).split()
            out.append(ArmRun(md.get("readbench_process"), ns, orders))
    return out


def join_pairs(off: list[ArmRun], on: list[ArmRun]) -> list[tuple[ArmRun, ArmRun]]:
    """The one pairing rule: a process's off and on runs, joined by `readbench_process`, kept
    only when both hold the same number of blocks (value j of each came from block j)."""
    by_process = {r.process: r for r in off if r.process is not None}
    return [
        (by_process[r.process], r)
        for r in on
        if r.process in by_process and len(by_process[r.process].ns) == len(r.ns)
    ]


def suite_pairs(
    suite: pyperf.BenchmarkSuite, name: str, suffix: str = ""
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per process, (off values, arm values) in ns of paired cell `name`'s arm `suffix` ("" is
    the hook-on arm) in a paired worker's suite (readbench.measure.paired)."""
    off = arm_runs(suite.get_benchmark(name + OFF_SUFFIX))
    return [(a.ns, b.ns) for a, b in join_pairs(off, arm_runs(suite.get_benchmark(name + suffix)))]


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

    runs_of = {b.get_name(): arm_runs(b) for b in suite.get_benchmarks()}
    runs_of = {name: runs for name, runs in runs_of.items() if runs}
    paired: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    paired_orders: dict[str, list[list[str]]] = {}
    for name in [n for n in runs_of if n.endswith(OFF_SUFFIX)]:
        cell = name[: -len(OFF_SUFFIX)]
        if cell not in runs_of:
            continue
        keep = join_pairs(runs_of.pop(name), runs_of[cell])
        paired[cell] = [(a.ns, b.ns) for a, b in keep]
        orders = [b.orders for _, b in keep]
        # all or nothing: a model of positions needs every process's orders
        if all(len(o) == len(b.ns) for (_, b), o in zip(keep, orders, strict=True)):
            paired_orders[cell] = orders
    data = {name: [r.ns for r in runs] for name, runs in runs_of.items()}

    cells: dict[str, CellSamples] = {}
    no_data: list[dict[str, Any]] = []
    for c in manifest["cells"]:
        name = c["name"]
        try:
            w, s, off, hook, aa = parse_cell_name(name)
        except ValueError as e:
            raise BadInput(f"{run_dir / 'manifest.json'}: {e}") from None
        cell = CellSamples(
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
        cells[name] = CellSamples(name, w, s, off, hook, aa, "ok", "not listed in manifest", runs)
        unlisted.append(name)
    _refuse_mismatch(run_dir, no_data, unlisted)
    return RunData(run_dir, manifest, cells, no_data, unlisted)


def _refuse_mismatch(run_dir: Path, no_data: list[dict[str, Any]], unlisted: list[str]) -> None:
    """A cell the manifest says was measured must have values, and every benchmark in
    suite.json must be a manifest cell: otherwise the two files do not describe one run
    (a hand edit, or files from two runs), and no figure drawn from them would be true."""
    lost = [c["name"] for c in no_data if c["status"] in schema.MEASURED_STATUSES]
    if not (lost or unlisted):
        return
    said = []
    if lost:
        said.append(f"cells with no data in suite.json although measured: {', '.join(lost)}")
    if unlisted:
        said.append(f"benchmarks in suite.json that the manifest does not list: "
                    f"{', '.join(unlisted)}")  # fmt: skip
    raise BadInput(
        f"{run_dir / 'manifest.json'} and suite.json do not describe one run ("
        + "; ".join(said)
        + "): was manifest.json edited by hand? readbench wrote both"
    )


def _cell_fields(name: str) -> dict[str, Any]:
    try:
        w, s, off, hook, aa = parse_cell_name(name)
    except (ValueError, AttributeError):
        return {}
    return {"workload": w, "size": s, "buf_offset": off, "hook": hook, "aa_copy": aa}


def side_files(run_dir: Path, sub: str) -> list[dict[str, Any]]:
    """The side files of one kind (perf/, bpf/, atlas/), each checked and given its cell's
    fields (an atlas file names a workload and size, not a cell: it has its own)."""
    out = []
    d = Path(run_dir) / sub
    for p in sorted(d.glob("*.json")) if d.is_dir() else []:
        obj = read_side(p, sub)
        obj = {**obj, **_cell_fields(obj["cell"]), "_file": p.name}
        if "workload" not in obj:
            raise BadInput(f"{p}: field 'cell' {obj['cell']!r} names no cell of a run")
        out.append(obj)
    return out


@dataclass
class RunSides:
    """Every side file of a run directory, checked (model.sidefiles): one list per folder,
    None for a single file the run did not write."""

    perf: list[sidefiles.PerfFile]
    bpf: list[sidefiles.BpfFile]
    atlas: list[sidefiles.AtlasFile]
    coverage: sidefiles.CoverageFile | None
    copy: sidefiles.CopyFile | None
    calibration: sidefiles.CalibrationFile | None
    guest: sidefiles.GuestFile | None


def load_sides(run_dir: Path) -> RunSides:
    run_dir = Path(run_dir)
    return RunSides(
        perf=side_files(run_dir, "perf"),  # type: ignore[arg-type]
        bpf=side_files(run_dir, "bpf"),  # type: ignore[arg-type]
        atlas=side_files(run_dir, "atlas"),  # type: ignore[arg-type]
        coverage=read_side(run_dir / "coverage.json", "coverage"),
        copy=read_side(run_dir / "copy.json", "copy"),
        calibration=read_side(run_dir / "calibration.json", "calibration"),
        guest=read_side(run_dir / "guest.json", "guest"),
    )


def perf_side_files(run_dir: Path) -> list[dict[str, Any]]:
    """The run's perf/ side files (one per baseline cell), with the cell's fields."""
    return side_files(Path(run_dir), "perf")


def machine_info(manifest: dict[str, Any]) -> dict[str, Any]:
    probe = manifest.get("probe") or {}
    cpu = probe.get("cpu") or {}
    flags = cpu.get("flags") or []
    flags = [str(f) for f in flags] if isinstance(flags, list) else str(flags).split()
    kernel = probe.get("kernel") or {}
    routine = probe.get("copy_routine") or {}
    perf = probe.get("perf") or {}
    attach = probe.get("attach_types") or {}
    # the kernel's view (copy_flags) decides the copy routine; /proc/cpuinfo flags otherwise
    kview = cpu.get("copy_flags") if isinstance(cpu.get("copy_flags"), dict) else {}
    key_flags = [(f, bool(kview[f]) if f in kview else f in flags) for f in KEY_FLAGS]
    virt = probe.get("virtualization") if isinstance(probe.get("virtualization"), dict) else {}
    guest = virt.get("guest") if isinstance(virt.get("guest"), dict) else {}
    vm = bool(cpu.get("hypervisor")) or "hypervisor" in flags or bool(virt.get("hypervisor"))
    kcheck = (
        routine.get("kallsyms_check") if isinstance(routine.get("kallsyms_check"), dict) else {}
    )
    return {
        "cpu_model": cpu.get("model", "unknown (not in manifest.probe)"),
        "cpu_vendor": cpu.get("vendor"),
        "cpu_count": cpu.get("count"),
        "flags": flags,
        "key_flags": key_flags,
        "kernel": kernel.get("release", "unknown"),
        "cmdline": kernel.get("cmdline"),
        "routine": routine.get("name", "unknown"),
        "routine_why": routine.get("why", ""),
        "routine_symbol": routine.get("symbol"),
        "routine_check": kcheck.get("status"),
        "hw_counters": perf.get("hardware_counters"),
        "perf_reason": perf.get("reason"),
        "vm": vm,
        # a TCG guest: every time is emulated (readbench guest records how it booted)
        "emulated": bool(virt.get("emulated")),
        "accel": virt.get("accel"),
        "accel_reason": guest.get("accel_reason"),
        "guest_cpu": guest.get("cpu_model"),
        "guest_clearcpuid": guest.get("clearcpuid") or [],
        "guest_host": guest.get("host"),
        "attach": [
            (str(k), v.get("available"), v.get("reason", ""))
            for k, v in (attach.items() if isinstance(attach, dict) else [])
            if isinstance(v, dict)
        ],
        "versions": manifest.get("versions") or {},
    }


def matrix_blocks(matrix: dict[str, Any]) -> list[dict[str, list[str]]]:
    """The matrix as blocks of workloads × sizes × hooks, as strings for the tables."""
    keys = ("workloads", "sizes", "hooks", "buf_offsets")
    return [{k: [str(x) for x in b[k]] for k in keys} for b in matrix["blocks"]]
