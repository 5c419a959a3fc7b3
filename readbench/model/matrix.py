"""The benchmark matrix: which cells (workload × size × buffer offset × hook) a run measures.

A matrix is a union of blocks, each a cross product. A single product cannot express
"every size without a hook, a few sizes with every hook" without tripling the run time,
so presets and TOML files list blocks. Everything is validated here, before anything runs.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from readbench.errors import BadInput
from readbench.model.workloads import REGISTRY, WORKLOADS, get

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

KiB = 1024
MiB = 1024 * KiB
SMALL_SIZES = [1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65]
LARGE_SIZES = [128, 256, KiB, 4 * KiB, 16 * KiB, 64 * KiB, 256 * KiB, MiB]
DESIGN_SIZES = SMALL_SIZES + LARGE_SIZES
DEFAULT_MAX_SIZE = MiB
PRESETS = ("quick", "default", "full")
AA_SUFFIX = "#aa"

_SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMG]i?B?|B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": KiB, "m": MiB, "g": 1024 * MiB}


def parse_size(text: str | int, what: str = "size") -> int:
    """'64', '4K', '4KiB', '1M' -> bytes. Rejects 0, negatives and garbage with BadInput."""
    if isinstance(text, bool):
        raise BadInput(f"{what} {text!r}: not a size (expected bytes like 64, 4K, 1M)")
    if isinstance(text, int):
        n = text
    else:
        m = _SIZE_RE.match(str(text))
        if not m:
            raise BadInput(
                f"{what} {text!r}: not a size (expected a positive number of bytes like 64, 4K, 1M)"
            )
        n = int(m.group(1)) * _UNITS[(m.group(2) or "")[:1].lower()]
    if n <= 0:
        raise BadInput(f"{what} {text!r}: must be greater than 0 bytes")
    return n


def parse_sizes(text: str) -> list[int]:
    out = [parse_size(t, "size") for t in text.split(",") if t.strip()]
    if not out:
        raise BadInput(f"--sizes {text!r}: no sizes given")
    return out


def parse_list(text: str, what: str) -> list[str]:
    out = [t.strip() for t in text.split(",") if t.strip()]
    if not out:
        raise BadInput(f"{what} {text!r}: empty list")
    return out


def check_workload(name: str) -> str:
    if name not in WORKLOADS:
        raise BadInput(f"workload {name!r}: unknown (choose from {', '.join(WORKLOADS)})")
    return name


def cell_name(workload: str, size: int, buf_offset: int, hook: str, aa_copy: bool = False) -> str:
    off = f"+{buf_offset}" if buf_offset else ""
    return f"{workload}/{size}{off}/{hook}{AA_SUFFIX if aa_copy else ''}"


def parse_cell_name(name: str) -> tuple[str, int, int, str, bool]:
    """`WORKLOAD/SIZE[+OFF]/HOOK[#aa]` -> (workload, size, offset, hook, aa_copy).
    The hook may itself contain '/', so split only twice."""
    parts = name.split("/", 2)
    if len(parts) != 3:
        raise ValueError(f"cell name {name!r} is not WORKLOAD/SIZE[+OFFSET]/HOOK")
    workload, size_s, hook = parts
    off = 0
    if "+" in size_s:
        size_s, off_s = size_s.split("+", 1)
        off = int(off_s)
    aa = hook.endswith("#aa")
    if aa:
        hook = hook[: -len(AA_SUFFIX)]
    return workload, int(size_s), off, hook, aa


def cell_order(name: str) -> tuple[str, int, int, int, str, bool]:
    """Sort key of a cell name: workload, size as a number, buffer offset, then hook ("none"
    first), the A/A copy after its cell. A name that does not parse sorts last, by itself."""
    try:
        w, size, off, hook, aa = parse_cell_name(name)
    except ValueError:
        return ("\uffff" + name, 0, 0, 0, "", False)
    return (w, size, off, hook != "none", hook, aa)


def cell_slug(name: str) -> str:
    """A file-name-safe form of a cell name (stable, used for side files)."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("_")


@dataclass(frozen=True)
class Cell:
    workload: str
    size: int
    hook: str = "none"
    buf_offset: int = 0
    aa_copy: bool = False

    @property
    def name(self) -> str:
        return cell_name(self.workload, self.size, self.buf_offset, self.hook, self.aa_copy)

    @property
    def slug(self) -> str:
        return cell_slug(self.name)

    @property
    def baseline(self) -> str | None:
        """Name of the cell this one is compared against (None for a baseline)."""
        if self.hook == "none" and not self.aa_copy:
            return None
        return cell_name(self.workload, self.size, self.buf_offset, "none")


@dataclass
class Block:
    workloads: list[str]
    sizes: list[int]
    hooks: list[str] = field(default_factory=lambda: ["none"])
    buf_offsets: list[int] = field(default_factory=lambda: [0])
    # A/A copies of this block's baselines (the sham toggled like a hook) where it has a
    # hook: Matrix.aa asks them of every cell, this of the claims the A/A rate vouches for
    aa: bool = False


@dataclass
class Matrix:
    name: str
    blocks: list[Block]
    rounds: int = 5
    processes_per_round: int = 2  # pyperf workers per round of a cell without a hook
    # Paired (hooked) cells: worker processes per round. Their exact test needs
    # 2/2^n <= alpha/m to reach significance at all: 16 processes serve ~60 claims at 0.01.
    paired_processes_per_round: int = 4
    values: int = 3  # pyperf values per process (cells without a hook)
    pairs: int = 20  # blocks per process of a paired (hooked) cell: one value per arm each
    # per-workload override of `pairs` (pipe reads are noisier: more blocks per process)
    pairs_by_workload: dict[str, int] = field(default_factory=dict)
    warmups: int = 1
    min_time: float = 0.02  # seconds per pyperf value; the C loop makes short values precise
    max_size: int = DEFAULT_MAX_SIZE
    perf: bool = False  # run the perf attribution pass per baseline cell
    bpf_stats: bool = True  # run the BPF_ENABLE_STATS side pass per hooked cell
    copy: bool = False  # run the user-space copy-strategy sweep
    aa: bool = False
    calibrate: bool = False  # measure the paired test's A/A rate and power (calibration.json)
    atlas: bool = False  # the hook-point atlas of each hooked workload (atlas/*.json)
    calibrate_trials: int = 20

    def cells(self) -> list[Cell]:
        seen: dict[str, Cell] = {}
        for b in self.blocks:
            aa = self.aa or (b.aa and any(h != "none" for h in b.hooks))
            for w in b.workloads:
                for s in b.sizes:
                    for off in b.buf_offsets:
                        for h in b.hooks:
                            c = Cell(w, s, h, off)
                            seen.setdefault(c.name, c)
                        if aa:
                            c = Cell(w, s, "none", off, aa_copy=True)
                            seen.setdefault(c.name, c)
        # Every hooked or A/A cell needs its baseline in the same run.
        for c in list(seen.values()):
            if c.baseline and c.baseline not in seen:
                base = Cell(c.workload, c.size, "none", c.buf_offset)
                seen[base.name] = base
        return list(seen.values())

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["processes"] = self.rounds * self.processes_per_round
        return d

    def narrowed(
        self,
        workloads: Sequence[str] | None = None,
        sizes: Sequence[int] | None = None,
        hooks: Sequence[str] | None = None,
        buf_offsets: Sequence[int] | None = None,
    ) -> Matrix:
        """Replace axes given on the command line in every block (then drop duplicates)."""
        blocks: list[Block] = []
        for b in self.blocks:
            ws = b.workloads
            if workloads is not None:
                ws = list(workloads)
            nb = Block(
                ws,
                list(sizes) if sizes is not None else b.sizes,
                list(hooks) if hooks is not None else b.hooks,
                list(buf_offsets) if buf_offsets is not None else b.buf_offsets,
                b.aa,
            )
            if nb not in blocks:
                blocks.append(nb)
        return replace(self, blocks=blocks)


HookDefaults = Callable[[list[str]], list[str]] | list[str]

# The atlas's counting program on the points that fire on a read kind no syscall hook sees
# with its file (readbench atlas --coverage measured them: once per op each, at 4 KiB).
POINTS_OF = {
    "io_uring": ["point:rawtp:io_uring/io_uring_submit_req",
                 "point:rawtp:filemap/mm_filemap_get_pages"],
    "mmap-fault": ["point:rawtp:filemap/mm_filemap_fault"],
}  # fmt: skip


def _preset(name: str, default_hooks: HookDefaults) -> Matrix:
    def hooked(*workloads: str) -> list[str]:
        # Per block: a pread64 tracepoint on a read() workload would only be skipped.
        hs = default_hooks(list(workloads)) if callable(default_hooks) else default_hooks
        return [h for h in hs if h != "none"]

    if name == "quick":
        rawtp = [h for h in hooked("cached") if h.startswith("rawtp:sys_enter")]
        quick_hooks = ["none", *rawtp[:1]]
        return Matrix(
            "quick",
            [
                Block(["cached"], [64, 4 * KiB], quick_hooks),
                Block(["pipe"], [64], ["none"]),
            ],
            rounds=3,
            processes_per_round=2,
            values=3,
            bpf_stats=True,
        )

    def empty(hooks: list[str]) -> list[str]:
        return [h for h in hooks if h.endswith(":empty")]

    def exit_side(*workloads: str) -> list[str]:
        # The atlas's cheapest point that sees the bytes read is an exit tracepoint with an
        # inspect body; measured in the run, the report's recommendation carries its cost.
        return [
            h.replace(":sys_enter:", ":sys_exit:")
            for h in hooked(*workloads)
            if h.startswith("rawtp:sys_enter:inspect")
        ]

    if name == "default":
        # Every design size where the copy routine changes (cached); every other read kind at
        # the sizes that show its shape (its registry record); every available hook at three
        # cached sizes and one pipe size, paired, 16 processes each: enough for the exact
        # test at α/m with m ≈ 35 claims, and an MDE ≤ 5 % where per-process spread ≤ 3 %.
        # io_uring 4 KiB with the points that fire there (no syscall of the read's own: the
        # cheapest is a page-cache or io_uring tracepoint, measured here beside sys_enter), and
        # mmap-fault with the fault tracepoint (no syscall at all). Each claim's baseline has
        # an A/A copy (the sham toggled like a hook), so the run's own A/A rate vouches for
        # its claims' toggling.
        shapes = [Block([w.name], list(w.shape_sizes)) for w in REGISTRY if w.name != "cached"]
        io_uring_hooks = [*empty(hooked("io_uring")), *POINTS_OF["io_uring"]]
        return Matrix(
            "default",
            [
                Block(["cached"], DESIGN_SIZES),
                *shapes,
                Block(["cached"], [64, 64 * KiB, MiB], ["none", *hooked("cached")], aa=True),
                Block(["pipe"], [64], ["none", *hooked("pipe")], aa=True),
                Block(["cached"], [64], ["none", *exit_side("cached")]),
                Block(["pipe"], [64], ["none", *exit_side("pipe")]),
                Block(["io_uring"], [4 * KiB], ["none", *io_uring_hooks], aa=True),
                Block(["mmap-fault"], [4 * KiB], ["none", *POINTS_OF["mmap-fault"]], aa=True),
            ],
            rounds=4,
            processes_per_round=2,
            paired_processes_per_round=4,
            pairs=8,
            pairs_by_workload={"pipe": 24},
            min_time=0.01,
            perf=True,
            atlas=True,
            copy=True,
        )
    if name == "full":
        return Matrix(
            "full",
            [
                Block(["cached"], DESIGN_SIZES, ["none", *hooked("cached")]),
                Block(["cached-stream", "pipe"], DESIGN_SIZES, ["none", *hooked("pipe")]),
                Block(["uncached"], DESIGN_SIZES, ["none", *hooked("uncached")]),
                Block(["direct"], [512, 4 * KiB, 16 * KiB, 64 * KiB, 256 * KiB, MiB]),
                Block(["cached"], [64, 4 * KiB], ["none"], list(range(0, 64, 7))),
            ],
            rounds=10,
            processes_per_round=2,
            perf=True,
            copy=True,
        )
    raise BadInput(
        f"--matrix {name!r}: unknown preset (choose {', '.join(PRESETS)} or a .toml file)"
    )


_TOP_KEYS = {
    "rounds": int,
    "processes_per_round": int,
    "paired_processes_per_round": int,
    "values": int,
    "pairs": int,
    "pairs_by_workload": dict,
    "warmups": int,
    "min_time": float,
    "max_size": (int, str),
    "perf": bool,
    "bpf_stats": bool,
    "copy": bool,
    "aa": bool,
    "calibrate": bool,
    "atlas": bool,
    "calibrate_trials": int,
}


def load_matrix(spec: str, default_hooks: HookDefaults) -> Matrix:
    """A preset name or a TOML file path."""
    if spec in PRESETS:
        return _preset(spec, default_hooks)
    path = Path(spec)
    if not path.suffix == ".toml":
        raise BadInput(f"--matrix {spec!r}: not a preset ({', '.join(PRESETS)}) nor a .toml file")
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise BadInput(f"--matrix {spec}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BadInput(f"--matrix {spec}: cannot read: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise BadInput(f"--matrix {spec}: malformed TOML: {e}") from None
    return matrix_from_dict(raw, source=spec)


def matrix_from_dict(raw: dict[str, Any], source: str) -> Matrix:
    unknown = set(raw) - set(_TOP_KEYS) - {"block", "name"}
    if unknown:
        raise BadInput(f"matrix {source}: unknown key(s) {sorted(unknown)}")
    kw: dict[str, Any] = {}
    for k, typ in _TOP_KEYS.items():
        if k in raw:
            v = raw[k]
            if k == "max_size":
                v = parse_size(v, f"matrix {source}: max_size")
            elif typ is float and isinstance(v, int) and not isinstance(v, bool):
                v = float(v)
            elif not isinstance(v, typ) or (typ is int and isinstance(v, bool)):
                raise BadInput(f"matrix {source}: {k} = {v!r} must be of type {typ}")
            if k == "pairs_by_workload":
                for w, n in v.items():
                    check_workload(w)
                    if not isinstance(n, int) or isinstance(n, bool) or n < 2:
                        raise BadInput(f"matrix {source}: pairs_by_workload.{w} = {n!r}: "
                                       "must be an integer >= 2")  # fmt: skip
            kw[k] = v
    blocks_raw = raw.get("block")
    if not isinstance(blocks_raw, list) or not blocks_raw:
        raise BadInput(f"matrix {source}: needs at least one [[block]] with workloads and sizes")
    blocks = []
    for i, b in enumerate(blocks_raw):
        where = f"matrix {source}: block {i + 1}"
        if not isinstance(b, dict):
            raise BadInput(f"{where}: must be a table")
        extra = set(b) - {"workloads", "sizes", "hooks", "buf_offsets", "aa"}
        if extra:
            raise BadInput(f"{where}: unknown key(s) {sorted(extra)}")
        for key in ("workloads", "sizes"):
            if not isinstance(b.get(key), list) or not b[key]:
                raise BadInput(f"{where}: '{key}' must be a non-empty list")
        blocks.append(
            Block(
                [str(w) for w in b["workloads"]],
                [parse_size(s, f"{where}: size") for s in b["sizes"]],
                [str(h) for h in b.get("hooks", ["none"])],
                [int(o) for o in b.get("buf_offsets", [0])],
                _block_aa(b.get("aa", False), where),
            )
        )
    return Matrix(str(raw.get("name", Path(source).stem)), blocks, **kw)


def _block_aa(v: object, where: str) -> bool:
    if not isinstance(v, bool):
        raise BadInput(f"{where}: aa = {v!r} must be true or false")
    return v


def validate(
    matrix: Matrix,
    *,
    parse_hook: Any,
    io_align: int | None,
) -> list[Cell]:
    """Check every cell against the rules; return the cells or raise BadInput naming the cell.

    parse_hook: callable str -> HookSpec (readbench.model.hookspec.parse), raising BadInput.
    io_align: O_DIRECT alignment of the data dir (None: O_DIRECT unsupported there;
    -1: not known yet, skip the O_DIRECT filesystem rules).
    """
    for field_name, lo in (
        ("rounds", 1),
        ("processes_per_round", 1),
        ("values", 1),
        ("warmups", 0),
    ):
        v = getattr(matrix, field_name)
        if v < lo:
            raise BadInput(f"matrix {matrix.name}: {field_name} = {v} must be >= {lo}")
    if not 0.001 <= matrix.min_time <= 10:
        raise BadInput(
            f"matrix {matrix.name}: min_time = {matrix.min_time} must be in [0.001, 10] s"
        )
    cells = matrix.cells()
    hook_names: dict[str, str] = {}
    out: list[Cell] = []
    for c in cells:
        check_workload(c.workload)
        if c.size > matrix.max_size:
            raise BadInput(
                f"cell {c.name}: size {c.size} exceeds the maximum {matrix.max_size} bytes "
                f"(raise max_size in a matrix file)"
            )
        if not 0 <= c.buf_offset <= 63:
            raise BadInput(f"cell {c.name}: buffer offset {c.buf_offset} must be within 0..63")
        rule = get(c.workload).cell_rule(c.size, c.buf_offset)
        if rule:
            raise BadInput(f"cell {c.name}: {rule}")
        if get(c.workload).needs_direct_io:
            if io_align is None:
                raise BadInput(
                    f"cell {c.name}: the data directory's filesystem does not support O_DIRECT "
                    f"(choose another --data-dir or drop the direct workload)"
                )
            if io_align not in (-1, 0) and c.size % io_align:
                raise BadInput(
                    f"cell {c.name}: O_DIRECT size {c.size} is not a multiple of the "
                    f"data directory's DIO alignment ({io_align} bytes)"
                )
        if c.hook not in hook_names:
            hook_names[c.hook] = parse_hook(c.hook).name
        canon = hook_names[c.hook]
        out.append(replace(c, hook=canon))
    # Canonicalising hook spellings can create duplicates ("rawtp:sys_enter" == "...:empty").
    uniq: dict[str, Cell] = {}
    for c in out:
        uniq.setdefault(c.name, c)
    return list(uniq.values())
