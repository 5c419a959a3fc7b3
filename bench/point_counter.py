"""How many times a kernel tracepoint or function fires per read() call, counted
independently of readbench.

An independent cross-check of the hook-point atlas's fires-per-read column: its own raw_tp,
fentry and kprobe programs (bench/point_counter.bpf.c) and its own libbpf loader and read
loops (bench/point_counter.c); from readbench only the build cache location and tool lookup.

    sudo python bench/point_counter.py sys_enter cached --size 64 -n 10000
    sudo python bench/point_counter.py mm_filemap_add_to_page_cache uncached --size 4096 -n 200
    sudo python bench/point_counter.py io_uring_submit_req io_uring --size 4096 -n 2000
    sudo python bench/point_counter.py fentry:vfs_read pipe --size 64 -n 2000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import skeleton_build  # noqa: E402  (bench/ is not a package)

WORKLOADS = ("cached", "uncached", "pipe", "readv", "io_uring", "io_uring-fixed", "mmap-fault",
             "splice")  # fmt: skip
PAGE = 4096
CACHED_FILE_BYTES = 4 << 20


def build() -> Path:
    """Compile the counter (BPF object, skeleton, loader) into a cache dir; return the exe."""
    return skeleton_build.build("point_counter", ("-luring",))  # liburing: its own io_uring


def default_file(workload: str, size: int, n: int) -> Path:
    """A data file on the home filesystem (not tmpfs) big enough for the workload."""
    stride = -(-size // PAGE) * PAGE
    need = max(n * stride if workload in ("uncached", "mmap-fault") else size, CACHED_FILE_BYTES)
    path = Path.home() / ".cache" / "readbench" / "point-counter" / f"data-{need}.bin"
    if not path.exists() or path.stat().st_size != need:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        with tmp.open("wb") as f:
            for left in range(need, 0, -(1 << 20)):
                f.write(os.urandom(min(left, 1 << 20)))
            f.flush()
            os.fsync(f.fileno())  # DONTNEED skips dirty pages: uncached reads need clean ones
        tmp.rename(path)
    return path


def count(tracepoint: str, workload: str, path: Path | None, size: int, n: int) -> dict[str, Any]:
    """Run the counter once: `n` operations of `size` bytes; returns its JSON object.

    `path` is the data file (ignored for pipe); None makes a default one."""
    if workload not in WORKLOADS:
        raise ValueError(f"workload must be one of {WORKLOADS}, not {workload!r}")
    if workload == "pipe":
        arg = "-"
    else:
        arg = str(path if path is not None else default_file(workload, size, n))
    p = subprocess.run(
        [str(build()), tracepoint, workload, arg, str(size), str(n)],
        capture_output=True,
        text=True,
        check=False,
    )
    if p.returncode != 0:
        raise RuntimeError(
            f"point_counter {tracepoint} {workload} {size} {n} exited {p.returncode}: "
            f"{p.stderr.strip()}"
        )
    return json.loads(p.stdout)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "tracepoint",
        help="a tracepoint (sys_enter, mm_filemap_get_pages) or fentry:FUNC, kprobe:FUNC",
    )
    ap.add_argument("workload", choices=WORKLOADS)
    ap.add_argument("--file", type=Path, default=None, help="data file (default: made in ~/.cache)")
    ap.add_argument("--size", type=int, default=64, help="bytes per operation")
    ap.add_argument("-n", type=int, default=10_000, help="operations counted")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root (BPF)", file=sys.stderr)
        return 3
    try:
        res = count(args.tracepoint, args.workload, args.file, args.size, args.n)
    except RuntimeError as e:
        print(e, file=sys.stderr)
        return 1
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
