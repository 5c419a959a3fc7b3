"""bench/skeleton_build: a cache entry appears whole or not at all (two guests share the
host's cache and build at once)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import skeleton_build  # bench/ is not a package


def test_the_entry_is_renamed_into_place_only_when_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("READBENCH_BPF_CACHE", str(tmp_path / "bpf"))
    monkeypatch.setattr(skeleton_build, "find_tool", lambda name: name)
    seen: list[bool] = []
    entry: list[Path] = []

    def fake_run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess:
        out = Path(cmd[cmd.index("-o") + 1]) if "-o" in cmd else None
        if out is not None:
            out.write_bytes(b"built")
        # what a concurrent caller would find at the final path while this build runs
        finals = [d for d in (tmp_path / "point-counter").glob("*") if not d.name.startswith(".")]
        seen.append(bool(finals))
        entry[:] = finals
        return subprocess.CompletedProcess(cmd, 0, stdout=b"/* skeleton */", stderr=b"")

    monkeypatch.setattr(skeleton_build.subprocess, "run", fake_run)
    exe = skeleton_build.build("point_counter", ("-luring",))
    assert seen == [False, False, False]  # clang, bpftool, cc: nothing at the final path yet
    assert exe.read_bytes() == b"built" and (exe.parent / "point_counter.skel.h").exists()
    assert [d.name for d in exe.parent.parent.iterdir()] == [exe.parent.name]  # no temp left
    assert skeleton_build.build("point_counter", ("-luring",)) == exe  # reused
