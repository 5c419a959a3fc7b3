"""Data files the read loops read: created once per data directory, verified by size, reused.

They live on a real filesystem (not tmpfs): page-cache eviction and O_DIRECT mean nothing on
shmem. Creation writes to a temporary name and renames, so an interrupted run never leaves a
half-written file that a later run would trust.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from readbench.errors import BadInput
from readbench.model.workloads import DATA_CACHED, DATA_STREAM, NEEDS_DIRECT_IO, NEEDS_EVICTION, get
from readbench.store.cache import cache_home

MiB = 1024 * 1024
CACHED_BYTES = 4 * MiB  # >= 2 × the largest default size
COLD_BYTES = 512 * MiB  # uncached/direct: 131072 distinct pages before an eviction pass
PATTERN_BYTES = MiB
# Filesystems whose file pages live only in memory: POSIX_FADV_DONTNEED cannot drop them and
# O_DIRECT has no device behind it (tmpfs accepts O_DIRECT as a buffered copy since Linux 6.6).
# rootfs is the initramfs root (ramfs or tmpfs). Stacked or network filesystems (overlay, fuse,
# virtiofs, 9p) depend on what is underneath: the C loops prove eviction/bypass with mincore().
NO_PAGECACHE_FS = {"tmpfs", "ramfs", "devtmpfs", "hugetlbfs", "rootfs"}


def default_data_dir() -> Path:
    """READBENCH_DATA_DIR, else the cache's data/ (a guest sets it to its ext4 disk)."""
    env = os.environ.get("READBENCH_DATA_DIR")
    return Path(env) if env else cache_home() / "data"


def llc_bytes() -> int:
    """Largest cache size the kernel reports for CPU 0 (the last-level cache)."""
    best = 0
    for idx in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            text = (idx / "size").read_text().strip()
        except OSError:
            continue
        mult = {"K": 1024, "M": MiB}.get(text[-1:], 1)
        digits = text.rstrip("KM")
        if digits.isdigit():
            best = max(best, int(digits) * mult)
    return best


def stream_bytes() -> int:
    # Several LLCs so a sequential pass never finds its data in the CPU caches.
    return max(256 * MiB, 4 * llc_bytes())


def file_for(data_dir: Path, workload: str) -> tuple[Path | None, int]:
    """(path, size) of the data file a workload reads (its record's `data`); (None, 0) for
    none (pipe)."""
    kind = get(workload).data
    if kind is None:
        return None, 0
    if kind == DATA_CACHED:
        return data_dir / "cached-4MiB.dat", CACHED_BYTES
    if kind == DATA_STREAM:
        n = stream_bytes()
        return data_dir / f"stream-{n // MiB}MiB.dat", n
    return data_dir / f"cold-{COLD_BYTES // MiB}MiB.dat", COLD_BYTES


def fs_type(path: Path) -> str:
    """Filesystem type of the mount holding `path` (from /proc/self/mountinfo)."""
    target = str(path.resolve())
    best, best_type = "", "unknown"
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return best_type
    for line in lines:
        left, _, right = line.partition(" - ")
        parts = left.split()
        if len(parts) < 5 or not right:
            continue
        mnt = parts[4].replace("\\040", " ")
        if (target == mnt or target.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
            best, best_type = mnt, right.split()[0]
    return best_type


def check_workload_fs(data_dir: Path, workloads: Iterable[str]) -> None:
    """BadInput when `data_dir` is on a filesystem where uncached/direct would measure memory
    copies under their name. Decided from the mount table alone, so it can run before the
    directory or any file in it is created."""
    fs = fs_type(data_dir)
    if fs not in NO_PAGECACHE_FS:
        return
    rules = []
    for w in sorted(set(workloads)):
        if w in NEEDS_EVICTION:
            rules.append(
                f"workload {w} needs a filesystem that evicts pages on POSIX_FADV_DONTNEED "
                f"({fs} keeps every page in memory)"
            )
        elif w in NEEDS_DIRECT_IO:
            since = "; it serves O_DIRECT as a page-cache copy since Linux 6.6" * (fs == "tmpfs")
            rules.append(
                f"workload {w} needs a filesystem that does real direct I/O "
                f"({fs} has no device behind it{since})"
            )
    if rules:
        raise BadInput(
            f"--data-dir {data_dir} is {fs}: {'; '.join(rules)}; use a directory on ext4/xfs/btrfs"
        )


def check_data_dir(data_dir: Path) -> Path:
    """Create the directory if needed and prove it is writable; BadInput otherwise.
    Leaves nothing behind when it fails (a directory it created is removed again)."""
    created: list[Path] = []
    p = data_dir
    while not p.exists():
        created.append(p)
        p = p.parent
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=data_dir, prefix=".probe-"):
            pass
    except OSError as e:
        for d in created:
            with contextlib.suppress(OSError):
                d.rmdir()
        raise BadInput(f"--data-dir {data_dir}: cannot write there ({e.strerror or e})") from None
    return data_dir


def direct_io_alignment(data_dir: Path) -> int | None:
    """Alignment O_DIRECT needs in `data_dir` (bytes), or None when O_DIRECT is refused there.

    statx(STATX_DIOALIGN) where the kernel reports it (6.1+), else the device's logical block
    size, else 512. Proven by opening a real file with O_DIRECT and reading one block."""
    from readbench.measure.readloop import dio_alignment

    fd = -1
    path = None
    try:
        with tempfile.NamedTemporaryFile(dir=data_dir, prefix=".dio-", delete=False) as tmp:
            path = Path(tmp.name)
            tmp.write(b"\0" * 65536)
        mem, off = dio_alignment(path)
        align = max(mem, off) or _logical_block_size(path) or 512
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
        import mmap

        buf = mmap.mmap(-1, max(align, 4096))
        os.preadv(fd, [memoryview(buf)[:align]], 0)
        buf.close()
        return align
    except OSError:
        return None
    finally:
        if fd >= 0:
            os.close(fd)
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink()


def _logical_block_size(path: Path) -> int:
    st = os.stat(path)
    dev = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    for cand in (
        Path(f"/sys/dev/block/{dev}/queue/logical_block_size"),
        Path(f"/sys/dev/block/{dev}/../queue/logical_block_size"),
    ):
        with contextlib.suppress(OSError, ValueError):
            return int(cand.read_text())
    return 0


def ensure(data_dir: Path, workload: str) -> Path | None:
    """The data file for `workload`, created once (atomically) if missing or wrong-sized."""
    path, size = file_for(data_dir, workload)
    if path is None:
        return None
    if path.exists() and path.stat().st_size == size:
        return path
    data_dir.mkdir(parents=True, exist_ok=True)  # a fresh machine has no cache yet
    free = shutil.disk_usage(data_dir).free
    if free < size + 64 * MiB:
        raise BadInput(
            f"--data-dir {data_dir}: needs {size // MiB} MiB free for the {workload} data file, "
            f"has {free // MiB} MiB"
        )
    # Random bytes (a repeated 1 MiB block): BPF `inspect` and tests can check real content.
    pattern = os.urandom(PATTERN_BYTES)
    fd, tmpname = tempfile.mkstemp(dir=data_dir, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            left = size
            while left > 0:
                n = min(left, PATTERN_BYTES)
                f.write(pattern[:n])
                left -= n
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmpname, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmpname)
        raise
    return path
