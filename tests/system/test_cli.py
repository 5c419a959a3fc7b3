"""The command line contract (design §8): JSON shapes, exit codes, bad input, interrupts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyperf
import pytest

from readbench.model import schema
from tests.conftest import require

RB = [sys.executable, "-m", "readbench"]


def rb(*args: str, timeout: float = 300, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*RB, *args], capture_output=True, text=True, timeout=timeout, **kw)  # type: ignore[call-overload]


def tree(p: Path) -> set[str]:
    return {str(x.relative_to(p)) for x in p.rglob("*")} if p.exists() else set()


def test_probe_json_contract() -> None:
    r = rb("probe", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["cpu"]["model"] and isinstance(info["cpu"]["flags"], list)
    assert info["kernel"]["release"] == os.uname().release
    assert info["copy_routine"]["name"] and info["copy_routine"]["why"]
    assert isinstance(info["perf"]["hardware_counters"], bool)
    for t in ("tp", "rawtp", "tpbtf", "fentry", "fexit", "kprobe", "kretprobe"):
        a = info["attach_types"][t]
        assert isinstance(a["available"], bool)
        assert a["available"] or a["reason"], f"{t} unavailable without a reason"
    # The probe reports what CPUID says as well as the kernel's view.
    assert set(info["cpu"]["cpuid"]) >= {"erms", "fsrm"}


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["one", "--workload", "cached", "--size", "0"], r"--size '0': must be greater than 0"),
        (["one", "--workload", "cached", "--size", "-5"], r"--size '-5'"),
        (["one", "--workload", "cached", "--size", "2G"], r"exceeds the maximum"),
        (["one", "--workload", "floppy", "--size", "64"], r"workload 'floppy': unknown"),
        (
            ["one", "--workload", "cached", "--size", "64", "--hook", "warp:drive"],
            r"hook 'warp:drive'",
        ),
        (["one", "--workload", "direct", "--size", "100"], r"O_DIRECT size 100 is not a multiple"),
        (["run", "--matrix", "/nonexistent/m.toml"], r"file not found"),
        (["run", "--matrix", "medium"], r"not a preset"),
        (["run", "--matrix", "quick", "--sizes", "64,zero"], r"'zero': not a size"),
        (["run", "--matrix", "quick", "--rounds", "0"], r"--rounds 0: must be >= 1"),
        (["run", "--resume", "no-such-run"], r"run no-such-run: no manifest.json"),
        (["report", "/nonexistent-run"], r"/nonexistent-run"),
    ],
)
def test_bad_input_exit_2_and_nothing_written(
    tmp_path: Path, args: list[str], pattern: str
) -> None:
    out = tmp_path / "results"
    data = tmp_path / "data"
    extra = ["--out", str(out)] if args[0] == "run" else []
    extra += ["--data-dir", str(data)] if args[0] in ("run", "one") else []
    r = rb(*args, *extra, cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, r.stderr)
    import re

    assert re.search(pattern, r.stderr), r.stderr
    assert not tree(out), "bad input left files in the results dir"
    assert not data.exists() or args[-1] == "100", "bad input created the data dir"
    assert r.stdout == ""


def test_bad_matrix_file_contents(tmp_path: Path) -> None:
    m = tmp_path / "m.toml"
    m.write_text("[[block]]\nworkloads = ['cached']\nsizes = [64, 0]\n")
    r = rb("run", "--matrix", str(m), "--out", str(tmp_path / "res"), cwd=tmp_path)
    assert r.returncode == 2 and "must be greater than 0" in r.stderr
    assert not tree(tmp_path / "res")


def test_unwritable_data_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = rb("one", "--workload", "cached", "--size", "64", "--data-dir", str(blocker / "sub"))
    assert r.returncode == 2 and f"--data-dir {blocker / 'sub'}: cannot write" in r.stderr
    assert not (blocker / "sub").exists()


def test_missing_capability_exit_3(tmp_path: Path) -> None:
    """A hook the kernel refuses: `one` exits 3 and says which capability and why."""
    from readbench.bpf import support

    refused = [t for t, a in support.attach_type_support().items() if not a["available"]]
    require(bool(refused), "not-on-this-kind: every attach type is available on this kernel")
    t = refused[0]
    hook = {"fentry": "fentry:vfs_read", "fexit": "fexit:vfs_read", "kprobe": "kprobe:vfs_read",
            "kretprobe": "kretprobe:vfs_read", "tp": "tp:syscalls/sys_enter_pread64",
            "rawtp": "rawtp:sys_enter", "tpbtf": "tpbtf:sys_enter"}[t]  # fmt: skip
    r = rb("one", "--workload", "cached", "--size", "64", "--hook", hook, "--out", str(tmp_path))
    assert r.returncode == 3, r.stderr
    assert "not available" in r.stderr and "errno" in r.stderr


def test_one_json(root: None) -> None:
    r = rb(
        "one", "--workload", "cached", "--size", "64", "--json", "--rounds", "2", "--no-progress"
    )
    assert r.returncode == 0, r.stderr
    o = json.loads(r.stdout)
    assert o["workload"] == "cached" and o["size"] == 64 and o["hook"] == "none"
    lo, hi = o["ci95"]
    assert 0 < lo <= o["ns_per_op_median"] <= hi
    assert o["ns_per_op_mean"] > 0 and o["n_processes"] == 4


def _quick_run(tmp_path: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*RB, "run", "--matrix", "quick", "--hooks", "none", "--no-copy", "--no-progress",
         "--out", str(tmp_path / "res"), "--seed", "7", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_rounds(res: Path, n: int, timeout: float = 120) -> Path:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        runs = list(res.glob("*/rounds/*/r*.json"))
        if len(runs) >= n:
            return runs[0].parents[2]
        time.sleep(0.1)
    raise AssertionError(f"fewer than {n} rounds finished in {timeout} s")


def _workers_of(run_dir: Path) -> list[int]:
    """Processes still running readbench workers for this run (by command line)."""
    pids = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "readbench.measure.worker" in cmd and str(run_dir) in cmd:
            pids.append(int(p.name))
    return pids


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_interrupt_keeps_finished_and_resume_completes(tmp_path: Path, sig: int) -> None:
    proc = _quick_run(tmp_path)
    run_dir = _wait_rounds(tmp_path / "res", 2)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert "interrupted" in err and "--resume" in err
    m = json.loads((run_dir / "manifest.json").read_text())
    assert m["status"] == "interrupted"
    done = sorted(run_dir.glob("rounds/*/r*.json"))
    assert len(done) >= 2
    assert not list(run_dir.rglob("*.part")) and not list(run_dir.rglob(".*.tmp"))
    # Finished rounds are in a suite pyperf itself can read.
    suite = pyperf.BenchmarkSuite.load(str(run_dir / "suite.json"))
    assert suite.get_benchmarks()
    assert not _workers_of(run_dir)
    # Resume measures only what is missing and completes the run.
    before = {p: p.stat().st_mtime_ns for p in done}
    r = rb(
        "run", "--resume", str(run_dir), "--no-progress", "--out", str(tmp_path / "res"), "--json"
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["run_dir"] == str(run_dir) and out["status"] == "complete"
    assert all(p.stat().st_mtime_ns == t for p, t in before.items()), "resume re-measured a round"
    m = json.loads((run_dir / "manifest.json").read_text())
    assert m["status"] == "complete" and all(c["status"] == "done" for c in m["cells"])
    assert len(list(run_dir.glob("rounds/*/r*.json"))) == 3 * len(m["cells"])


def test_sigkill_leaves_no_worker(tmp_path: Path) -> None:
    proc = _quick_run(tmp_path)
    run_dir = _wait_rounds(tmp_path / "res", 1)
    time.sleep(0.3)  # let the next worker start
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10
    while _workers_of(run_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _workers_of(run_dir), "a worker outlived its SIGKILLed run"
    for f in run_dir.glob("rounds/*/r*.json"):
        pyperf.Benchmark.load(str(f))  # every finished round is whole


def test_run_json_and_pyperf_compat(tmp_path: Path) -> None:
    r = rb("run", "--matrix", "quick", "--hooks", "none", "--no-copy", "--no-progress", "--aa",
           "--rounds", "2", "--alpha", "0.05", "--out", str(tmp_path / "res"),
           "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert {"run_dir", "cells", "significant", "aa_false_positive_rate"} <= set(out)
    assert out["alpha"] == 0.05
    assert isinstance(out["aa_false_positive_rate"], float)
    run_dir = Path(out["run_dir"])
    names = {c["name"] for c in out["cells"]}
    assert "cached/64/none" in names and "cached/64/none#aa" in names
    m = json.loads((run_dir / "manifest.json").read_text())
    assert m["schema_version"] == schema.SCHEMA_VERSION
    assert m["analysis"]["alpha"] == 0.05 and m["probe"]["kernel"]["release"]
    assert m["versions"]["pyperf"] == pyperf.__version__
    # pyperf's own tools read the suite as it is.
    for cmd in (["show"], ["stats"]):
        p = subprocess.run([sys.executable, "-m", "pyperf", *cmd, str(run_dir / "suite.json")],
                           capture_output=True, text=True)  # fmt: skip
        assert p.returncode == 0, p.stderr
    suite = pyperf.BenchmarkSuite.load(str(run_dir / "suite.json"))
    b = suite.get_benchmark("cached/64/none")
    assert len([r for r in b.get_runs() if r.values]) == 4  # 2 rounds × 2 processes


def test_run_with_count_hooks_counts_every_read(root: None, tmp_path: Path) -> None:
    """Through the whole runner: each hooked cell's BPF-stats pass reads its `count` body,
    which must equal the read calls the C loop made (pipe included: top-up reads count)."""
    from readbench.bpf import support

    avail = support.attach_type_support()
    require(avail["rawtp"]["available"], f"rawtp unavailable: {avail['rawtp']['reason']}")
    require(avail["tp"]["available"], f"tp unavailable: {avail['tp']['reason']}")
    r = rb("run", "--workloads", "cached,pipe", "--sizes", "64",
           "--hooks", "none,rawtp:sys_enter:count,tp:syscalls/sys_enter_read:count",
           "--rounds", "1", "--no-copy", "--no-perf", "--no-progress",
           "--out", str(tmp_path / "res"), "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    run_dir = Path(out["run_dir"])
    # The read() tracepoint makes no sense for pread64: skipped with that reason, not dropped.
    skipped = {u["cell"]: u["reason"] for u in out["unavailable"]}
    assert "not applicable" in skipped["cached/64/tp:syscalls/sys_enter_read:count"]
    checks = {}
    for f in (run_dir / "bpf").glob("*.json"):
        side = json.loads(f.read_text())
        checks[side["cell"]] = side["count_check"]
        assert side["snapshot"]["stats_enabled"] is True
        assert side["floor"]["ns_per_run"] is not None
    assert set(checks) == {
        "cached/64/rawtp:sys_enter:count",
        "pipe/64/rawtp:sys_enter:count",
        "pipe/64/tp:syscalls/sys_enter_read:count",
    }
    for cell, c in checks.items():
        assert c["applies"] and c["counted"] == c["syscalls"] > 0, (cell, c)
