"""What a program at a point costs a read(), measured paired (readbench.measure.paired):
readbench's own hook programs (empty and inspect bodies) where the point is one they cover,
and the atlas's counting program (`point:ATTACH:GROUP/TARGET`: a tgid filter and one atomic
add, about an empty body) elsewhere. Pairs out; the claim is readbench.analysis's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from readbench.errors import MeasurementError
from readbench.measure import paired
from readbench.measure.worker import cell_argv

OVERHEAD_MIN_TIME = 0.01  # seconds per value: an atlas measures dozens of points


def measure_hooks(
    jobs: list[tuple[str, str]],
    size: int,
    files: dict[str, Path | None],
    *,
    processes: int,
    pairs: int,
    seed: int,
) -> dict[tuple[str, str], dict[str, Any]]:
    """For each (hook, workload): {"pairs": per-process (off, on) ns} or {"error": why}."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for i, (hook, workload) in enumerate(jobs):
        data = str(files.get(workload) or "")
        try:
            p = paired.measure(cell_argv(workload, size, 0, hook, 0, data), "on",
                               processes=processes, pairs=pairs, min_time=OVERHEAD_MIN_TIME,
                               seed=seed + i, name="atlas")  # fmt: skip
        except MeasurementError as e:
            out[(hook, workload)] = {"error": str(e)[-300:]}
            continue
        out[(hook, workload)] = {"pairs": p}
    return out
