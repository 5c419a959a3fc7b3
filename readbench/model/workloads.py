"""The workload registry (design §2, §3): one record per workload, and every other place
(the C ids in workloads/readloop.h, the hooks' tracepoints and path functions, the data
files, the atlas, the headline, calibration, the matrix presets) reads it from here.
tests/unit/test_c_abi.py keeps the records and `enum rb_workload` in step. Adding a
workload is one record below plus its loop in workloads/readloop.c. Pure code."""

from __future__ import annotations

from dataclasses import dataclass

KiB = 1024
MiB = 1024 * KiB
PAGE = 4096

# x86-64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl) of the syscalls the
# workloads issue: hooks filter on them, the atlas counts only them on raw sys_enter/exit.
SYSCALL_NR = {
    "read": 0,
    "pread64": 17,
    "splice": 275,
    "preadv": 295,
    "preadv2": 327,
    "io_uring_enter": 426,
}

# Data files (readbench.measure.datafiles makes them): a page-cache-resident 4 MiB file, a
# stream file larger than 4 × the LLC, a 512 MiB file that is evicted before each batch.
DATA_CACHED, DATA_STREAM, DATA_COLD = "cached", "stream", "cold"


@dataclass(frozen=True)
class Step:
    """A kernel function one op passes before the filesystem's read function, with the point
    that calls it (a silent row is explained from its caller's count). Its layer is the
    read-path taxonomy's (readbench.model.layers), by its name."""

    target: str
    caller: str
    note: str = ""
    caller_counted_by: str = ""  # the row counting the caller when it is no row of its own


@dataclass(frozen=True)
class Workload:
    name: str
    c_id: int  # enum rb_workload in workloads/readloop.h
    op: str  # what one operation is
    syscalls: tuple[str, ...]  # the syscalls one op issues (its read); () when none
    kind: str  # how the program reads (the coverage matrix's column)
    phrase: str  # the headline's noun phrase: "a 4 KiB <phrase>"
    data: str | None  # DATA_*: which data file; None: no file (a pipe)
    # hookspec targets a read of this workload passes (fentry/kprobe hooks); others never fire
    path: tuple[str, ...] = ()
    # the atlas's function rows before the fs read function, in call order
    entry: tuple[Step, ...] = ()
    fs_op: str | None = "read_iter"  # which f_op of the file the op calls; None: none
    fs_caller: str = "vfs_read"  # the function that calls it
    page_cache: bool = True  # reads the page cache (filemap_read or its relatives)
    copy: str | None = "user"  # user: copy_to_user; kernel: memcpy into pinned pages; None
    atlas_reads: int = 2000  # operations the atlas counts fires over
    calibrate: bool = True  # op time stable between batches (readbench calibrate can use it)
    needs_eviction: bool = False  # its data directory must evict pages (DONTNEED works)
    needs_direct_io: bool = False  # its data directory must do real O_DIRECT
    needs_io_uring: bool = False  # the kernel must let this process create an io_uring
    buffer_arg: bool = True  # the syscall's 2nd argument is the buffer (an inspect body hashes it)
    fd_arg: bool = True  # the syscall's 1st argument is the fd of the file read (not a ring's)
    user_buffer: bool = True  # reads into a user buffer (a buffer offset means something)
    page_multiple: bool = False  # size must be a multiple of the page size
    min_size: int = 1
    max_size: int | None = None  # beyond the matrix's own maximum
    max_size_why: str = ""
    # sizes that show this workload's shape (the default matrix's block for it)
    shape_sizes: tuple[int, ...] = (64, 4 * KiB, 64 * KiB)

    @property
    def syscall(self) -> str | None:
        """The syscall that reads (hooks on the syscall boundary filter on it)."""
        return self.syscalls[0] if self.syscalls else None

    def cell_rule(self, size: int, buf_offset: int) -> str | None:
        """Why a cell of this workload cannot be measured (the rule it breaks), or None."""
        if size < self.min_size:
            return f"workload {self.name} needs size >= {self.min_size} ({self.op})"
        if self.max_size is not None and size > self.max_size:
            return f"workload {self.name} needs size <= {self.max_size} ({self.max_size_why})"
        if self.page_multiple and size % PAGE:
            return (f"workload {self.name} touches whole pages: size {size} must be a "
                    f"multiple of {PAGE} bytes")  # fmt: skip
        if buf_offset and not self.user_buffer:
            return (f"workload {self.name} reads into no user buffer ({self.op}): buffer "
                    "offset must be 0")  # fmt: skip
        if buf_offset and self.needs_direct_io:
            return "O_DIRECT needs an aligned buffer (buffer offset 0)"
        return None


_SYS = Step("security_file_permission", "rw_verify_area",
            note="the LSM hook point; BPF LSM attaches as lsm/file_permission")  # fmt: skip


def _vfs(sysc: str, first: str, via: str) -> tuple[Step, ...]:
    """__x64_sys_<sysc> -> first -> via -> rw_verify_area -> security_file_permission."""
    return (
        Step(first, f"__x64_sys_{sysc}", caller_counted_by="sys_enter",
             note="fd -> struct file (fdget) and the position"),
        Step(via, first),
        Step("rw_verify_area", via),
        _SYS,
    )  # fmt: skip


_COPY = ("copy_page_to_iter", "_copy_to_iter", "rep_movs_alternative",
         "copy_user_enhanced_fast_string", "copy_user_generic_string",
         "copy_user_generic_unrolled")  # fmt: skip
_BUFFERED = ("filemap_read", *_COPY)
_RING = (
    Step("io_submit_sqes", "__x64_sys_io_uring_enter", caller_counted_by="sys_enter",
         note="takes the SQEs from the submission ring"),
    Step("io_issue_sqe", "io_submit_sqes",
         note="calls the opcode's handler (through a table: an indirect call)"),
)  # fmt: skip

REGISTRY: tuple[Workload, ...] = (
    Workload(
        "cached", 0, "pread(fd, buf, size, 0) of a page-cache-resident file", ("pread64",),
        "pread", "cached pread", DATA_CACHED, ("vfs_read", *_BUFFERED),
        _vfs("pread64", "ksys_pread64", "vfs_read"),
    ),
    Workload(
        "cached-stream", 1, "sequential read() through a file larger than 4 × the LLC",
        ("read",), "read", "streaming cached read", DATA_STREAM, ("vfs_read", *_BUFFERED),
        _vfs("read", "ksys_read", "vfs_read"),
        shape_sizes=(64, KiB, 4 * KiB, 64 * KiB, 256 * KiB, MiB),
    ),
    Workload(
        "uncached", 2, "pread of a page evicted before the batch (readahead off)", ("pread64",),
        "pread of evicted pages", "uncached pread", DATA_COLD, ("vfs_read", *_BUFFERED),
        _vfs("pread64", "ksys_pread64", "vfs_read"), atlas_reads=200, calibrate=False,
        needs_eviction=True, shape_sizes=(4 * KiB, 64 * KiB, MiB),
    ),
    Workload(
        "direct", 3, "O_DIRECT pread, aligned to the device's DIO alignment", ("pread64",),
        "O_DIRECT pread", "O_DIRECT pread", DATA_COLD, ("vfs_read",),
        _vfs("pread64", "ksys_pread64", "vfs_read"), page_cache=False, copy=None,
        atlas_reads=200, calibrate=False, needs_direct_io=True,
        shape_sizes=(4 * KiB, 64 * KiB, MiB),
    ),
    Workload(
        "pipe", 4, "size bytes received from a pipe a writer process keeps full (read() "
        "until they arrived)", ("read",), "pipe read", "pipe read", None,
        ("vfs_read", "pipe_read", "anon_pipe_read", *_COPY),
        _vfs("read", "ksys_read", "vfs_read"), page_cache=False,
        shape_sizes=(1, 64, 4 * KiB, 64 * KiB),
    ),
    Workload(
        "readv", 5, "preadv(fd, iov[2], 2, 0) of a resident file: two iovecs splitting size",
        ("preadv",), "readv", "cached preadv (2 iovecs)", DATA_CACHED, _BUFFERED,
        _vfs("preadv", "do_preadv", "vfs_readv"), fs_caller="vfs_readv", buffer_arg=False,
        min_size=2,
    ),
    Workload(
        "preadv2-nowait", 6, "preadv2(fd, iov[1], 1, 0, RWF_NOWAIT) of a resident file; an "
        "EAGAIN fails the batch, counted", ("preadv2",), "preadv2 RWF_NOWAIT",
        "cached preadv2 RWF_NOWAIT", DATA_CACHED, _BUFFERED,
        _vfs("preadv2", "do_preadv", "vfs_readv"), fs_caller="vfs_readv", buffer_arg=False,
    ),
    Workload(
        "io_uring", 7, "one IORING_OP_READ SQE at offset 0 of a resident file, submitted and "
        "waited for with one io_uring_enter", ("io_uring_enter",), "io_uring read",
        "cached io_uring read", DATA_CACHED, _BUFFERED,
        (*_RING, Step("io_read", "io_issue_sqe"), Step("rw_verify_area", "io_read"), _SYS),
        fs_caller="io_read", buffer_arg=False, fd_arg=False, needs_io_uring=True,
    ),
    Workload(
        "io_uring-fixed", 8, "one IORING_OP_READ_FIXED SQE into a registered buffer, submitted "
        "and waited for with one io_uring_enter", ("io_uring_enter",),
        "io_uring read (registered buffer)", "cached io_uring fixed-buffer read", DATA_CACHED,
        ("filemap_read", "copy_page_to_iter", "_copy_to_iter"),
        (*_RING, Step("io_read_fixed", "io_issue_sqe", note="6.15+; io_read before"),
         Step("io_read", "io_issue_sqe"), Step("rw_verify_area", "io_read"), _SYS),
        fs_caller="io_read", copy="kernel", buffer_arg=False, fd_arg=False,
        needs_io_uring=True,
    ),
    Workload(
        "mmap-cached", 9, "one byte loaded from each page of size bytes of a mapping whose "
        "pages are resident and mapped (no kernel entry)", (), "mmap (mapped pages)",
        "mmap read of mapped pages", DATA_CACHED, (), (), fs_op=None, page_cache=False,
        copy=None, buffer_arg=False, user_buffer=False, page_multiple=True,
        shape_sizes=(4 * KiB, 64 * KiB, MiB),
    ),
    Workload(
        "mmap-fault", 10, "first touch of each page of size bytes of a mapping of evicted "
        "pages (one page fault per page, which reads it: MADV_RANDOM, no readahead)", (),
        "mmap page fault", "mmap page-fault read", DATA_COLD, (),
        (Step("handle_mm_fault", "exc_page_fault",
              note="every user page fault, file-backed or anonymous"),
         Step("filemap_fault", "handle_mm_fault",
              note="the file's vm_ops->fault (through __do_fault)")),
        fs_op=None, copy=None, atlas_reads=200, calibrate=False, needs_eviction=True,
        buffer_arg=False, user_buffer=False, page_multiple=True,
        shape_sizes=(4 * KiB, 64 * KiB, MiB),
    ),
    Workload(
        "splice", 11, "splice(fd, &0, pipe, size) of a resident file into a pipe (no copy to "
        "user); the pipe is drained between timed segments", ("splice",), "splice to a pipe",
        "cached splice to a pipe", DATA_CACHED, (),
        (Step("do_splice", "__x64_sys_splice", caller_counted_by="sys_enter"),
         Step("vfs_splice_read", "do_splice", note="do_splice_to before 6.5"),
         Step("rw_verify_area", "vfs_splice_read"), _SYS),
        fs_op="splice_read", fs_caller="vfs_splice_read", copy=None, buffer_arg=False,
        user_buffer=False, max_size=MiB,
        max_size_why="one op fills a pipe, which holds at most fs.pipe-max-size, 1 MiB by default",
    ),
)  # fmt: skip

BY_NAME: dict[str, Workload] = {w.name: w for w in REGISTRY}

# Views the rest of the code reads (kept as names: many modules import them).
WORKLOADS: dict[str, int] = {w.name: w.c_id for w in REGISTRY}
SYSCALL_OF: dict[str, str] = {w.name: w.syscall for w in REGISTRY if w.syscall}
NEEDS_EVICTION = tuple(w.name for w in REGISTRY if w.needs_eviction)
NEEDS_DIRECT_IO = tuple(w.name for w in REGISTRY if w.needs_direct_io)


def get(name: str) -> Workload:
    """The record of workload `name`; KeyError for an unknown one (callers validate first)."""
    return BY_NAME[name]


def c_enum_name(name: str) -> str:
    """RB_<NAME> in readloop.h: upper case, '-' as '_'."""
    return "RB_" + name.upper().replace("-", "_")
