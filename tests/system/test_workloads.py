"""Each workload does what it claims in the kernel, observed from outside the timed loop."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from readbench.errors import MeasurementError
from readbench.measure import datafiles
from readbench.measure.readloop import ReadLoop, dio_alignment, resident_pages

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def small_file(data_dir: Path) -> Path:
    """8 MiB of random bytes on a real filesystem."""
    p = data_dir / "wl-test-8MiB.dat"
    if not p.exists() or p.stat().st_size != 8 * MiB:
        # A unique temp name: parallel test runs may share the data dir.
        tmp = p.with_name(f".{p.name}.{os.getpid()}")
        with open(tmp, "wb") as f:
            f.write(os.urandom(8 * MiB))
            os.fsync(f.fileno())  # dirty pages cannot be evicted: uncached needs them clean
        os.replace(tmp, p)
    return p


def test_cached_reads_file_start(small_file: Path) -> None:
    with ReadLoop("cached", 100, small_file) as loop:
        r = loop.run(1000)
        assert (r.ops, r.syscalls, r.bytes) == (1000, 1000, 100_000)
        assert r.ns > 0
        assert loop.buffer() == small_file.read_bytes()[:100]
    # Warm-up made the bytes resident: the loop measures the page cache, not the disk.
    assert resident_pages(small_file)[0] >= 1


def test_buffer_offset_misaligns_destination(small_file: Path) -> None:
    with ReadLoop("cached", 64, small_file, buf_offset=7) as loop:
        assert loop.buffer_address() % 64 == 7
        loop.run(10)
        assert loop.buffer() == small_file.read_bytes()[:64]


def test_stream_advances_and_wraps(small_file: Path) -> None:
    size = 3 * MiB  # 8 MiB file: ops at 0, 3 MiB, then wrap (6+3 > 8) back to 0
    data = small_file.read_bytes()
    with ReadLoop("cached-stream", size, small_file) as loop:
        loop.run(1)
        assert loop.buffer() == data[:size]
        loop.run(1)
        assert loop.buffer() == data[size : 2 * size]
        loop.run(1)
        assert loop.buffer() == data[:size]


def test_uncached_evicts_before_each_batch(small_file: Path) -> None:
    """mincore: after a batch of n single-page reads, exactly the n pages read are resident —
    the eviction before the batch really dropped the rest, and readahead really is off."""
    with ReadLoop("uncached", 64, small_file) as loop:
        for n in (10, 37):
            r = loop.run(n)
            assert r.evictions == 1 and r.ops == n
            resident, total = resident_pages(small_file)
            assert total == 8 * MiB // 4096
            assert resident == n, f"{resident} pages resident after {n} uncached reads"


def test_uncached_batches_longer_than_file_reevict(small_file: Path) -> None:
    pages = 8 * MiB // 4096
    with ReadLoop("uncached", 4096, small_file) as loop:
        r = loop.run(pages + 5)
        assert r.ops == pages + 5
        assert r.evictions == 2  # one untimed eviction pause mid-batch, never a cached re-read


def test_direct_bypasses_page_cache(small_file: Path, data_dir: Path) -> None:
    align = datafiles.direct_io_alignment(data_dir)
    assert align, "the test data dir must support O_DIRECT"
    expected = small_file.read_bytes()[199 * 4096 : 200 * 4096]
    fd = os.open(small_file, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
    with ReadLoop("direct", 4096, small_file, io_align=align) as loop:
        loop.run(200)
        # O_DIRECT DMAs into the user buffer: nothing it read entered the page cache.
        assert resident_pages(small_file)[0] == 0
        assert loop.buffer() == expected


def test_direct_misaligned_size_fails_loudly(small_file: Path, data_dir: Path) -> None:
    align = datafiles.direct_io_alignment(data_dir)
    assert align
    with (
        ReadLoop("direct", align + 1, small_file, io_align=align) as loop,
        pytest.raises(
            MeasurementError, match=r"workload direct: read #0 .* failed: Invalid argument"
        ),
    ):
        loop.run(1)


def test_dio_alignment_reported(small_file: Path) -> None:
    mem, off = dio_alignment(small_file)
    assert mem >= 0 and off >= 0  # 0 on kernels/filesystems without STATX_DIOALIGN


def test_pipe_really_reads_writer_bytes() -> None:
    with ReadLoop("pipe", 4096) as loop:
        r = loop.run(2000)
        assert r.ops == 2000 and r.bytes == 2000 * 4096
        assert r.syscalls >= r.ops  # top-up reads are counted, never hidden
        assert loop.buffer() == b"\x5a" * 4096


def test_pipe_large_read_completes() -> None:
    with ReadLoop("pipe", 3 * MiB) as loop:  # larger than the pipe: needs several reads
        r = loop.run(3)
        assert r.bytes == 9 * MiB and r.syscalls > 3


def test_short_file_rejected(tmp_path: Path) -> None:
    p = tmp_path / "tiny"
    p.write_bytes(b"x" * 10)
    with pytest.raises(MeasurementError, match="fewer than size 64"):
        ReadLoop("cached", 64, p)


def test_missing_file_error_names_it(tmp_path: Path) -> None:
    with pytest.raises(MeasurementError, match=r"open\(.*nope.*No such file"):
        ReadLoop("cached", 64, tmp_path / "nope")


def _children() -> set[int]:
    me = os.getpid()
    return {int(x) for x in Path(f"/proc/{me}/task/{me}/children").read_text().split()}


def test_pipe_reader_stays_single_threaded() -> None:
    """The writer is a child process: a second thread in the reader would make every read's
    fd lookup take a reference (fdget slow path), a cost no single-threaded reader pays."""
    threads_before = len(os.listdir("/proc/self/task"))
    before = _children()
    with ReadLoop("pipe", 64) as loop:
        loop.run(100)
        assert len(os.listdir("/proc/self/task")) == threads_before
        new = _children() - before
        assert len(new) == 1
        writer = new.pop()
    # Closing the loop reaps the writer: no stray process is left behind.
    assert not Path(f"/proc/{writer}").exists()
