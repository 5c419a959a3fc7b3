"""Every repository path a comment, docstring or doc names exists: text that names a moved or
deleted file misleads the next reader (a header once named a loader that had moved).
A path may be named from the tree's top or from inside the package (bpf/abi.py); the shared
references outside the tree are named as ../shared/docs/…, which this leaves alone."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOP = ("readbench", "tests", "bpf", "workloads", "bench", "scripts", "docs")
# a path: one of the top folders, then name/… ending in a file extension
TOPS = "|".join(TOP)
PATH = re.compile(rf"(?<![\w./~<-])((?:{TOPS})/[\w./-]*\.(?:py|c|h|md|toml|j2|sh))\b")
BASES = (ROOT, ROOT / "readbench")
TEXT = (".py", ".c", ".h", ".md", ".sh", ".toml", ".ini", ".in", ".j2")


def _tracked() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout  # fmt: skip
    return [ROOT / p for p in out.split() if p.endswith(TEXT) and (ROOT / p).is_file()]


def test_every_named_path_exists() -> None:
    files = _tracked()
    assert len(files) > 100, "git ls-files found the tree"
    missing = []
    for f in files:
        for n, line in enumerate(f.read_text(errors="replace").splitlines(), 1):
            for m in PATH.finditer(line):
                p = m.group(1).rstrip(".")
                if not any((base / p).exists() for base in BASES):
                    missing.append(f"{f.relative_to(ROOT)}:{n}: {p}")
    assert missing == [], "paths named that do not exist:\n" + "\n".join(missing)
