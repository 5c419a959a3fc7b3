"""Which of the machine-state figures a run recorded (measure.sysstate, manifest
`system_state`) could move its claims, and by how much: one sentence each, for the terminal
and the report. Pure: reads the manifest only."""

from __future__ import annotations

from typing import Any

OTHER_CPUS = 0.1  # other processes' CPU time, in CPUs, worth a warning
STEAL = 0.01


def summarize(state: dict[str, Any] | None) -> dict[str, Any]:
    """Mean and maximum of the samples taken during the run."""
    state = state or {}
    during = [s for s in state.get("during") or [] if isinstance(s, dict)]
    other = [s["other_cpus"] for s in during if s.get("other_cpus") is not None]
    steal = [s["steal_fraction"] for s in during if s.get("steal_fraction") is not None]
    w = [s.get("seconds") or 0 for s in during if s.get("other_cpus") is not None]
    mean = sum(o * s for o, s in zip(other, w, strict=True)) / sum(w) if other and sum(w) else None
    return {
        "samples": len(during),
        "other_cpus_mean": mean,
        "other_cpus_max": max(other) if other else None,
        "busy_fraction": sum(o > OTHER_CPUS for o in other) / len(other) if other else None,
        "steal_mean": sum(steal) / len(steal) if steal else None,
        "steal_max": max(steal) if steal else None,
    }


def warnings(state: dict[str, Any] | None, ncpu: int | None = None) -> list[str]:
    if not state:
        return []
    out = []
    s = summarize(state)
    settings = state.get("settings") or {}
    ncpu = ncpu or len(settings.get("cpus") or []) or None
    before = state.get("before") or {}
    if (before.get("other_cpus") or 0) > OTHER_CPUS:
        out.append(
            f"before the run, other processes kept {before['other_cpus']:.2f} CPUs busy"
            + (f" of {ncpu}" if ncpu else "")
        )
    if s["other_cpus_mean"] is not None and (
        s["other_cpus_mean"] > OTHER_CPUS or (s["other_cpus_max"] or 0) > 0.5
    ):
        share = f" of {ncpu}" if ncpu else ""
        out.append(
            f"during the run, other processes took {s['other_cpus_mean']:.2f} CPUs{share} on "
            f"average ({s['other_cpus_max']:.2f} at most; above {OTHER_CPUS} CPUs in "
            f"{s['busy_fraction']:.0%} of {s['samples']} samples): a worker then shares a CPU "
            "and is preempted. Paired claims cancel a slowdown common to both arms of a "
            "block but not its noise (wider intervals, larger MDEs); unpaired cell timings can "
            "be slower by up to the time shared, here up to "
            f"{s['other_cpus_max'] / (ncpu or 1):.0%} of the machine"
        )
    if (s["steal_max"] or 0) > STEAL:
        out.append(
            f"the hypervisor stole {s['steal_mean']:.1%} of CPU time on average "
            f"({s['steal_max']:.1%} at most): a value that lost its vCPU is slower by the time "
            "stolen"
        )
    gov = settings.get("governor")
    if gov and any(g != "performance" for g in gov):
        out.append(
            f"CPU frequency governor {', '.join(gov)} (not performance): the clock can change "
            "between rounds and with load, by as much as the ratio of its frequency range"
        )
    if settings.get("boost") == "1":
        out.append(
            "turbo boost is on: the clock depends on temperature and the other cores' load, "
            "several % between rounds"
        )
    if settings.get("shared_cores") and settings.get("smt_active") == "1":
        out.append(
            f"SMT siblings share cores ({', '.join(settings['shared_cores'])}): load on a "
            "sibling slows the measuring thread; pin with --affinity to one thread per core"
        )
    if state.get("concurrent"):
        out.append(
            f"another readbench measurement was running ({state['concurrent'].get('holder')}) "
            "and --allow-concurrent let this one run anyway: the two share the CPUs"
        )
    return out
