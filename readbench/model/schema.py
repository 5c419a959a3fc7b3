"""The run contract: what results/<run-id>/manifest.json holds, in one typed, versioned place.

The runner writes it with new_manifest(), the test fixtures build it with new_manifest(), and
every reader (the store's loader, report, compare, --resume) goes through check(), which
validates it, migrates an older version, and refuses a version it does not know with a
message naming both versions. docs/contracts.md describes the same shape in prose.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

from readbench.errors import BadInput

SCHEMA_VERSION = 2
# What each version changed, newest last (the refusal message quotes it).
HISTORY = {
    1: "matrix as blocks or flat axes; no stored alpha or equivalence margin",
    2: "adds 'analysis' {alpha, margin}: the significance level and equivalence margin of the run",
}
# suite.json names a paired cell's hook-off arm CELL + OFF_SUFFIX, its hook-on arm CELL
OFF_SUFFIX = "#off"
DEFAULT_ALPHA = 0.01
DEFAULT_MARGIN = 0.02  # equivalence margin, a fraction of the read's time (0.02 = ±2 %)


class BlockJSON(TypedDict):
    workloads: list[str]
    sizes: list[int]
    hooks: list[str]
    buf_offsets: list[int]
    aa: NotRequired[bool]  # A/A copies of this block's baselines (absent before 2026-12-02)


class MatrixJSON(TypedDict, total=False):
    name: str
    blocks: list[BlockJSON]
    rounds: int
    processes_per_round: int
    values: int
    warmups: int
    pairs: int
    pairs_by_workload: dict[str, int]
    paired_processes_per_round: int
    min_time: float
    max_size: int
    perf: bool
    bpf_stats: bool
    copy: bool
    aa: bool
    calibrate: bool
    calibrate_trials: int
    atlas: bool
    processes: int  # rounds × processes_per_round, for readers


# a cell in one of these has values in suite.json (partial: some of its rounds)
MEASURED_STATUSES = ("done", "partial")


class ManifestCell(TypedDict, total=False):
    name: str
    workload: str
    size: int
    buf_offset: int
    hook: str
    aa_copy: bool
    baseline: str | None
    status: str  # pending | partial | done | failed (the runner's words, MEASURED_STATUSES)
    reason: str


class Analysis(TypedDict):
    alpha: float
    margin: float


class Manifest(TypedDict, total=False):
    schema_version: int
    run_id: str
    created: str
    updated: str
    status: str  # running | complete | interrupted
    versions: dict[str, str | None]
    probe: dict[str, Any]
    matrix: MatrixJSON
    analysis: Analysis
    seed: int
    data_dir: str
    data_files: dict[str, str]
    io_align: int
    affinity: str | None
    timing_notes: list[str]
    cells: list[ManifestCell]
    unavailable: list[dict[str, str]]
    failed: list[dict[str, str]]
    # the machine around the measurement (measure.sysstate): {before, settings, during [...],
    # concurrent}; analysis.machine_state judges it
    system_state: dict[str, Any]
    aa_toggle: str  # what the A/A cells' second arm attaches ("none": nothing toggled)
    aa_toggle_why: str
    synthetic: str  # only in test fixtures: says the numbers are generated
    migrated_from: int


def check_alpha(alpha: float, what: str = "--alpha") -> float:
    if not 0 < alpha < 1:
        raise BadInput(f"{what} {alpha}: must be within (0, 1), e.g. 0.01")
    return float(alpha)


def check_margin(margin: float, what: str = "--margin") -> float:
    if not 0 < margin < 1:
        raise BadInput(f"{what} {margin}: must be within (0, 1) (a fraction, 0.02 = 2 %)")
    return float(margin)


def new_manifest(
    *,
    run_id: str,
    created: str,
    matrix: MatrixJSON,
    cells: list[ManifestCell],
    probe: dict[str, Any],
    versions: dict[str, str | None],
    alpha: float = DEFAULT_ALPHA,
    margin: float = DEFAULT_MARGIN,
    status: str = "running",
    **extra: Any,
) -> Manifest:
    """A manifest of the current version. `extra` takes the optional keys of Manifest."""
    unknown = set(extra) - set(Manifest.__annotations__)
    if unknown:
        raise TypeError(f"new_manifest: unknown manifest keys {sorted(unknown)}")
    m: Manifest = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "created": created,
        "status": status,
        "versions": versions,
        "probe": probe,
        "matrix": matrix,
        "analysis": {"alpha": check_alpha(alpha), "margin": check_margin(margin)},
        "cells": cells,
        "unavailable": [],
        "failed": [],
    }
    m.update(extra)  # type: ignore[typeddict-item]
    return m


def _migrate_1(m: dict[str, Any]) -> dict[str, Any]:
    """1 -> 2. A version-1 run stored no alpha and no margin: it was analysed at the defaults
    unless a flag said otherwise, which the manifest did not record. Say so."""
    matrix = dict(m.get("matrix") or {})
    if "blocks" not in matrix:  # the flat form: one block
        matrix["blocks"] = [
            {k: list(matrix.pop(k, []) or []) for k in ("workloads", "sizes", "hooks")}
            | {"buf_offsets": list(matrix.pop("buf_offsets", [0]) or [0])}
        ]
    alpha = matrix.pop("alpha", None)
    m = dict(m, matrix=matrix, schema_version=2, migrated_from=1)
    m["analysis"] = {
        "alpha": alpha if isinstance(alpha, (int, float)) and 0 < alpha < 1 else DEFAULT_ALPHA,
        "margin": DEFAULT_MARGIN,
    }
    return m


MIGRATIONS = {1: _migrate_1}


def check(obj: Any, where: str) -> Manifest:
    """Validate a manifest read from `where`; migrate an older version; BadInput names the
    file and the rule broken."""
    if not isinstance(obj, dict):
        raise BadInput(f"{where}: must be a JSON object")
    version = obj.get("schema_version")
    while isinstance(version, int) and version in MIGRATIONS:
        obj = MIGRATIONS[version](obj)
        version = obj.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BadInput(
            f"{where}: schema_version {version!r}, but this readbench reads version "
            f"{SCHEMA_VERSION} ({HISTORY[SCHEMA_VERSION]}) and migrates "
            f"{', '.join(map(str, sorted(MIGRATIONS)))}; use the readbench that wrote the run"
        )
    cells = obj.get("cells")
    if not isinstance(cells, list):
        raise BadInput(f"{where}: 'cells' must be a list of cell objects")
    for i, c in enumerate(cells):
        if not isinstance(c, dict) or not isinstance(c.get("name"), str):
            raise BadInput(f"{where}: cells[{i}] must be an object with a string 'name'")
    for key in ("probe", "matrix", "analysis"):
        if not isinstance(obj.get(key), dict):
            raise BadInput(f"{where}: '{key}' must be an object")
    if not isinstance(obj["matrix"].get("blocks"), list):
        raise BadInput(f"{where}: 'matrix.blocks' must be a list of blocks")
    for key in ("unavailable", "failed"):
        if key in obj and not isinstance(obj[key], list):
            raise BadInput(f"{where}: '{key}' must be a list")
    an = obj["analysis"]
    for key, rule in (("alpha", check_alpha), ("margin", check_margin)):
        if not isinstance(an.get(key), (int, float)):
            raise BadInput(f"{where}: 'analysis.{key}' must be a number")
        rule(an[key], f"{where}: analysis.{key}")
    return obj  # type: ignore[return-value]
