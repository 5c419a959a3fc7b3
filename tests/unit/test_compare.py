"""readbench compare on SYNTHETIC runs (tests/synthetic_runs.py).

FIXTURE, NOT A MEASUREMENT: run B is run A's model with a 5 % slowdown injected
into SHIFTED only, plus fresh noise (different seed). The compare must flag
exactly those cells, and pyperf's own compare_to must agree in direction.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from readbench.analysis.compare import compare_runs
from readbench.cli import main
from readbench.errors import BadInput
from readbench.render.compare import rich_table, write_compare
from tests.synthetic_runs import write_run

SIZES = (64, 4096, 65536)
# injected 5 % slowdowns (synthetic): a baseline cell and two hooked cells
SHIFTED = {
    "cached/64/none": 1.05,
    "pipe/4096/rawtp:sys_enter:empty": 1.05,
    "cached/65536/rawtp:sys_enter:empty": 1.05,
}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("cmp")
    a = write_run(base / "A", run_id="A-erms", seed=101, sizes=SIZES, processes=12)
    b = write_run(base / "B", run_id="B-slowed", seed=202, sizes=SIZES, processes=12, shift=SHIFTED)
    return a, b


@pytest.fixture(scope="module")
def result(two_runs: tuple[Path, Path]) -> dict:
    return compare_runs(list(two_runs))


def test_flags_exactly_the_shifted_cells(result: dict) -> None:
    flagged = {r["name"] for r in result["rows"] if r["significant"]}
    assert flagged == set(SHIFTED)
    for r in result["rows"]:
        if r["name"] in SHIFTED:
            assert r["verdict"] == "B slower"
            assert r["delta_ns"] > 0
            lo, hi = r["ratio_ci95"]
            assert lo < 1.05 < hi and lo > 1.0
    # every common non-A/A cell compared, Holm over all of them
    assert result["n_claims"] == len(SIZES) * 2 * 2
    assert all(r["family_size"] == result["n_claims"] for r in result["rows"])
    json.dumps(result, allow_nan=False)


def test_pyperf_compare_to_agrees_in_direction(two_runs: tuple[Path, Path], result: dict) -> None:
    a, b = two_runs
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pyperf",
            "compare_to",
            str(a / "suite.json"),
            str(b / "suite.json"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    verdicts = {
        m.group(1): m.group(2)
        for m in re.finditer(
            r"^(\S+): Mean \+- std dev: .*: [\d.]+x (slower|faster)$", proc.stdout, re.M
        )
    }
    # pyperf reads the suite files as they are and sees every shifted cell slower
    for name in SHIFTED:
        assert verdicts.get(name) == "slower", (name, proc.stdout)
    for r in result["rows"]:
        if r["significant"]:
            assert verdicts[r["name"]] == ("slower" if r["delta_ns"] > 0 else "faster")


def test_html_and_terminal_table(two_runs: tuple[Path, Path], result: dict, tmp_path: Path) -> None:
    path = write_compare(result, tmp_path)
    html = path.read_text()
    assert path.parent.name == "compare-A-erms-vs-B-slowed"
    assert "B-slowed vs A-erms" in html
    assert html.count('<tr class="sig">') == len(SHIFTED)
    assert "SYNTHETIC DATA" in html and "<script" not in html
    assert 'id="fig-cmp-1"' in html
    con = Console(record=True, width=200)
    con.print(rich_table(result))
    text = con.export_text()
    for name in SHIFTED:
        line = next(ln for ln in text.splitlines() if f" {name} " in ln)
        assert "B slower" in line


def test_different_matrices_use_common_cells(tmp_path: Path) -> None:
    a = write_run(tmp_path / "A", run_id="A", sizes=(64, 4096), processes=6)
    b = write_run(tmp_path / "B", run_id="B", sizes=(4096, 65536), processes=6, seed=5)
    r = compare_runs([a, b])
    pair = r["pairs"][0]
    assert not pair["same_matrix"]
    assert pair["common"] == 4
    assert pair["only_in_a"] == sorted(
        [
            "cached/64/none",
            "cached/64/rawtp:sys_enter:empty",
            "pipe/64/none",
            "pipe/64/rawtp:sys_enter:empty",
        ]
    )
    assert all("/65536/" in n for n in pair["only_in_b"]) and len(pair["only_in_b"]) == 4
    assert {row["name"] for row in r["rows"]} == {
        f"{w}/4096/{h}" for w in ("cached", "pipe") for h in ("none", "rawtp:sys_enter:empty")
    }
    assert "different matrices" in pair["notes"][0]
    html = write_compare(r, tmp_path / "rep").read_text()
    assert "different matrices" in html and "only in A" in html


def test_three_runs_and_hostile_labels(tmp_path: Path) -> None:
    hook = "<b>[red]x[/red]</b>"
    runs = [
        write_run(
            tmp_path / f"r{i}",
            run_id=f"run{i}<i>",
            sizes=(64,),
            hooks=("none", hook),
            hook_cost={hook: (30.0, 0.0)},
            processes=5,
            seed=i,
        )
        for i in range(3)
    ]
    r = compare_runs(runs)
    assert len(r["pairs"]) == 2
    html = write_compare(r, tmp_path / "rep").read_text()
    assert "<b>[red]" not in html and "&lt;b&gt;[red]x[/red]&lt;/b&gt;" in html
    assert "run1&lt;i&gt;" in html
    con = Console(record=True, width=250)
    con.print(rich_table(r))
    assert "[red]x[/red]" in con.export_text()  # printed literally, not as markup


def test_compare_needs_two_runs(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="at least two"):
        compare_runs([write_run(tmp_path / "A", sizes=(64,), processes=2)])


def test_cli_compare(
    two_runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = two_runs
    assert main.main(["compare", str(a), str(b), "--out", str(tmp_path), "--json"]) == 0
    out = capsys.readouterr()
    obj = json.loads(out.out)
    assert obj["significant"] == len(SHIFTED) and Path(obj["report"]).exists()
    assert "B slower" in out.err  # the rich table goes to stderr with --json
    assert main.main(["compare", str(a), "--out", str(tmp_path)]) == 2
    assert "at least two" in capsys.readouterr().err
    assert main.main(["compare", str(a), str(tmp_path / "nope")]) == 2
    assert "nope" in capsys.readouterr().err


def test_hook_overhead_change_between_runs(tmp_path: Path) -> None:
    # SYNTHETIC: the hook costs 60 ns in A and 90 ns in B (e.g. a slower trampoline)
    a = write_run(tmp_path / "A", run_id="A", seed=1, sizes=(64, 4096), processes=12)
    b = write_run(
        tmp_path / "B",
        run_id="B",
        seed=2,
        sizes=(64, 4096),
        processes=12,
        hook_cost={"rawtp:sys_enter:empty": (90.0, 0.0)},
    )
    same = write_run(tmp_path / "C", run_id="C", seed=3, sizes=(64, 4096), processes=12)
    r = compare_runs([a, b, same])
    by = {(c["pair"], c["name"]): c for c in r["overhead_change"]}
    assert len(by) == 8
    c = by[(1, "cached/64/rawtp:sys_enter:empty")]
    expected = (1 + 90 / 303.84) / (1 + 60 / 303.84)  # model: base 300 + 0.06·64 ns
    lo, hi = c["change_ci"]
    assert c["significant"] and lo < expected < hi
    assert c["n_a"] == c["n_b"] == 12 and c["change_ci_level"] == pytest.approx(1 - 0.01 / 8)
    assert all(by[(1, n)]["change_ratio"] > 1 for (k, n) in by if k == 1)
    # same model, fresh noise: no change claimed, and the simultaneous intervals cover 1
    assert not any(by[(2, n)]["significant"] for (k, n) in by if k == 2)
    assert all(
        by[(2, n)]["change_ci"][0] < 1 < by[(2, n)]["change_ci"][1] for (k, n) in by if k == 2
    )
    assert r["overhead_change_skipped"] == []
    html = write_compare(r, tmp_path / "rep").read_text()
    assert "Hook overhead change, B vs A" in html


def test_emulated_runs_are_never_set_against_hardware_runs(tmp_path: Path) -> None:
    """A TCG guest's times are emulated: compare refuses to test them against a hardware run
    (exit 2, naming both), and labels a compare of emulated runs as emulated throughout."""
    hw = write_run(tmp_path / "hw", run_id="hardware", seed=1, sizes=(64,), processes=8)
    tcg = write_run(tmp_path / "tcg", run_id="tcg-erms", seed=2, sizes=(64,), processes=8,
                    emulated=True)  # fmt: skip
    with pytest.raises(BadInput, match=r"tcg-erms ran on an emulated CPU.*hardware on hardware"):
        compare_runs([hw, tcg])
    cmd = [sys.executable, "-m", "readbench", "compare", str(hw), str(tcg)]
    r = subprocess.run([*cmd, "--out", str(tmp_path / "rep")], capture_output=True, text=True)
    assert r.returncode == 2 and "emulated" in r.stderr and not (tmp_path / "rep").exists()
    tcg2 = write_run(tmp_path / "tcg2", run_id="tcg-noerms", seed=3, sizes=(64,), processes=8,
                     emulated=True, erms=False)  # fmt: skip
    res = compare_runs([tcg, tcg2])
    assert res["emulated"] and all(run["machine"]["emulated"] for run in res["runs"])
    html = write_compare(res, tmp_path / "rep2").read_text()
    assert "EMULATED TIMES" in html and "emulated (tcg)" in html
    # the terminal says it too, with each run's routine beside it
    cmd = [sys.executable, "-m", "readbench", "compare", str(tcg), str(tcg2)]
    r = subprocess.run([*cmd, "--out", str(tmp_path / "rep3")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.index("EMULATED TIMES") < r.stdout.index("readbench compare:")
    routines = [ln.split("copy routine ")[1].split(";")[0] for ln in r.stdout.splitlines()
                if "copy routine " in ln]  # fmt: skip
    assert routines == [run["machine"]["copy_routine"] for run in res["runs"]], r.stdout
