"""Hook names (readbench.model.hookspec): canonical spellings, refusals that name the input
and the rule, which side a hook is on and which companion it needs. Pure: no kernel."""

from __future__ import annotations

import pytest

from readbench.errors import BadInput
from readbench.model import hookspec


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("none", "none"),
        ("rawtp:sys_enter", "rawtp:sys_enter:empty"),
        ("rawtp:sys_exit:count", "rawtp:sys_exit:count"),
        ("tp:syscalls/sys_enter_pread64", "tp:syscalls/sys_enter_pread64:empty"),
        ("tp:syscalls/sys_exit_read:inspect", "tp:syscalls/sys_exit_read:inspect"),
        ("tpbtf:sys_exit:inspect", "tpbtf:sys_exit:inspect"),
        ("fentry:vfs_read", "fentry:vfs_read:empty"),
        ("fexit:_copy_to_iter:hist", "fexit:_copy_to_iter:hist"),
        ("kprobe:filemap_read", "kprobe:filemap_read:empty"),
        ("kretprobe:rep_movs_alternative:inspect", "kretprobe:rep_movs_alternative:inspect"),
        ("fentry:pipe_read", "fentry:pipe_read:empty"),
    ],
)
def test_parse_canonical_names(text: str, name: str) -> None:
    spec = hookspec.parse(text)
    assert spec.name == name
    assert spec.is_none == (name == "none")
    assert hookspec.parse(spec.name) == spec


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("", "expected 'none' or ATTACH:TARGET"),
        ("rawtp", "expected 'none' or ATTACH:TARGET"),
        ("rawtp:sys_enter:count:x", "expected 'none' or ATTACH:TARGET"),
        ("rawtp::count", "expected 'none' or ATTACH:TARGET"),
        ("uprobe:vfs_read", "unknown attach type 'uprobe'"),
        ("rawtp:sys_enter:sum", "unknown body 'sum'"),
        ("rawtp:sched_switch", "rawtp target must be sys_enter or sys_exit"),
        ("tp:syscalls/sys_enter_write", "classic tracepoint target must be one of"),
        ("tp:sys_enter_pread64", "classic tracepoint target must be one of"),
        ("fentry:rep_movs_alternative", "assembly routine without BTF"),
        ("fexit:do_sys_open", "fexit target must be one of"),
        ("kprobe:memcpy", "kprobe target must be one of"),
        ("None", "expected 'none' or ATTACH:TARGET"),
    ],
)
def test_parse_rejects_with_input_and_rule(text: str, rule: str) -> None:
    with pytest.raises(BadInput) as ei:
        hookspec.parse(text)
    msg = str(ei.value)
    assert repr(text) in msg
    assert rule in msg


def test_sides_and_companions() -> None:
    assert hookspec.parse("rawtp:sys_enter").side == "enter"
    assert hookspec.parse("tpbtf:sys_exit").side == "exit"
    assert hookspec.parse("tp:syscalls/sys_exit_read").side == "exit"
    assert hookspec.parse("fexit:vfs_read").side == "exit"
    assert hookspec.parse("kprobe:vfs_read").side == "enter"
    assert hookspec.companion_type(hookspec.parse("fentry:vfs_read:inspect")) == "fexit"
    assert hookspec.companion_type(hookspec.parse("kretprobe:vfs_read:hist")) == "kprobe"
    assert hookspec.companion_type(hookspec.parse("fexit:vfs_read:inspect")) is None
    assert hookspec.companion_type(hookspec.parse("tp:syscalls/sys_exit_read:inspect")) == "tp"
    assert hookspec.companion_type(hookspec.parse("rawtp:sys_enter:count")) is None
