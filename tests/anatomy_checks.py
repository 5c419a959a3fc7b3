"""Checks over `readbench one --workload uncached|direct --size 64K --perf --json` output: the
lower layers of a read that reaches the device are present and measured (issue 15). Plain
functions over the JSON, so the same check runs on this host (tests/system/test_anatomy_here.py)
and in the guest lane, on a Debian 6.1 kernel with the data directory on ext4 on virtio-blk:

    readbench one --workload uncached --size 64K --perf --json > uncached.json
    python3 tests/anatomy_checks.py uncached.json direct.json    # exit 0, or 1 with why
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from readbench.model import layers

# The layers a read that goes to the device must show, on-CPU and sampled.
LOWER = (layers.MAPPING, layers.BLOCK, layers.DRIVER)


def lower_layers(one: dict[str, Any]) -> dict[str, float]:
    """Check one `readbench one --perf --json` object of an uncached or direct read; return
    its anatomy as {layer: ns per read} (with "wall − CPU" beside the measured device wait).
    Raises AssertionError saying what is missing."""
    where = f"{one.get('workload')}/{one.get('size')}"
    assert one.get("workload") in ("uncached", "direct"), f"{where}: not a device-bound read"
    perf = one.get("perf") or {}
    an = perf.get("anatomy")
    assert an, f"{where}: no anatomy (perf.sampling: {perf.get('sampling')})"
    assert an["by_call_chain"], f"{where}: samples without call chains: layers by leaf only"
    rows = {x["layer"]: x for x in an["layers"]}
    for name in LOWER:
        r = rows[name]
        assert r["samples"] > 0 and r["ns"] > 0, (
            f"{where}: layer {name!r} has no samples ({r}); the functions in 'other': "
            f"{an['other_functions']}"
        )
    dw = an["device_wait"]
    assert dw["available"], f"{where}: device wait not measured: {dw.get('reason')}"
    assert dw["measured_ns"] and dw["measured_ns"] > 0, f"{where}: device wait 0: {dw}"
    assert dw["requests_per_read"] and dw["requests_per_read"] >= 0.9, (
        f"{where}: {dw['requests_per_read']} requests per read: every read of an evicted or "
        f"O_DIRECT page must go to the device ({dw})"
    )
    assert dw["measured_ns"] < dw["pass_wall_ns"], (
        f"{where}: the device wait ({dw['measured_ns']:.0f} ns) exceeds the read's own wall "
        f"clock in that pass ({dw['pass_wall_ns']:.0f} ns): a synchronous read cannot wait longer"
    )
    off, runnable = dw.get("pass_off_cpu_ns"), dw.get("pass_runnable_ns")
    assert off is not None and runnable is not None, f"{where}: the reader off the CPU: {dw}"
    assert 0 <= runnable <= off and (dw["switches_per_read"] or 0) >= 0.9, (
        f"{where}: a read that waits for the device sleeps once at least; runnable "
        f"{runnable:.0f} ns of {off:.0f} ns off the CPU, {dw['switches_per_read']} switches"
    )
    paths = {p["to"]: p for p in an["paths"]}
    assert "device" in paths, f"{where}: no measured path reaches the driver: {an['paths']}"
    assert paths["device"]["frames"][-1]["layer"] == layers.DRIVER
    out = {name: r["ns"] for name, r in rows.items()}
    out["wall − CPU"] = dw["wall_minus_cpu_ns"]
    out["device wait (measured)"] = dw["measured_ns"]
    out["off CPU (measured, device pass)"] = off
    out["of it runnable (measured)"] = runnable
    return out


def main(paths: list[str]) -> int:
    bad = 0
    for p in paths:
        try:
            ns = lower_layers(json.loads(Path(p).read_text()))
        except AssertionError as e:
            print(f"{p}: FAILED: {e}", file=sys.stderr)
            bad += 1
            continue
        print(f"{p}: ok")
        for layer, v in ns.items():
            if v:
                print(f"  {layer:<34} {v:>12,.0f} ns")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
