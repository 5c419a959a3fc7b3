"""ctypes over the system libbpf (libbpf.so.1, >= 1.0): open, load, attach, maps, stats.

Only what readbench needs, with the libbpf 1.x error convention made explicit:
pointer-returning calls give NULL and set errno, int-returning calls give -errno.
Every failure becomes a LibbpfError carrying the errno and the last lines libbpf
printed (the verifier log, "failed to create kprobe ...", etc.), because the
kernel's refusal reason is what a user needs to see.

Links are plain file descriptors owned by this process; nothing is ever pinned, so
when the process dies (even by SIGKILL) the kernel detaches everything.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno as errno_mod
import os
import threading
from collections import deque
from collections.abc import Iterator

_lib: ctypes.CDLL | None = None
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]
_libc.vsnprintf.restype = ctypes.c_int

BPF_STATS_RUN_TIME = 0
BPF_OBJ_NAME_LEN = 16

# libbpf messages (seq, level, line), newest last; a failure quotes its warnings.
LIBBPF_WARN = 0
_log: deque[tuple[int, int, str]] = deque(maxlen=2000)
_log_seq = 0
_log_lock = threading.Lock()

_PRINT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)


@_PRINT_FN
def _print_cb(level: int, fmt: bytes, ap: int) -> int:
    # x86-64 SysV: a va_list parameter is passed as a pointer, so libc's vsnprintf
    # can format it for us.
    buf = ctypes.create_string_buffer(4096)
    n = _libc.vsnprintf(buf, len(buf), fmt, ap)
    text = buf.value.decode(errors="replace")
    global _log_seq
    with _log_lock:
        for line in text.rstrip("\n").splitlines():
            _log_seq += 1
            _log.append((_log_seq, level, line))
    return max(n, 0)


class LibbpfError(OSError):
    """A libbpf call failed: `errno`, what was being done, libbpf's own log lines."""

    def __init__(self, err: int, what: str, log: list[str] | None = None) -> None:
        self.log = log or []
        name = errno_mod.errorcode.get(err, str(err))
        super().__init__(err, f"{what}: errno {err} {name} ({os.strerror(err)})")
        self.what = what
        self.errname = name


class bpf_prog_info(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("tag", ctypes.c_uint8 * 8),
        ("jited_prog_len", ctypes.c_uint32),
        ("xlated_prog_len", ctypes.c_uint32),
        ("jited_prog_insns", ctypes.c_uint64),
        ("xlated_prog_insns", ctypes.c_uint64),
        ("load_time", ctypes.c_uint64),
        ("created_by_uid", ctypes.c_uint32),
        ("nr_map_ids", ctypes.c_uint32),
        ("map_ids", ctypes.c_uint64),
        ("name", ctypes.c_char * BPF_OBJ_NAME_LEN),
        ("ifindex", ctypes.c_uint32),
        ("gpl_compatible", ctypes.c_uint32),
        ("netns_dev", ctypes.c_uint64),
        ("netns_ino", ctypes.c_uint64),
        ("nr_jited_ksyms", ctypes.c_uint32),
        ("nr_jited_func_lens", ctypes.c_uint32),
        ("jited_ksyms", ctypes.c_uint64),
        ("jited_func_lens", ctypes.c_uint64),
        ("btf_id", ctypes.c_uint32),
        ("func_info_rec_size", ctypes.c_uint32),
        ("func_info", ctypes.c_uint64),
        ("nr_func_info", ctypes.c_uint32),
        ("nr_line_info", ctypes.c_uint32),
        ("line_info", ctypes.c_uint64),
        ("jited_line_info", ctypes.c_uint64),
        ("nr_jited_line_info", ctypes.c_uint32),
        ("line_info_rec_size", ctypes.c_uint32),
        ("jited_line_info_rec_size", ctypes.c_uint32),
        ("nr_prog_tags", ctypes.c_uint32),
        ("prog_tags", ctypes.c_uint64),
        ("run_time_ns", ctypes.c_uint64),
        ("run_cnt", ctypes.c_uint64),
        ("recursion_misses", ctypes.c_uint64),
        ("verified_insns", ctypes.c_uint32),
        ("attach_btf_obj_id", ctypes.c_uint32),
        ("attach_btf_id", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
    ]


PROG_TYPES = {
    2: "kprobe",
    5: "tracepoint",
    17: "raw_tracepoint",
    26: "tracing",
}

_P = ctypes.c_void_p
_SIGS: dict[str, tuple[object, list[object]]] = {
    "bpf_object__open_file": (_P, [ctypes.c_char_p, _P]),
    "bpf_object__load": (ctypes.c_int, [_P]),
    "bpf_object__close": (None, [_P]),
    "bpf_object__find_program_by_name": (_P, [_P, ctypes.c_char_p]),
    "bpf_object__find_map_by_name": (_P, [_P, ctypes.c_char_p]),
    "bpf_object__next_program": (_P, [_P, _P]),
    "bpf_program__name": (ctypes.c_char_p, [_P]),
    "bpf_program__set_autoload": (ctypes.c_int, [_P, ctypes.c_bool]),
    "bpf_program__set_attach_target": (ctypes.c_int, [_P, ctypes.c_int, ctypes.c_char_p]),
    "bpf_program__fd": (ctypes.c_int, [_P]),
    "bpf_program__attach_raw_tracepoint": (_P, [_P, ctypes.c_char_p]),
    "bpf_program__attach_tracepoint": (_P, [_P, ctypes.c_char_p, ctypes.c_char_p]),
    "bpf_program__attach_trace": (_P, [_P]),
    "bpf_program__attach_kprobe": (_P, [_P, ctypes.c_bool, ctypes.c_char_p]),
    "bpf_link__destroy": (ctypes.c_int, [_P]),
    "bpf_link__fd": (ctypes.c_int, [_P]),
    "bpf_map__fd": (ctypes.c_int, [_P]),
    "bpf_map__initial_value": (_P, [_P, ctypes.POINTER(ctypes.c_size_t)]),
    "bpf_map__value_size": (ctypes.c_uint32, [_P]),
    "bpf_map__key_size": (ctypes.c_uint32, [_P]),
    "bpf_map__max_entries": (ctypes.c_uint32, [_P]),
    "bpf_map_lookup_elem": (ctypes.c_int, [ctypes.c_int, _P, _P]),
    "bpf_map_get_next_key": (ctypes.c_int, [ctypes.c_int, _P, _P]),
    "bpf_enable_stats": (ctypes.c_int, [ctypes.c_int]),
    "bpf_obj_get_info_by_fd": (ctypes.c_int, [ctypes.c_int, _P, ctypes.POINTER(ctypes.c_uint32)]),
    "libbpf_num_possible_cpus": (ctypes.c_int, []),
    "libbpf_set_print": (_P, [_PRINT_FN]),
}


def lib() -> ctypes.CDLL:
    """The loaded libbpf.so.1 (MissingCapability-free: hooks.py turns OSError into one)."""
    global _lib
    if _lib is None:
        name = os.environ.get("READBENCH_LIBBPF", "libbpf.so.1")
        handle = ctypes.CDLL(name, use_errno=True)
        for fn, (res, args) in _SIGS.items():
            f = getattr(handle, fn)
            f.restype = res
            f.argtypes = args
        handle.libbpf_set_print(_print_cb)
        _lib = handle
    return _lib


def log_mark() -> int:
    with _log_lock:
        return _log_seq


def _log_since(mark: int, max_level: int = LIBBPF_WARN) -> list[str]:
    """libbpf lines printed after `mark` at `max_level` or more severe (WARN by default)."""
    with _log_lock:
        return [line for seq, lvl, line in _log if seq > mark and lvl <= max_level]


def _check_ptr(p: int | None, what: str, mark: int) -> int:
    if not p:
        err = ctypes.get_errno() or errno_mod.EINVAL
        raise LibbpfError(err, what, _log_since(mark))
    return p


def _check_int(rc: int, what: str, mark: int) -> int:
    if rc < 0:
        raise LibbpfError(-rc, what, _log_since(mark))
    return rc


class Map:
    def __init__(self, ptr: int, name: str) -> None:
        self._ptr = ptr
        self.name = name
        L = lib()
        self.fd = L.bpf_map__fd(ptr)
        self.key_size = L.bpf_map__key_size(ptr)
        self.value_size = L.bpf_map__value_size(ptr)
        self.max_entries = L.bpf_map__max_entries(ptr)

    def lookup(self, key: bytes, value_len: int) -> bytes | None:
        k = ctypes.create_string_buffer(key, len(key))
        v = ctypes.create_string_buffer(value_len)
        rc = lib().bpf_map_lookup_elem(self.fd, k, v)
        if rc < 0:
            if -rc == errno_mod.ENOENT:
                return None
            raise LibbpfError(-rc, f"lookup in map {self.name}")
        return v.raw

    def keys(self) -> Iterator[bytes]:
        cur = None
        nxt = ctypes.create_string_buffer(self.key_size)
        while True:
            rc = lib().bpf_map_get_next_key(self.fd, cur, nxt)
            if rc < 0:
                if -rc == errno_mod.ENOENT:
                    return
                raise LibbpfError(-rc, f"iterating map {self.name}")
            key = nxt.raw
            yield key
            cur = ctypes.create_string_buffer(key, self.key_size)


class Link:
    def __init__(self, ptr: int, what: str) -> None:
        self._ptr: int | None = ptr
        self.what = what

    def destroy(self) -> None:
        if self._ptr:
            lib().bpf_link__destroy(self._ptr)
            self._ptr = None


class Program:
    def __init__(self, obj: Object, ptr: int, name: str) -> None:
        self._obj = obj
        self._ptr = ptr
        self.name = name

    def set_autoload(self, on: bool) -> None:
        m = log_mark()
        _check_int(lib().bpf_program__set_autoload(self._ptr, on), f"set_autoload {self.name}", m)

    def set_attach_target(self, func: str) -> None:
        m = log_mark()
        rc = lib().bpf_program__set_attach_target(self._ptr, 0, func.encode())
        _check_int(rc, f"set_attach_target({self.name}, {func})", m)

    @property
    def fd(self) -> int:
        return lib().bpf_program__fd(self._ptr)

    def attach_raw_tracepoint(self, tp: str) -> Link:
        m = log_mark()
        what = f"attach raw_tracepoint {tp}"
        return Link(
            _check_ptr(lib().bpf_program__attach_raw_tracepoint(self._ptr, tp.encode()), what, m),
            what,
        )

    def attach_tracepoint(self, category: str, name: str) -> Link:
        m = log_mark()
        what = f"attach tracepoint {category}/{name}"
        p = lib().bpf_program__attach_tracepoint(self._ptr, category.encode(), name.encode())
        return Link(_check_ptr(p, what, m), what)

    def attach_trace(self, what: str) -> Link:
        m = log_mark()
        return Link(_check_ptr(lib().bpf_program__attach_trace(self._ptr), what, m), what)

    def attach_kprobe(self, func: str, retprobe: bool) -> Link:
        m = log_mark()
        what = f"attach {'kretprobe' if retprobe else 'kprobe'} {func}"
        p = lib().bpf_program__attach_kprobe(self._ptr, retprobe, func.encode())
        return Link(_check_ptr(p, what, m), what)

    def info(self) -> bpf_prog_info:
        return prog_info(self.fd)


class Object:
    """One opened (then loaded) BPF object file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        m = log_mark()
        self.path = os.fspath(path)
        self._ptr: int | None = _check_ptr(
            lib().bpf_object__open_file(self.path.encode(), None), f"open {self.path}", m
        )

    @property
    def ptr(self) -> int:
        if not self._ptr:
            raise RuntimeError("BPF object is closed")
        return self._ptr

    def program(self, name: str) -> Program:
        m = log_mark()
        p = lib().bpf_object__find_program_by_name(self.ptr, name.encode())
        return Program(self, _check_ptr(p, f"find program {name}", m), name)

    def programs(self) -> list[Program]:
        out = []
        p = lib().bpf_object__next_program(self.ptr, None)
        while p:
            out.append(Program(self, p, lib().bpf_program__name(p).decode()))
            p = lib().bpf_object__next_program(self.ptr, p)
        return out

    def map(self, name: str) -> Map:
        m = log_mark()
        p = lib().bpf_object__find_map_by_name(self.ptr, name.encode())
        return Map(_check_ptr(p, f"find map {name}", m), name)

    def rodata(self) -> ctypes.Array:
        """Writable view of .rodata before load (becomes read-only to programs)."""
        m = log_mark()
        mp = _check_ptr(
            lib().bpf_object__find_map_by_name(self.ptr, b".rodata"), "find map .rodata", m
        )
        size = ctypes.c_size_t(0)
        data = _check_ptr(lib().bpf_map__initial_value(mp, ctypes.byref(size)), ".rodata value", m)
        return (ctypes.c_char * size.value).from_address(data)

    def load(self) -> None:
        m = log_mark()
        _check_int(lib().bpf_object__load(self.ptr), f"load {os.path.basename(self.path)}", m)

    def close(self) -> None:
        if self._ptr:
            lib().bpf_object__close(self._ptr)
            self._ptr = None

    def __del__(self) -> None:
        self.close()


def prog_info(fd: int) -> bpf_prog_info:
    info = bpf_prog_info()
    n = ctypes.c_uint32(ctypes.sizeof(info))
    rc = lib().bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(n))
    if rc < 0:
        raise LibbpfError(-rc, f"bpf_obj_get_info_by_fd({fd})")
    return info


def enable_stats() -> int:
    """bpf(BPF_ENABLE_STATS, RUN_TIME): stats stay on while the returned fd is open
    (fd-scoped, unlike the kernel.bpf_stats_enabled sysctl; a killed process turns
    them off by dying)."""
    m = log_mark()
    return _check_int(lib().bpf_enable_stats(BPF_STATS_RUN_TIME), "bpf_enable_stats(RUN_TIME)", m)


def num_possible_cpus() -> int:
    n = lib().libbpf_num_possible_cpus()
    if n <= 0:
        raise LibbpfError(-n if n < 0 else errno_mod.EINVAL, "libbpf_num_possible_cpus")
    return n
