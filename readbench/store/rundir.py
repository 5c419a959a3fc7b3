"""The results store: results/<run-id>/ with manifest.json, suite.json and side files.

Every file is written to a temporary file in the same directory and renamed into place, so a
run killed at any instant leaves either the old or the new version, never half of one. Each
finished (cell, round) is its own pyperf JSON under rounds/, so an interrupted run keeps every
value it measured and --resume only measures what is missing.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import pyperf

from readbench.errors import BadInput
from readbench.model import schema
from readbench.model.matrix import cell_slug


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file in the same directory + rename: readers see old or new, never half.
    Used by every stage that writes results, reports or copy sweeps."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results and reports are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def new_run_id() -> str:
    host = socket.gethostname().split(".")[0] or "host"
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{host}-{secrets.token_hex(2)}"


class RunDir:
    """Paths and read/write helpers of one run directory."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls, out: Path, run_id: str | None = None) -> RunDir:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise BadInput(f"--out {out}: cannot create ({e.strerror or e})") from None
        if not os.access(out, os.W_OK):
            raise BadInput(f"--out {out}: not writable")
        path = out / (run_id or new_run_id())
        path.mkdir()
        return cls(path)

    @classmethod
    def open(cls, ref: str | Path, results_root: Path | None = None) -> RunDir:
        """A run by path, or by id under results_root. BadInput if it is not a run."""
        p = Path(ref)
        if not (p / "manifest.json").exists() and results_root is not None:
            p = results_root / str(ref)
        if not (p / "manifest.json").is_file():
            raise BadInput(f"run {ref}: no manifest.json there (not a readbench run directory)")
        return cls(p)

    # -- manifest ---------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    def read_manifest(self) -> schema.Manifest:
        try:
            m = json.loads(self.manifest_path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise BadInput(f"run {self.path}: manifest.json unreadable: {e}") from None
        return schema.check(m, str(self.manifest_path))

    def write_manifest(self, manifest: schema.Manifest) -> None:
        manifest["schema_version"] = schema.SCHEMA_VERSION
        manifest["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        atomic_write_json(self.manifest_path, manifest)

    # -- per (cell, round) pyperf files ------------------------------------------
    def round_file(self, cell_name: str, round_no: int) -> Path:
        return self.path / "rounds" / cell_slug(cell_name) / f"r{round_no:03d}.json"

    def round_done(self, cell_name: str, round_no: int) -> bool:
        return self.round_file(cell_name, round_no).exists()

    def side_file(self, kind: str, cell_name: str) -> Path:
        return self.path / kind / f"{cell_slug(cell_name)}.json"

    def write_side(self, kind: str, cell_name: str, obj: dict[str, Any]) -> Path:
        p = self.side_file(kind, cell_name)
        atomic_write_json(p, {"cell": cell_name, **obj})
        return p

    @property
    def suite_path(self) -> Path:
        return self.path / "suite.json"

    def build_suite(self, cell_names: list[str]) -> int:
        """Merge every finished round file into suite.json: one benchmark per cell (a paired
        cell: one per arm), one pyperf run per worker process. Returns the number of cells
        with data."""
        benches: dict[str, pyperf.Benchmark] = {}
        cells = 0
        for name in cell_names:
            files = self._round_files(name)
            cells += bool(files)
            for f in files:
                for b in pyperf.BenchmarkSuite.load(str(f)).get_benchmarks():
                    if b.get_name() in benches:
                        benches[b.get_name()].add_runs(b)
                    else:
                        benches[b.get_name()] = b
        if not benches:
            with contextlib.suppress(FileNotFoundError):
                self.suite_path.unlink()
            return 0
        # pyperf dumps into a file object as well: same bytes, written like every other file
        buf = io.StringIO()
        pyperf.BenchmarkSuite(list(benches.values())).dump(buf)
        atomic_write_text(self.suite_path, buf.getvalue())
        return cells

    def _round_files(self, cell_name: str) -> list[Path]:
        return sorted((self.path / "rounds" / cell_slug(cell_name)).glob("r*.json"))

    def loops_of(self, cell_name: str) -> int | None:
        """Loop count calibrated in the cell's first round (reused by later rounds)."""
        files = self._round_files(cell_name)
        if not files:
            return None
        suite = pyperf.BenchmarkSuite.load(str(files[0]))
        b = suite.get_benchmark(cell_name)
        loops = b.get_metadata().get("loops")
        if loops is None:
            runs = [r for r in b.get_runs() if r.values]
            loops = runs[0].get_metadata().get("loops") if runs else None
        return int(loops) if loops else None
