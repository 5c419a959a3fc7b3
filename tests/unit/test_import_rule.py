"""The import rules of the layout (design §1, docs/architecture.md):

- one order of stages, `model -> store -> kernel -> bpf -> copy -> measure -> guest ->
  analysis -> render -> cli`: a module imports only from its own stage and those to its left;
- the portable stages (analysis/, render/, store/, model/) never import measure/, bpf/, copy/
  or compiled code, so a report can be rebuilt from results/ alone, on another machine,
  without root. Checked statically over every module, and for real: `readbench report` and
  `readbench compare` run with every compiled readbench module, measure/ and bpf/ refused."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.synthetic_runs import write_run

PKG = Path(__file__).resolve().parents[2] / "readbench"
ORDER = ("model", "store", "kernel", "bpf", "copy", "measure", "guest", "analysis", "render",
         "cli")  # fmt: skip
PORTABLE = ("analysis", "render", "store", "model")
FORBIDDEN = ("readbench.measure", "readbench.bpf", "readbench.copy")


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
            names += [f"{node.module}.{a.name}" for a in node.names]
    return names


def _modules(path: Path) -> list[str]:
    """The readbench modules a file imports (`import M`, `from M import …`, and
    `from P import m` where m is a module of P), once each, deepest name kept."""
    out: dict[str, None] = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(dict.fromkeys(a.name for a in node.names))
        elif isinstance(node, ast.ImportFrom) and node.module:
            subs = [f"{node.module}.{a.name}" for a in node.names]
            subs = [m for m in subs if _file_of(m, path) is not None]
            out.update(dict.fromkeys(subs or [node.module]))
    return list(out)


def _file_of(module: str, near: Path) -> Path | None:
    """The source file of `module`, looked up in the package tree `near` belongs to."""
    top = next(p for p in near.parents if p.name == "readbench")
    base = top.parent.joinpath(*module.split("."))
    for f in (base.with_suffix(".py"), base / "__init__.py"):
        if f.is_file():
            return f
    return None


def upward_imports(pkg: Path = PKG) -> list[str]:
    """Every import of a stage to the right of the importing module's, as
    'FILE imports FILE (MODULE): STAGE is right of STAGE in the order …'."""
    rank = {stage: i for i, stage in enumerate(ORDER)}
    bad = []
    for f in sorted(pkg.rglob("*.py")):
        parts = f.relative_to(pkg).parts
        if len(parts) < 2 or parts[0] not in rank:
            continue  # readbench/__init__.py, errors.py, _cffi_build.py: below every stage
        for name in _modules(f):
            bits = name.split(".")
            if bits[0] == "readbench" and len(bits) > 1 and rank.get(bits[1], -1) > rank[parts[0]]:
                target = _file_of(name, f)
                where = f"{target.relative_to(pkg.parent)} ({name})" if target else name
                bad.append(
                    f"{f.relative_to(pkg.parent)} imports {where}: {bits[1]} is right of "
                    f"{parts[0]} in the order {' -> '.join(ORDER)}"
                )
    return bad


def test_every_stage_imports_only_the_stages_to_its_left() -> None:
    bad = upward_imports()
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_every_stage_is_in_the_order() -> None:
    stages = {d.name for d in PKG.iterdir() if d.is_dir() and (d / "__init__.py").exists()}
    assert stages == set(ORDER), stages ^ set(ORDER)


def test_the_order_test_names_both_files_of_an_upward_import(tmp_path: Path) -> None:
    """A deliberately added upward import (measure importing render) fails the rule, naming
    the importing file and the module it imports."""
    pkg = tmp_path / "readbench"
    for stage in ORDER:
        (pkg / stage).mkdir(parents=True)
        (pkg / stage / "__init__.py").write_text("")
    (pkg / "measure" / "runner.py").write_text("from readbench.render.terminal import console\n")
    (pkg / "render" / "terminal.py").write_text("console = None\n")
    (pkg / "model" / "points.py").write_text("from readbench.render import terminal\n")
    (pkg / "render" / "report.py").write_text("from readbench.analysis import stats\n")
    tail = " is right of {} in the order " + " -> ".join(ORDER)
    assert upward_imports(pkg) == [
        "readbench/measure/runner.py imports readbench/render/terminal.py "
        "(readbench.render.terminal): render" + tail.format("measure"),
        "readbench/model/points.py imports readbench/render/terminal.py "
        "(readbench.render.terminal): render" + tail.format("model"),
    ]


@pytest.mark.parametrize("stage", PORTABLE)
def test_portable_stages_import_nothing_that_measures(stage: str) -> None:
    bad = [
        f"{f.relative_to(PKG.parent)}: {name}"
        for f in sorted((PKG / stage).rglob("*.py"))
        for name in _imports(f)
        if name.startswith(FORBIDDEN) or name.split(".")[-1].startswith("_readloop")
    ]
    assert not bad, "portable stage imports a measuring one:\n" + "\n".join(bad)


# Refuses measure/, bpf/, and any readbench extension module, as on a machine where the
# C loops were never built and BPF cannot load.
_BLOCKER = """
import importlib.abc, importlib.machinery, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.startswith(("readbench.measure", "readbench.bpf")):
            raise ImportError(f"refused by test: {name}")
        if name.startswith("readbench."):
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            if spec and spec.origin and spec.origin.endswith(".so"):
                raise ImportError(f"refused by test: compiled {name}")
        return None
sys.meta_path.insert(0, Refuse())
from readbench.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def _readbench_refusing(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _BLOCKER, *args], capture_output=True, text=True, check=False
    )


def test_report_renders_without_compiled_code_and_states_the_runs_alpha(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", sizes=(64, 4096), processes=4, alpha=0.05)
    r = _readbench_refusing("report", str(run), "--out", str(tmp_path / "reports"))
    assert r.returncode == 0, r.stderr
    html = Path(r.stdout.strip().splitlines()[-1]).read_text()
    assert "α = 0.05" in html
    assert "α=0.05" in r.stderr  # the terminal summary


def test_compare_runs_without_compiled_code(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", run_id="a", sizes=(64,), processes=4)
    b = write_run(tmp_path / "b", run_id="b", sizes=(64,), processes=4, seed=1)
    r = _readbench_refusing("compare", str(a), str(b), "--out", str(tmp_path / "reports"))
    assert r.returncode == 0, r.stderr


def test_the_blocker_really_blocks(tmp_path: Path) -> None:
    """The refusing interpreter cannot run a measurement (else the tests above prove nothing)."""
    r = _readbench_refusing("one", "--workload", "cached", "--size", "64")
    assert r.returncode != 0 and "refused by test" in r.stderr
