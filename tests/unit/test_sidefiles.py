"""Typed side files (model.sidefiles, store.load.load_sides): a SYNTHETIC run's files pass;
a file that breaks its type, or a manifest whose cells no longer match suite.json, is refused
with exit 2 naming the file and the field (or the cells), and no report is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from readbench.cli import main
from readbench.errors import BadInput
from readbench.model import sidefiles
from readbench.render import report
from readbench.store.load import load_sides
from tests.synthetic_runs import write_run

GUEST = {
    "launcher": "readbench guest", "accel": "tcg", "emulated": True,
    "accel_reason": "KVM trial boot hung (kvm_pvm)", "cpu_model": "max,-erms",
    "clearcpuid": ["rep_good"], "append": [], "boots": 1, "returncode": 0, "seconds": 361.6,
    "kernel": {"release": "6.1.0-41-amd64", "source": "debian"},
    "console_log": "guest-console.log",
}  # fmt: skip


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return write_run(tmp_path / "run", sizes=(64,), processes=4)


def _edit(path: Path, change) -> None:  # type: ignore[no-untyped-def]
    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(obj))


def _refused(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    out = tmp_path / "rep"
    assert main.main(["report", str(run), "--out", str(out)]) == 2
    assert not out.exists(), "a refused run must leave no report behind"
    return capsys.readouterr().err


def test_every_side_file_of_a_run_loads_typed(run: Path) -> None:
    (run / "guest.json").write_text(json.dumps(GUEST))
    s = load_sides(run)
    assert s.perf and s.bpf and s.copy is not None and s.guest is not None
    assert all(p["workload"] == "cached" or p["workload"] == "pipe" for p in s.perf)
    assert s.calibration is None and s.coverage is None  # this run had no such pass


@pytest.mark.parametrize(
    ("sub", "change", "field", "rule"),
    [
        ("perf", lambda o: o.update(copy_fraction="most"), "copy_fraction", "int or float or null"),
        ("bpf", lambda o: o["snapshot"]["programs"][0].update(run_cnt="7"),
         "snapshot.programs[0].run_cnt", "must be int"),
        ("bpf", lambda o: o.pop("snapshot_before"), "snapshot_before", "is missing"),
    ],
)  # fmt: skip
def test_a_broken_side_file_is_refused_naming_file_and_field(  # type: ignore[no-untyped-def]
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], sub, change, field, rule
) -> None:
    side = sorted((run / sub).glob("*.json"))[0]
    _edit(side, change)
    err = _refused(run, tmp_path, capsys)
    assert str(side) in err and f"field '{field}'" in err and rule in err, err


def test_atlas_attach_verdicts_are_checked(run: Path, tmp_path: Path) -> None:
    point = {"target": "vfs_read", "attach": {"fentry": {"reason": "EPERM"}}}
    bad = {"cell": "cached/64", "workload": "cached", "size": 64, "points": [point]}
    with pytest.raises(BadInput, match=r"field 'points\[0\]\.attach\.fentry\.available'"):
        sidefiles.check("atlas", bad, "atlas/cached_64.json")
    point["attach"]["fentry"]["available"] = 1  # an int is not a verdict
    with pytest.raises(BadInput, match="must be bool, not int"):
        sidefiles.check("atlas", bad, "atlas/cached_64.json")


def test_unreadable_side_file_is_refused(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (run / "copy.json").write_text("{half")
    err = _refused(run, tmp_path, capsys)
    assert "copy.json" in err and "not valid JSON" in err


def test_manifest_cells_that_no_longer_match_the_suite_are_refused(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A hand edit renames a cell: it used to crash the report (exit 1, a traceback)."""

    def rename(m: dict) -> None:
        m["cells"][0]["name"] = "cached/128/none"

    _edit(run / "manifest.json", rename)
    err = _refused(run, tmp_path, capsys)
    assert "no data in suite.json although measured: cached/128/none" in err, err
    assert "the manifest does not list: cached/64/none" in err, err


def test_a_guest_run_shows_its_guest(run: Path, tmp_path: Path) -> None:
    (run / "guest.json").write_text(json.dumps(GUEST))
    page = report.write_report(run, tmp_path / "rep").read_text()
    part = page[page.index('id="guest"') :]
    assert "Linux 6.1.0-41-amd64 (debian)" in part and "max,-erms, clearcpuid=rep_good" in part
    assert "TCG: emulated CPU" in part and "361.6 s" in part
    plain = write_run(tmp_path / "plain", sizes=(64,), processes=4)
    assert 'id="guest"' not in report.write_report(plain, tmp_path / "rep2").read_text()
