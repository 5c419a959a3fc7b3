"""The side files of a run directory, typed: what each holds, and the check a reader applies.

manifest.json has its own module (schema.py). Beside it a run writes:

  perf/<cell>.json     counters and samples of a baseline cell (measure.perf_profile)
  bpf/<cell>.json      a hooked cell with BPF stats on (measure.sidepasses bpfstats)
  atlas/<w-size>.json  the points of one workload's read path (measure.survey)
  coverage.json        fires per op of every point on every read kind (measure.coverage)
  copy.json            the copy-strategy sweep (copy.sweep)
  calibration.json     the MDE and A/A check (cli.calibrate, run's calibration pass)
  guest.json           the guest a run was made in (guest.launch)

Each TypedDict names the fields readers rely on (the files carry more); SPECS says what type
each must have, and check() refuses a file that breaks it with the file and the field.
"""

from __future__ import annotations

from typing import Any, TypedDict

from readbench.errors import BadInput

Number = (int, float)


class BpfProgram(TypedDict, total=False):
    name: str
    id: int
    run_cnt: int
    run_time_ns: int


class BpfSnapshot(TypedDict, total=False):
    hook: str
    programs: list[BpfProgram]
    count: int | None


class BpfFloor(TypedDict, total=False):
    """One stats-on measurement: the loop's ops and the programs' snapshots around it."""

    ops: int
    ns_per_op: float
    snapshot_before: BpfSnapshot
    snapshot: BpfSnapshot


class BpfFile(BpfFloor, total=False):
    """The hook's own measurement, and beside it the never-matching floor's."""

    cell: str
    hook: str
    floor: BpfFloor


class PerfCounter(TypedDict, total=False):
    name: str
    value: float | None
    hardware: bool


class PerfFile(TypedDict, total=False):
    cell: str
    counters: list[PerfCounter]
    copy_fraction: float | None
    copy_symbol: str | None
    counting: dict[str, Any] | None
    anatomy: dict[str, Any] | None


class AtlasAttach(TypedDict, total=False):
    available: bool
    reason: str


class AtlasPoint(TypedDict, total=False):
    target: str
    attach: dict[str, AtlasAttach]


class AtlasFile(TypedDict, total=False):
    cell: str
    workload: str
    points: list[AtlasPoint]


class CoverageFile(TypedDict, total=False):
    size: int
    kinds: list[dict[str, Any]]
    points: list[AtlasPoint]


class CopyFile(TypedDict, total=False):
    results: list[dict[str, Any]]
    skipped: list[dict[str, Any]]


class CalibrationFile(TypedDict, total=False):
    workload: str
    size: int
    alpha: float
    trials: int  # how many trials (their results: trial_results)
    warnings: list[str]
    trial_results: list[dict[str, Any]]


class GuestKernel(TypedDict, total=False):
    release: str
    source: str


class GuestFile(TypedDict, total=False):
    launcher: str
    accel: str  # kvm | tcg
    emulated: bool
    accel_reason: str
    cpu_model: str  # QEMU's -cpu
    clearcpuid: list[str]
    append: list[str]
    kernel: GuestKernel
    boots: int
    returncode: int
    seconds: float
    console_log: str


# field -> (allowed types, required); a dict value is a nested spec ({"*": spec}: every value
# of a mapping), `[spec]` a list of them
_PROGRAMS = [{"name": (str, False), "run_cnt": (int, False), "run_time_ns": (int, False)}]
_SNAPSHOT = {"programs": (_PROGRAMS, True)}
_ATTACH = {"*": {"available": (bool, True), "reason": (str, False)}}
_POINTS = [{"target": (str, True), "attach": (_ATTACH, False)}]
SPECS: dict[str, dict[str, Any]] = {
    "perf": {"cell": (str, True), "counters": ([{"name": (str, True)}], False),
             "copy_fraction": ((*Number, type(None)), False),
             "counting": ((dict, type(None)), False), "anatomy": ((dict, type(None)), False)},
    "bpf": {"cell": (str, True), "hook": (str, True), "ops": (int, True),
            "snapshot": (_SNAPSHOT, True), "snapshot_before": (_SNAPSHOT, True),
            "floor": ({"snapshot": (_SNAPSHOT, True), "snapshot_before": (_SNAPSHOT, True)},
                      False)},
    "atlas": {"cell": (str, True), "workload": (str, True), "points": (_POINTS, True)},
    "coverage": {"kinds": ((list,), True), "points": (_POINTS, True)},
    "copy": {"results": ([{}], True), "skipped": ([{}], False)},
    "calibration": {"workload": (str, True), "size": (int, True), "alpha": (Number, True),
                    "trials": (int, True), "warnings": ((list,), False),
                    "trial_results": ([{}], False)},
    "guest": {"accel": (str, True), "emulated": (bool, True), "cpu_model": (str, True),
              "kernel": ({"release": (str, True)}, True), "seconds": (Number, False),
              "clearcpuid": ((list,), False), "console_log": (str, False)},
}  # fmt: skip


def _type_name(types: Any) -> str:
    if isinstance(types, dict):
        return "an object"
    if isinstance(types, list):
        return "a list of objects"
    names = [t.__name__ for t in (types if isinstance(types, tuple) else (types,))]
    return " or ".join("null" if n == "NoneType" else n for n in names)


def _check(obj: Any, spec: Any, where: str, path: str) -> None:
    if isinstance(spec, dict):
        if not isinstance(obj, dict):
            raise BadInput(f"{path}: {where or 'the file'} must be an object, not {_kind(obj)}")
        if "*" in spec:
            for key, value in obj.items():
                _check(value, spec["*"], f"{where}.{key}" if where else key, path)
            return
        for key, (types, required) in spec.items():
            field = f"{where}.{key}" if where else key
            if key not in obj:
                if required:
                    raise BadInput(f"{path}: field '{field}' is missing")
                continue
            _check(obj[key], types, field, path)
    elif isinstance(spec, list):
        if not isinstance(obj, list):
            raise BadInput(f"{path}: field '{where}' must be a list, not {_kind(obj)}")
        for i, item in enumerate(obj):
            _check(item, spec[0], f"{where}[{i}]", path)
    else:
        ok = isinstance(obj, spec) and not (isinstance(obj, bool) and bool not in _tuple(spec))
        if not ok:
            raise BadInput(f"{path}: field '{where}' must be {_type_name(spec)}, not {_kind(obj)}")


def _tuple(spec: Any) -> tuple[type, ...]:
    return spec if isinstance(spec, tuple) else (spec,)


def _kind(obj: Any) -> str:
    return "null" if obj is None else type(obj).__name__


def check(kind: str, obj: Any, path: str) -> Any:
    """`obj` as read from a `kind` side file at `path`, or BadInput naming the file and the
    field that breaks SPECS[kind]."""
    _check(obj, SPECS[kind], "", path)
    return obj
