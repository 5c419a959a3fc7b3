"""Anatomy of a read(): where its time goes, layer by layer, from one perf pass (pure).

Input: the `perf` object of `readbench one --perf --json` (a run's perf/<cell>.json). Each
on-CPU sample is placed in a layer of the read path by its kernel call chain
(readbench.model.layers.classify; by the sampled function alone for a run recorded without
chains); shares of the read's samples become ns per read with the task-clock per read. Off
the CPU: the device wait measured per read from the block tracepoints in a pass of its own
(perf.device_wait), shown beside wall − CPU; in that pass too the reader's own time off the
CPU and, within it, runnable but waiting for a CPU, from the scheduler's tracepoints; and
what is left of wall − CPU ("other off-CPU time": asleep for a pipe's writer, say). The
null-syscall floor, measured in the same pass, is set beside the sampled entry/exit layer.

Also from the call chains: the measured path (each function from the syscall to the copy
routine, or to the device driver, with its inclusive ns per read) and the call tree the
report draws as an icicle.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from readbench.model import layers

OTHER_LISTED = 12  # functions listed for "other"
OTHER_LIMIT = 0.10  # above this share of a read, the report lists what "other" holds


def read_stacks(perf: dict[str, Any]) -> tuple[list[tuple[tuple[str, ...], int]], int, bool]:
    """([(frames innermost first, samples)], harness samples dropped, by call chain?) of one
    perf object: the folded call chains where recorded, else the sampled functions alone."""
    chains = perf.get("callchains") or {}
    folded = chains.get("folded")
    if folded:
        out, harness = [], 0
        for stack, n in folded:
            frames = tuple(reversed(str(stack).split(";")))
            if layers.is_harness(frames):
                harness += int(n)
            else:
                out.append((frames, int(n)))
        return out, harness, True
    funcs = perf.get("functions") or []
    return [((str(f["name"]),), int(f.get("samples") or 0)) for f in funcs], 0, False


def _wall_cpu(perf: dict[str, Any]) -> tuple[float, float] | None:
    counting = perf.get("counting") or {}
    ops = int(counting.get("ops") or 0)
    if not ops:
        return None
    wall = counting["loop_ns"] / ops
    clock = next((c for c in perf.get("counters") or [] if c.get("name") == "task-clock"), None)
    cpu = float(clock["per_op"]) if clock and clock.get("per_op") else wall
    return wall, min(cpu, wall)


def device_wait(perf: dict[str, Any], off_cpu: float) -> dict[str, Any]:
    """The measured device wait per read beside wall − CPU (of the counting pass, and of the
    device pass itself)."""
    dw = perf.get("device_wait") or {}
    out: dict[str, Any] = {
        "available": bool(dw.get("available")),
        "reason": dw.get("reason"),
        "source": dw.get("source"),
        "wall_minus_cpu_ns": off_cpu,
    }
    if dw.get("available"):
        out.update(
            measured_ns=dw.get("device_ns_per_read"),
            requests_per_read=dw.get("requests_per_read"),
            request_ns_mean=dw.get("request_ns_mean"),
            bytes_per_read=dw.get("bytes_per_read"),
            reads=dw.get("reads"),
            pass_wall_minus_cpu_ns=dw.get("wall_minus_cpu_ns"),
            pass_wall_ns=dw.get("wall_ns_per_read"),
            # the reader off the CPU, from the scheduler's tracepoints (absent in runs made
            # before they were measured)
            pass_off_cpu_ns=dw.get("off_cpu_ns_per_read"),
            pass_runnable_ns=dw.get("runnable_ns_per_read"),
            switches_per_read=dw.get("switches_per_read"),
        )
    return out


def _off_cpu_shares(dw: dict[str, Any]) -> tuple[float, float] | None:
    """(runnable, device) shares of the device pass's own measured off-CPU time; None where
    the scheduler was not measured. Runnable is off-CPU by construction; the device's busy
    time takes at most the rest (readahead keeps it busy while the reader runs)."""
    off, runnable = dw.get("pass_off_cpu_ns"), dw.get("pass_runnable_ns")
    if not isinstance(off, (int, float)) or not isinstance(runnable, (int, float)):
        return None
    if off <= 0:
        return 0.0, 0.0
    run = min(runnable / off, 1.0)
    device = dw.get("measured_ns")
    return run, min(device / off, 1.0 - run) if isinstance(device, (int, float)) else 0.0


def of_perf(perf: dict[str, Any]) -> dict[str, Any] | None:
    """Layer shares and ns per read of one perf object; None without samples or reads."""
    stacks, harness, by_chain = read_stacks(perf)
    total = sum(n for _, n in stacks)
    wc = _wall_cpu(perf)
    if not total or wc is None:
        return None
    wall, cpu = wc
    samples: Counter[str] = Counter()
    how: Counter[str] = Counter()
    other: Counter[str] = Counter()
    for frames, n in stacks:
        if frames[0] == "(other)":  # the leaf list's bucket of rare functions
            layer, h = layers.OTHER, "none"
        else:
            layer, h = layers.classify(frames)
        samples[layer] += n
        how[h] += n
        if layer == layers.OTHER:
            other[frames[0]] += n
    ns = {name: samples[name] / total * cpu for name in layers.NAMES}
    off = wall - cpu
    dw = device_wait(perf, off)
    # Off the CPU, split by the shares the device pass measured of its own off-CPU time, set
    # onto this pass's wall − CPU: two passes of a shared disk differ by 2x, so absolute ns
    # of one against the other split by noise. Without the scheduler measured (older runs):
    # the device's ns, at most wall − CPU.
    shares = _off_cpu_shares(dw)
    measured = dw.get("measured_ns")
    if shares is not None:
        ns[layers.RUNQ], ns[layers.DEVICE] = shares[0] * off, shares[1] * off
    elif isinstance(measured, (int, float)):
        ns[layers.DEVICE] = min(float(measured), off)
    ns[layers.OFF_CPU] = off - ns[layers.RUNQ] - ns[layers.DEVICE]  # else all of wall − CPU
    rows = []
    for layer in layers.LAYERS:
        row = {"layer": layer.name, "ns": ns[layer.name], "share": ns[layer.name] / wall}
        if layer.sampled:
            row["samples"] = samples[layer.name]
        rows.append(row)
    return {
        "ns_per_read": wall,
        "cpu_ns_per_read": cpu,
        "samples": total,
        "harness_samples": harness,
        "by_call_chain": by_chain,
        "layers": rows,
        "classified_by": dict(how),
        "other_share": ns[layers.OTHER] / wall,
        "other_functions": [
            {"name": f, "samples": n, "share_of_read": n / total * cpu / wall}
            for f, n in other.most_common(OTHER_LISTED)
        ],
        "device_wait": dw,
        "null_syscall_ns": perf.get("null_syscall_ns"),
        "copy_fraction": perf.get("copy_fraction"),
        "paths": paths(perf, cpu) if by_chain else [],
    }


# --- the measured path ------------------------------------------------------------------


def _target(frames_root_first: list[str], layer: str) -> int | None:
    """Index of the innermost frame `layer` owns by name."""
    for i in range(len(frames_root_first) - 1, -1, -1):
        if layers.owner(frames_root_first[i]) == layer:
            return i
    return None


def paths(perf: dict[str, Any], cpu_ns: float, min_share: float = 0.01) -> list[dict[str, Any]]:
    """The founding question's sequence, measured: for the copy routine and for the device
    driver, the heaviest call path from the syscall entry to it (at each step the callee most
    samples on their way to it pass through), each function with its inclusive samples (a
    sample counts once wherever the function is on its chain) as ns per read and its layer.
    A target fewer than `min_share` of the read's samples reach is left out."""
    stacks, _, _ = read_stacks(perf)
    rooted = [(list(reversed(fr)), n) for fr, n in stacks if fr[0] != layers.USER_FRAME]
    total = sum(n for _, n in stacks)
    if not total:
        return []
    inclusive: Counter[str] = Counter()
    for fr, n in rooted:
        for f in set(fr):
            inclusive[f] += n
    out = []
    for name, layer in (("copy routine", layers.COPY), ("device", layers.DRIVER)):
        tree: dict[str, Any] = {}
        reach = 0
        for fr, n in rooted:
            t = _target(fr, layer)
            if t is None:
                continue
            reach += n
            node = tree
            for f in fr[: t + 1]:
                node = node.setdefault(f, {"n": 0, "kids": {}})
                node["n"] += n
                node = node["kids"]
        if reach < min_share * total:
            continue
        frames = []
        node = tree
        while node:
            f, sub = max(node.items(), key=lambda kv: kv[1]["n"])
            frames.append(
                {
                    "function": f,
                    "layer": layers.function_layer(f),
                    "samples": inclusive[f],
                    "share": inclusive[f] / total,
                    "ns": inclusive[f] / total * cpu_ns,
                }
            )
            node = sub["kids"]
        out.append({"to": name, "reach_share": reach / total, "frames": frames})
    return out


# --- the call tree (the report's icicle) -------------------------------------------------


def call_tree(perf: dict[str, Any]) -> dict[str, Any] | None:
    """The read's samples as a tree rooted at "read()": {name, samples, layer, children}
    (children heaviest first). A node's layer is its function's owner; for a helper or an
    unknown function, that of the samples ending in it, else its caller's. None without call
    chains."""
    stacks, _, by_chain = read_stacks(perf)
    if not by_chain or not stacks:
        return None
    root: dict[str, Any] = {"name": "read()", "samples": 0, "self": Counter(), "kids": {}}
    for frames, n in stacks:
        layer = layers.classify(frames)[0]
        root["samples"] += n
        node = root
        for f in reversed(frames):
            node = node["kids"].setdefault(f, {"name": f, "samples": 0, "self": Counter(),
                                               "kids": {}})  # fmt: skip
            node["samples"] += n
        node["self"][layer] += n
    return _finish(root, layers.SYSCALL)


def _finish(node: dict[str, Any], parent: str) -> dict[str, Any]:
    layer = layers.owner(node["name"])
    if layer is None:
        layer = node["self"].most_common(1)[0][0] if node["self"] else parent
    kids = [_finish(k, layer) for k in node["kids"].values()]
    kids.sort(key=lambda k: -k["samples"])
    return {"name": node["name"], "samples": node["samples"], "layer": layer, "children": kids}
