"""The run contract (readbench.model.schema): one shape written by the runner and the
fixtures, read by the store, report and compare; older versions migrated, unknown refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from readbench.errors import BadInput
from readbench.model import schema
from readbench.render.report import write_report
from readbench.store.load import load_run, run_alpha, run_margin
from tests.synthetic_runs import write_run


def _manifest(run: Path) -> dict:
    return json.loads((run / "manifest.json").read_text())


def test_fixture_writes_the_current_schema(tmp_path: Path) -> None:
    run = write_run(tmp_path / "r", sizes=(64,), processes=2, alpha=0.05, margin=0.03)
    m = _manifest(run)
    assert m["schema_version"] == schema.SCHEMA_VERSION
    assert m["analysis"] == {"alpha": 0.05, "margin": 0.03}
    assert isinstance(m["matrix"]["blocks"], list) and "alpha" not in m["matrix"]
    loaded = load_run(run)
    assert run_alpha(loaded.manifest) == 0.05 and run_margin(loaded.manifest) == 0.03


def test_unknown_version_is_refused_naming_both(tmp_path: Path) -> None:
    run = write_run(tmp_path / "r", sizes=(64,), processes=2)
    m = _manifest(run)
    m["schema_version"] = 99
    (run / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BadInput) as e:
        load_run(run)
    msg = str(e.value)
    assert "schema_version 99" in msg and f"version {schema.SCHEMA_VERSION}" in msg


def test_version_1_is_migrated(tmp_path: Path) -> None:
    """Version 1 kept no analysis block; a flat matrix becomes one block."""
    run = write_run(tmp_path / "r", sizes=(64, 4096), processes=2)
    m = _manifest(run)
    block = m["matrix"].pop("blocks")[0]
    del block["aa"]  # version 1 had no per-block A/A
    m["matrix"].update(block, alpha=0.05)
    del m["analysis"]
    m["schema_version"] = 1
    (run / "manifest.json").write_text(json.dumps(m))
    loaded = load_run(run)
    assert loaded.manifest["migrated_from"] == 1
    assert loaded.manifest["matrix"]["blocks"] == [block]
    assert run_alpha(loaded.manifest) == 0.05
    assert run_margin(loaded.manifest) == schema.DEFAULT_MARGIN


def test_new_manifest_rejects_unknown_keys_and_bad_alpha() -> None:
    base = dict(run_id="r", created="t", matrix={"blocks": []}, cells=[], probe={}, versions={})
    with pytest.raises(TypeError, match="unknown manifest keys"):
        schema.new_manifest(**base, colour="red")
    with pytest.raises(BadInput, match=r"--alpha 1\.5"):
        schema.new_manifest(**base, alpha=1.5)


def test_report_states_the_runs_alpha(tmp_path: Path) -> None:
    run = write_run(tmp_path / "r", sizes=(64,), processes=4, alpha=0.05)
    html = write_report(run, tmp_path / "reports").read_text()
    assert "α = 0.05" in html or "α=0.05" in html
    analysis = json.loads((tmp_path / "reports" / "synthetic-run" / "analysis.json").read_text())
    assert analysis["alpha"] == 0.05


def test_matrix_json_type_lists_every_matrix_field() -> None:
    """The manifest's matrix is Matrix.to_json(): its TypedDict must not drift from it."""
    from dataclasses import fields

    from readbench.model.matrix import Matrix

    keys = set(schema.MatrixJSON.__annotations__) - {"processes"}
    assert keys == {f.name for f in fields(Matrix)}
