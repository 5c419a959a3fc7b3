"""compare with several runs per side: the run (one boot) is the unit. SYNTHETIC runs (not
measurements): every run has its own boot factor on all reads (SD 2 %), far above the
1 % process noise, and side B is 10 % slower on one cell only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from readbench.analysis.compare import compare_runs, compare_sides
from readbench.cli.main import _compare_sides
from tests.synthetic_runs import write_run

SHIFTED = "cached/64/none"
KW = {"workloads": ("cached",), "sizes": (64, 4096), "processes": 12, "aa": False,
      "side_files": False}  # fmt: skip
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sides(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], list[Path]]:
    base = tmp_path_factory.mktemp("sides")
    rng = np.random.default_rng(14)
    a = [write_run(base / f"A{i}", run_id=f"A{i}", seed=i, boot=float(rng.lognormal(0, 0.02)),
                   **KW) for i in range(5)]  # fmt: skip
    b = [write_run(base / f"B{i}", run_id=f"B{i}", seed=100 + i, shift={SHIFTED: 1.10},
                   boot=float(rng.lognormal(0, 0.02)), **KW) for i in range(5)]  # fmt: skip
    return a, b


def test_between_boot_flags_only_the_shifted_cell(sides: tuple[list[Path], list[Path]]) -> None:
    res = compare_sides(*sides)
    assert not res["within_boot"] and "run" in res["unit"]
    flagged = {r["name"] for r in res["rows"] if r["significant"]}
    assert flagged == {SHIFTED}
    row = next(r for r in res["rows"] if r["name"] == SHIFTED)
    assert row["n_a"] == row["n_b"] == 5 and row["verdict"] == "B slower"
    lo, hi = row["ratio_ci_simultaneous"]
    assert lo <= row["ratio_ci95"][0] and hi >= row["ratio_ci95"][1] and lo > 1
    assert row["delta_ns"] == pytest.approx((row["ratio"] - 1) * row["median_a_ns"])
    assert {r["side"] for r in res["runs"]} == {"A", "B"}
    json.dumps(res, allow_nan=False)


def test_one_run_per_side_is_within_boot_and_says_so(
    sides: tuple[list[Path], list[Path]],
) -> None:
    """Two boots of the same configuration, processes as the unit: the boot difference
    alone (2 %) comes out 'significant'. The result is labelled within-boot."""
    a = sides[0]
    res = compare_runs([a[0], a[1]])
    assert res["within_boot"] and "between-boot variance is not sampled" in res["unit_note"]
    assert res["significant"] >= 1  # anti-conservative for the configuration, as labelled


def test_cli_both_spellings_and_bad_sides(
    sides: tuple[list[Path], list[Path]], tmp_path: Path
) -> None:
    a, b = sides

    def rb(*args: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "readbench", "compare", *map(str, args),
                               "--out", str(tmp_path), "--json"], capture_output=True,
                              text=True, cwd=ROOT, check=False)  # fmt: skip

    r = rb(a[0], a[1], "--", b[0], b[1])
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert not out["within_boot"] and len(out["runs"]) == 4
    html = Path(out["report"]).read_text()
    assert "one boot per run" in html and "simultaneous" in html
    # `--` is rewritten to `--vs` (argparse would drop a bare `--`), after compare only
    assert _compare_sides(["compare", "a", "--", "b"]) == ["compare", "a", "--vs", "b"]
    assert _compare_sides(["run", "--", "x"]) == ["run", "--", "x"]
    r = rb(a[0], b[0])  # the existing two-run form
    assert r.returncode == 0 and json.loads(r.stdout)["within_boot"]
    assert "within-boot" in Path(json.loads(r.stdout)["report"]).read_text()
    r = rb(a[0], "--", b[0], b[1])
    assert r.returncode == 2 and "at least 2 runs on each side" in r.stderr
