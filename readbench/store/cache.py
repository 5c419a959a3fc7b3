"""Where readbench keeps what it can rebuild: data files, compiled BPF objects, guest
kernels and disks. One root, `$XDG_CACHE_HOME/readbench` (default ~/.cache/readbench); each
user of it takes a subdirectory. A guest boots with the host's home read-only, so the guest
launcher points the pieces it needs elsewhere through the environment (READBENCH_DATA_DIR,
READBENCH_BPF_CACHE)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_home() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "readbench"
