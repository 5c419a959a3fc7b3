"""Calibration results kept per machine across runs, so the A/A false-positive interval
narrows over time: `~/.cache/readbench/calibration/<key>.json` ($XDG_CACHE_HOME honoured,
$READBENCH_CALIBRATION_DIR overrides), written atomically under a lock.

The key is a hash of the machine's identity as the probe sees it: CPU model, CPU flags,
kernel release and the virtualization object (when the probe has one). Trials are pooled
only within one design (workload, size, processes, blocks, value time, toggle)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from readbench.store.cache import cache_home
from readbench.store.rundir import atomic_write_json

SCHEMA = "readbench.calibration-store/1"


def identity(probe: dict[str, Any]) -> dict[str, Any]:
    """What makes two calibrations comparable: the CPU, its flags, the kernel, and how the
    machine is virtualized (the probe's `virtualization`: a KVM guest, a TCG guest and bare
    metal are three machines; a guest's CPU model and clearcpuid= and its host matter, the
    wording of the launcher's reason does not)."""
    cpu = probe.get("cpu") or {}
    virt = probe.get("virtualization")
    v = None
    if isinstance(virt, dict):
        guest = virt.get("guest") if isinstance(virt.get("guest"), dict) else {}
        v = {
            "hypervisor": virt.get("hypervisor"),
            "accel": virt.get("accel"),
            "emulated": virt.get("emulated"),
            "guest_cpu": guest.get("cpu_model"),
            "guest_clearcpuid": guest.get("clearcpuid"),
            "host": guest.get("host"),
        }
    return {
        "cpu_model": cpu.get("model"),
        "flags": sorted(str(f) for f in cpu.get("flags") or []),
        "kernel_release": (probe.get("kernel") or {}).get("release"),
        "virtualization": v,
    }


def key(ident: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def store_dir() -> Path:
    if os.environ.get("READBENCH_CALIBRATION_DIR"):
        return Path(os.environ["READBENCH_CALIBRATION_DIR"])
    return cache_home() / "calibration"


def design_key(design: dict[str, Any]) -> str:
    return json.dumps(design, sort_keys=True)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        obj = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return obj if isinstance(obj, dict) and obj.get("schema") == SCHEMA else None


def add(
    ident: dict[str, Any], design: dict[str, Any], records: list[dict[str, Any]]
) -> tuple[Path, list[dict[str, Any]]]:
    """Append this calibration's trial records; return the file and every record stored
    for this machine and design (this calibration's included)."""
    path = store_dir() / f"{key(ident)}.json"
    dk = design_key(design)
    with _locked(path):
        obj = _read(path) or {"schema": SCHEMA, "identity": ident, "designs": {}}
        entry = obj["designs"].setdefault(dk, {"design": design, "records": []})
        entry["records"].extend(records)
        atomic_write_json(path, obj)
    return path, list(entry["records"])
