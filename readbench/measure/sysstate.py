"""The machine's state around a measurement, recorded with the run (like `pyperf system show`,
but kept in the manifest): CPU time other processes took, steal time, frequency governor and
boost, SMT siblings, and a lock that refuses a second concurrent readbench run.

Other processes' CPU time = the busy time /proc/stat counts on every CPU minus this
process's and its waited-for children's CPU time (os.times), over the same interval; so a
sample taken between two cells sees exactly what competed with the measurement. The judging
(which figures could move the claims, and by how much) is readbench.analysis.machine_state.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from readbench.errors import BadInput

CLK_TCK = os.sysconf("SC_CLK_TCK")
_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _proc_stat() -> dict[str, float]:
    """Seconds summed over CPUs per /proc/stat field (guest time is inside user already)."""
    with open("/proc/stat") as f:
        parts = f.readline().split()
    vals = [int(x) / CLK_TCK for x in parts[1 : 1 + len(_FIELDS)]]
    return dict(zip(_FIELDS, vals, strict=False))


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def counters() -> dict[str, Any]:
    """One reading; two of them make a sample (sample())."""
    return {"t": time.monotonic(), "stat": _proc_stat(), "own": _own_cpu()}


def sample(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """What happened between two readings: other processes' CPU time in CPUs (1.0 = one CPU
    busy the whole time), this run's, and the hypervisor's steal as a fraction."""
    dt = max(b["t"] - a["t"], 1e-9)
    d = {k: b["stat"][k] - a["stat"][k] for k in _FIELDS}
    busy = d["user"] + d["nice"] + d["system"] + d["irq"] + d["softirq"]
    total = busy + d["idle"] + d["iowait"] + d["steal"]
    own = b["own"] - a["own"]
    return {
        "seconds": round(dt, 3),
        "other_cpus": round(max(busy - own, 0.0) / dt, 3),
        "own_cpus": round(own / dt, 3),
        "steal_fraction": round(d["steal"] / total, 4) if total > 0 else None,
    }


def idle_sample(seconds: float = 1.0) -> dict[str, Any]:
    """Before a run: what else is running while this process sleeps."""
    a = counters()
    time.sleep(seconds)
    return sample(a, counters())


def parse_cpu_list(text: str) -> list[int]:
    """taskset's CPU list ("1", "0,2", "0-3") as CPU numbers; BadInput when malformed."""
    out: set[int] = set()
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            out.update(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise BadInput(
            f"--affinity {text!r}: expected a CPU list such as 1 or 0,2 or 0-3"
        ) from None
    return sorted(out)


def cpu_settings(cpus: list[int] | None = None) -> dict[str, Any]:
    """Governor per CPU, boost, SMT and each CPU's siblings (None where sysfs has no file:
    a VM often exposes no cpufreq)."""
    base = "/sys/devices/system/cpu"
    online = cpus if cpus is not None else sorted(os.sched_getaffinity(0))
    gov = {c: _read(f"{base}/cpu{c}/cpufreq/scaling_governor") for c in online}
    no_turbo = _read(f"{base}/intel_pstate/no_turbo")
    boost = _read(f"{base}/cpufreq/boost")
    if boost is None and no_turbo is not None:
        boost = "0" if no_turbo == "1" else "1"
    sib = {c: _read(f"{base}/cpu{c}/topology/thread_siblings_list") for c in online}
    return {
        "cpus": online,
        "governor": sorted({g for g in gov.values() if g}) or None,
        "boost": boost,
        "smt_active": _read(f"{base}/smt/active"),
        "siblings": {str(c): s for c, s in sib.items()},
        "shared_cores": sorted({s for s in sib.values() if s and ("," in s or "-" in s)}),
    }


# -- one readbench run at a time ----------------------------------------------------------


def lock_path() -> Path:
    if os.environ.get("READBENCH_LOCK_FILE"):
        return Path(os.environ["READBENCH_LOCK_FILE"])
    d = Path("/run/lock") if os.access("/run/lock", os.W_OK) else Path(tempfile.gettempdir())
    return d / "readbench-measure.lock"


def _ancestors() -> set[int]:
    pids, pid = set(), os.getppid()
    while pid > 1:
        pids.add(pid)
        stat = _read(f"/proc/{pid}/stat")
        if not stat:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return pids


class RunLock:
    """An exclusive lock for the life of a measurement; released when the process ends
    (flock), so a killed run leaves nothing to clean up. A child of the holder (the run's
    own `calibrate` or `atlas` pass) goes through."""

    def __init__(self, what: str, allow_concurrent: bool = False) -> None:
        self.path = lock_path()
        self.what = what
        self.allow = allow_concurrent
        self.concurrent: dict[str, Any] | None = None  # the other run, when allowed anyway
        self._f: Any = None

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+")  # noqa: SIM115 - held open for the lock's life
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip()
            f.close()
            pid = int(holder.split()[0]) if holder[:1].isdigit() else -1
            if pid in _ancestors():
                return self  # our own run's child pass
            if not self.allow:
                raise BadInput(
                    f"another readbench measurement is running on this machine ({holder or '?'}; "
                    f"lock {self.path}): two measurements share the CPUs and move each other's "
                    "numbers. Wait for it, or pass --allow-concurrent to measure anyway "
                    "(the manifest records it)"
                ) from None
            self.concurrent = {"holder": holder, "lock": str(self.path)}
            return self
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()} {self.what}\n")
        f.flush()
        self._f = f
        return self

    def release(self) -> None:
        if self._f is not None:
            fcntl.flock(self._f, fcntl.LOCK_UN)
            self._f.close()
            self._f = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
