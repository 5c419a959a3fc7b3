"""Matrix parsing and validation: every bad cell is named with the rule it breaks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from readbench.errors import BadInput
from readbench.model.matrix import (
    DESIGN_SIZES,
    Block,
    Cell,
    Matrix,
    cell_slug,
    load_matrix,
    parse_size,
    parse_sizes,
    validate,
)
from readbench.model.workloads import REGISTRY, WORKLOADS


class _Spec:
    def __init__(self, name: str) -> None:
        self.name = name


def fake_parse(text: str) -> Any:
    """Stands in for hooks.parse so matrix rules are tested without BPF."""
    if text == "none":
        return _Spec("none")
    if text.startswith("rawtp:sys_enter"):
        return _Spec("rawtp:sys_enter:empty" if text.count(":") == 1 else text)
    raise BadInput(f"hook {text!r}: unknown")


@pytest.mark.parametrize(
    ("text", "n"), [("64", 64), ("4K", 4096), ("4KiB", 4096), ("1M", 1 << 20), (7, 7)]
)
def test_parse_size(text: str | int, n: int) -> None:
    assert parse_size(text) == n


@pytest.mark.parametrize("text", ["0", "-1", "abc", "", "1.5K", True])
def test_parse_size_rejects(text: Any) -> None:
    with pytest.raises(BadInput, match="size"):
        parse_size(text)


def test_parse_sizes_names_the_bad_one() -> None:
    with pytest.raises(BadInput, match=r"'0': must be greater than 0"):
        parse_sizes("64,0")


def test_presets_cover_design_sizes() -> None:
    m = load_matrix(
        "default", ["none", "rawtp:sys_enter:empty", "tp:syscalls/sys_enter_pread64:inspect"]
    )
    cells = m.cells()
    for s in DESIGN_SIZES:
        assert any(c.workload == "cached" and c.size == s and c.hook == "none" for c in cells)
    # every read kind of the registry, at the sizes its record says show its shape
    assert {c.workload for c in cells} == set(WORKLOADS)
    for w in REGISTRY:
        for s in w.shape_sizes:
            assert any(c.workload == w.name and c.size == s for c in cells), (w.name, s)
    hooked = [c for c in cells if c.hook != "none"]
    assert hooked and all(c.baseline in {x.name for x in cells} for c in hooked)
    # io_uring 4 KiB with points that fire there; mmap-fault with the fault tracepoint
    assert "io_uring/4096/point:rawtp:filemap/mm_filemap_get_pages" in {c.name for c in cells}
    assert "mmap-fault/4096/point:rawtp:filemap/mm_filemap_fault" in {c.name for c in cells}


def test_registry_cell_rules_refuse_bad_cells_naming_the_rule() -> None:
    m = Matrix("t", [Block(["mmap-fault"], [100])])
    with pytest.raises(BadInput, match=r"mmap-fault/100/none: .*multiple of 4096"):
        validate(m, parse_hook=fake_parse, io_align=-1)
    m = Matrix("t", [Block(["readv"], [1])])
    with pytest.raises(BadInput, match=r"readv/1/none: .*size >= 2"):
        validate(m, parse_hook=fake_parse, io_align=-1)
    m = Matrix("t", [Block(["splice"], [64], buf_offsets=[7])])
    with pytest.raises(BadInput, match=r"splice/64\+7/none: .*no user buffer"):
        validate(m, parse_hook=fake_parse, io_align=-1)
    m = Matrix("t", [Block(["splice"], [2 << 20])], max_size=4 << 20)
    with pytest.raises(BadInput, match=r"size <= 1048576"):
        validate(m, parse_hook=fake_parse, io_align=-1)


def test_default_measures_the_exit_side_inspect_where_rawtp_attaches() -> None:
    m = load_matrix("default", ["none", "rawtp:sys_enter:empty", "rawtp:sys_enter:inspect"])
    exit_cells = {c.name for c in m.cells() if ":sys_exit:" in c.hook}
    assert exit_cells == {"cached/64/rawtp:sys_exit:inspect", "pipe/64/rawtp:sys_exit:inspect"}
    m = load_matrix("default", ["none", "tpbtf:sys_enter:inspect"])
    assert not [c for c in m.cells() if ":sys_exit:" in c.hook]


def test_quick_uses_rawtp_when_available() -> None:
    m = load_matrix("quick", ["none", "rawtp:sys_enter:empty", "rawtp:sys_enter:inspect"])
    assert {c.hook for c in m.cells()} == {"none", "rawtp:sys_enter:empty"}
    m = load_matrix("quick", ["none"])
    assert {c.hook for c in m.cells()} == {"none"}


def test_aa_adds_baseline_copies() -> None:
    m = Matrix("t", [Block(["cached"], [64, 128], ["none", "rawtp:sys_enter"])], aa=True)
    names = {c.name for c in m.cells()}
    assert {"cached/64/none#aa", "cached/128/none#aa"} <= names
    aa = next(c for c in m.cells() if c.aa_copy)
    assert aa.baseline == f"cached/{aa.size}/none"


def test_block_aa_copies_only_its_own_baselines() -> None:
    m = Matrix("t", [Block(["cached"], [64], ["none", "rawtp:sys_enter"], aa=True),
                     Block(["pipe"], [64], ["none"])])  # fmt: skip
    assert {c.name for c in m.cells() if c.aa_copy} == {"cached/64/none#aa"}
    assert m.narrowed(sizes=[128]).blocks[0].aa  # narrowing keeps the block's A/A
    # ... but a block narrowed to its baselines has no claim for an A/A to vouch for
    assert not [c for c in m.narrowed(hooks=["none"]).cells() if c.aa_copy]


def test_default_has_an_aa_copy_of_every_claims_baseline() -> None:
    """A default run's A/A rate (the sham toggled like a hook) vouches for its claims."""
    m = load_matrix("default", ["none", "rawtp:sys_enter:empty"])
    cells = m.cells()
    aa = {c.baseline for c in cells if c.aa_copy}
    assert aa == {c.baseline for c in cells if c.hook != "none"}
    assert not m.aa  # the copies come from the claims' blocks, not one per cell of the run


def test_toml_block_aa(tmp_path: Path) -> None:
    f = tmp_path / "m.toml"
    f.write_text(
        '[[block]]\nworkloads = ["cached"]\nsizes = [64]\n'
        'hooks = ["none", "rawtp:sys_enter"]\naa = true\n'
    )
    assert [c.name for c in load_matrix(str(f), ["none"]).cells() if c.aa_copy] == [
        "cached/64/none#aa"
    ]
    f.write_text('[[block]]\nworkloads = ["cached"]\nsizes = [64]\naa = "yes"\n')
    with pytest.raises(BadInput, match=r"block 1: aa = 'yes' must be true or false"):
        load_matrix(str(f), ["none"])


def test_narrowed_replaces_axes() -> None:
    m = load_matrix("default", ["none"]).narrowed(workloads=["cached"], sizes=[64], hooks=["none"])
    assert [c.name for c in m.cells()] == ["cached/64/none"]


def test_validate_canonicalises_and_dedups_hooks() -> None:
    m = Matrix("t", [Block(["cached"], [64], ["rawtp:sys_enter", "rawtp:sys_enter:empty", "none"])])
    cells = validate(m, parse_hook=fake_parse, io_align=512)
    assert sorted(c.name for c in cells) == ["cached/64/none", "cached/64/rawtp:sys_enter:empty"]


@pytest.mark.parametrize(
    ("block", "io_align", "pattern"),
    [
        (
            Block(["cached"], [2 << 20]),
            512,
            r"cell cached/2097152/none: size 2097152 exceeds the maximum",
        ),
        (
            Block(["direct"], [100]),
            512,
            r"cell direct/100/none: O_DIRECT size 100 is not a multiple .*512",
        ),
        (Block(["direct"], [4096]), None, r"does not support O_DIRECT"),
        (Block(["direct"], [4096], buf_offsets=[3]), 512, r"O_DIRECT needs an aligned buffer"),
        (Block(["cached"], [64], buf_offsets=[64]), 512, r"buffer offset 64 must be within 0..63"),
        (Block(["floppy"], [64]), 512, r"workload 'floppy': unknown"),
        (Block(["cached"], [64], ["kprobe"]), 512, r"hook 'kprobe'"),
    ],
)
def test_validate_rejects(block: Block, io_align: int | None, pattern: str) -> None:
    with pytest.raises(BadInput, match=pattern):
        validate(Matrix("t", [block]), parse_hook=fake_parse, io_align=io_align)


def test_validate_run_parameters() -> None:
    with pytest.raises(BadInput, match="rounds = 0 must be >= 1"):
        validate(
            Matrix("t", [Block(["cached"], [64])], rounds=0), parse_hook=fake_parse, io_align=0
        )


def test_toml_matrix(tmp_path: Path) -> None:
    p = tmp_path / "m.toml"
    p.write_text(
        'rounds = 2\nvalues = 4\n[[block]]\nworkloads = ["cached", "pipe"]\nsizes = [64, "4K"]\n'
        'hooks = ["none"]\n'
    )
    m = load_matrix(str(p), ["none"])
    assert m.rounds == 2 and m.values == 4
    assert {c.name for c in m.cells()} == {
        "cached/64/none", "cached/4096/none", "pipe/64/none", "pipe/4096/none"
    }  # fmt: skip


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        ("rounds = [", "malformed TOML"),
        ("rounds = 2\n", r"needs at least one \[\[block\]\]"),
        (
            "colour = 1\n[[block]]\nworkloads=['cached']\nsizes=[1]\n",
            r"unknown key\(s\) \['colour'\]",
        ),
        ("[[block]]\nworkloads=['cached']\nsizes=[0]\n", "must be greater than 0"),
        ("[[block]]\nworkloads=[]\nsizes=[1]\n", "'workloads' must be a non-empty list"),
        ("rounds = 'x'\n[[block]]\nworkloads=['cached']\nsizes=[1]\n", "rounds = 'x' must be"),
    ],
)
def test_toml_matrix_rejects(tmp_path: Path, content: str, pattern: str) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(content)
    with pytest.raises(BadInput, match=pattern):
        load_matrix(str(p), ["none"])


def test_matrix_file_missing_or_wrong_kind(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="file not found"):
        load_matrix(str(tmp_path / "nope.toml"), ["none"])
    with pytest.raises(BadInput, match="not a preset"):
        load_matrix("medium", ["none"])


def test_cell_names_and_slugs() -> None:
    c = Cell("pipe", 4096, "tp:syscalls/sys_enter_read:count", 7)
    assert c.name == "pipe/4096+7/tp:syscalls/sys_enter_read:count"
    assert "/" not in cell_slug(c.name) and ":" not in cell_slug(c.name)
    assert cell_slug(c.name) != cell_slug(Cell("pipe", 4096, "none", 7).name)
