"""The guest lane: readbench inside Debian kernels under QEMU, for what the CI host refuses
(fentry, kprobes, BPF LSM) or lacks (the pre-6.4 copy routines). Each test boots a real guest
with `readbench guest`, as a user would; under TCG a boot costs ~20 s and every time is
emulated, so these tests check facts: counts, attachability, refusals, the routine that runs
and that the attribution pass finds samples in it (how large its share is, TCG decides)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from readbench.model import hookspec
from tests.guest.conftest import ROOT, guest, show

HERE = Path(__file__).resolve().parent
# A TCG guest is slow (a boot ~20 s, the 6.1 suite ~10 min): past the suite's 600 s default.
pytestmark = pytest.mark.timeout(3600)

# The pre-6.4 routines' kprobe programs (24 tests that skip on a 6.4+ host kernel).
PRE64_VERIFIER_TESTS = [
    "tests/system/test_hooks.py::test_function_hook_programs_pass_the_verifier_or_load_is_"
    f"refused[{a}:{r}:{b}]"
    for a in ("kprobe", "kretprobe")
    for r in hookspec.PRE64_ROUTINES
    for b in hookspec.BODIES
]


def test_debian_61_guest_suite(guest_host: None) -> None:
    """One 6.1 boot runs tests/inguest (fentry/kprobe/LSM counts against the independent
    counter, the atlas's function rows and recommendations, notrace refusals) and the 24
    pre-6.4 copy-routine tests of tests/system/test_hooks.py."""
    p = guest("--kernel", "debian-6.1", "--pytest", "--", "-q", "-ra", "tests/inguest",
              *PRE64_VERIFIER_TESTS, timeout=2400)  # fmt: skip
    assert p.returncode == 0, show(p)
    assert " passed" in p.stdout and " failed" not in p.stdout, show(p)
    assert "TCG" in p.stderr or "KVM" in p.stderr  # the launcher says how it ran


CPU_MODELS = [
    # (-cpu, clearcpuid, the routine that must copy on 6.1)
    ("max", None, "copy_user_enhanced_fast_string"),
    ("max,-erms", None, "copy_user_generic_string"),
    ("max,-erms", "rep_good", "copy_user_generic_unrolled"),
]


@pytest.fixture(scope="module")
def cpu_model_runs(guest_host: None, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A cached 64 KiB cell with its perf pass, in a 6.1 guest per CPU model."""
    out = tmp_path_factory.mktemp("guest-results")
    runs = {}
    for cpu, clear, routine in CPU_MODELS:
        args = ["--kernel", "debian-6.1", "--cpu", cpu, "--out", str(out)]
        args += ["--clearcpuid", clear] if clear else []
        before = set(out.iterdir())
        p = guest(*args, "--", "run", "--matrix", str(HERE / "copy64k.toml"), "--no-progress",
                  timeout=1800)  # fmt: skip
        assert p.returncode == 0, show(p)
        (run,) = set(out.iterdir()) - before
        runs[routine] = run
    return runs


@pytest.mark.parametrize(("cpu", "clear", "routine"), CPU_MODELS)
def test_copy_routine_per_cpu_model(
    cpu_model_runs: dict, cpu: str, clear: str | None, routine: str
) -> None:
    """The guest's probe names the routine the CPU model selects, kallsyms agrees, and the
    attribution pass finds the 64 KiB read's samples in that routine."""
    run = cpu_model_runs[routine]
    manifest = json.loads((run / "manifest.json").read_text())
    probe = manifest["probe"]
    assert probe["copy_routine"]["name"] == routine, probe["copy_routine"]
    assert probe["copy_routine"]["kallsyms_check"]["status"] == "consistent"
    assert probe["virtualization"]["guest"]["cpu_model"] == cpu
    flags = set(probe["cpu"]["flags"])
    assert ("erms" in flags) == ("-erms" not in cpu) and ("rep_good" in flags) == (not clear)
    guest_rec = json.loads((run / "guest.json").read_text())
    assert guest_rec["returncode"] == 0 and guest_rec["kernel"]["release"].startswith("6.1.")
    (perf,) = (run / "perf").glob("*.json")
    side = json.loads(perf.read_text())
    # the routine's own symbol (on 5.18-6.3 ERMS and the unrolled routine also name
    # copy_user_short_string: the < 64 B copies, and the unrolled routine's every tail)
    assert routine in side["copy_symbol"].split(","), side.get("copy_symbol")
    assert side["copy_fraction"] > 0.05, side["copy_fraction"]


def test_cross_cpu_compare_labels_emulated_times(cpu_model_runs: dict, tmp_path: Path) -> None:
    """`compare` of the ERMS and no-ERMS guest runs: each run's routine and copy share, and
    every time labelled emulated; set against a hardware run it refuses."""
    erms = cpu_model_runs["copy_user_enhanced_fast_string"]
    string = cpu_model_runs["copy_user_generic_string"]
    p = subprocess.run(
        [sys.executable, "-m", "readbench", "compare", str(erms), str(string), "--json",
         "--out", str(tmp_path)],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    # the terminal (stderr beside --json) labels the times and names each run's routine
    assert "EMULATED TIMES" in p.stderr and "copy_user_generic_string" in p.stderr, p.stderr
    res = json.loads(p.stdout)
    assert res["emulated"]
    routines = [r["machine"]["copy_routine"] for r in res["runs"]]
    assert routines == ["copy_user_enhanced_fast_string", "copy_user_generic_string"]
    for r in res["runs"]:
        share = r["machine"]["copy_share"][0]
        assert r["machine"]["copy_routine"] in share["copy_symbol"].split(",")
        assert share["copy_fraction"] > 0
    page = Path(res["report"]).read_text()
    assert "EMULATED TIMES" in page and "copy_user_generic_string" in page


def test_debian_612_guest_probe(guest_host: None) -> None:
    """6.12: rep_movs_alternative (QEMU's max CPU has ERMS, no FSRM), and fentry attaches."""
    p = guest("--kernel", "debian-6.12", "--", "probe", "--json", timeout=1200)
    assert p.returncode == 0, show(p)
    probe = json.loads(p.stdout)
    assert probe["kernel"]["release"].startswith("6.12.")
    assert probe["copy_routine"]["name"] == "rep_movs_alternative", probe["copy_routine"]
    assert probe["copy_routine"]["kallsyms_check"]["status"] == "consistent"
    assert probe["attach_types"]["fentry"]["available"], probe["attach_types"]["fentry"]
    assert probe["virtualization"]["guest"]["kernel"]["package"].startswith("linux-image-6.12")


def _qemu_with(token: str) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes()
            except OSError:
                continue
            if b"qemu-system" in cmd and token.encode() in cmd:
                out.append(int(d.name))
    return out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_no_guest_outlives_an_interrupted_command(guest_host: None, sig: int) -> None:
    token = f"readbench_lane={uuid.uuid4().hex[:12]}"
    p = subprocess.Popen(
        [sys.executable, "-m", "readbench", "guest", "--kernel", "debian-6.1", "--append",
         token, "--accel", "tcg", "--", "probe"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        for _ in range(300):
            if _qemu_with(token):
                break
            time.sleep(0.2)
        else:
            pytest.fail("no QEMU started within 60 s")
        os.kill(p.pid, sig)
        rc = p.wait(timeout=60)
        if sig == signal.SIGTERM:
            assert rc == 143, p.stderr.read() if p.stderr else ""
        for _ in range(100):
            if not _qemu_with(token):
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"QEMU {_qemu_with(token)} outlived readbench guest after {sig!r}")
    finally:
        if p.poll() is None:
            p.kill()
        for pid in _qemu_with(token):
            os.kill(pid, signal.SIGKILL)
