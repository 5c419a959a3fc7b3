"""Python names for C enums agree with the C headers they mirror. The cffi cdefs are the
headers themselves (readbench/_cffi_build.py) and the BPF constants are read from
readhooks.h (readbench/bpf/abi.py); what is still spelled out in Python is checked here."""

from __future__ import annotations

import re
from pathlib import Path

from readbench._cffi_build import cdef_of
from readbench.copy.replicas import VARIANTS
from readbench.model.workloads import REGISTRY, SYSCALL_OF, WORKLOADS, c_enum_name

SRC = Path(__file__).resolve().parents[2] / "workloads"


def _enum(header: Path, name: str) -> dict[str, int]:
    body = re.search(rf"enum {name}\s*\{{(.*?)\}};", cdef_of(header), re.S)
    assert body, f"enum {name} not in {header}"
    return {k: int(v) for k, v in re.findall(r"(\w+)\s*=\s*(\d+)", body.group(1))}


def test_workload_registry_matches_readloop_h() -> None:
    """One record per C id, and the C names of the loops (wl_names in readloop.c) in id order."""
    c = _enum(SRC / "readloop.h", "rb_workload")
    n = c.pop("RB_NWORKLOADS")
    assert {c_enum_name(w.name): w.c_id for w in REGISTRY} == c
    assert sorted(w.c_id for w in REGISTRY) == list(range(n))
    names = re.search(r"wl_names\[RB_NWORKLOADS\]\s*=\s*\{(.*?)\};",
                      (SRC / "readloop.c").read_text(), re.S)  # fmt: skip
    assert names, "wl_names not found in readloop.c"
    by_id = sorted(REGISTRY, key=lambda w: w.c_id)
    assert re.findall(r'"([^"]+)"', names.group(1)) == [w.name for w in by_id]
    assert set(SYSCALL_OF) == {w.name for w in REGISTRY if w.syscalls}


def test_copy_variants_match_copy_replicas_h() -> None:
    c = _enum(SRC / "copy_replicas.h", "cr_variant")
    c.pop("CR_NVARIANTS")
    assert {f"CR_{v.upper()}": i for v, i in VARIANTS.items()} == c


def test_compiled_modules_carry_the_same_enums() -> None:
    """The built extension exposes the header's enums: a stale build would disagree."""
    from readbench.copy import _replicas
    from readbench.measure import _readloop

    for w, i in WORKLOADS.items():
        assert getattr(_readloop.lib, c_enum_name(w)) == i
    for v, i in VARIANTS.items():
        assert getattr(_replicas.lib, f"CR_{v.upper()}") == i


def test_devwait_loader_reads_its_layout_from_the_header() -> None:
    """bpf/devwait.py packs and unpacks devwait.h's structs as the header declares them, and
    attaches each program to the raw tracepoint its SEC() names."""
    import struct

    from readbench.bpf import devwait

    src = (devwait.HEADER.parent / "devwait.bpf.c").read_text()
    names = [n for _, n in devwait.OUT_FIELDS]
    assert names[0] == "on"
    assert {"bios", "splits", "requests", "requeues", "bytes", "sum_ns", "busy_ns"} <= set(names)
    assert struct.calcsize(devwait.OUT_FORMAT) == 8 * len(names)
    assert struct.calcsize(devwait.CFG_FORMAT) == 8
    for n in names:
        assert f"out.{n}" in src, n
    for prog, tp in devwait.PROGRAMS.items():
        assert re.search(rf'SEC\("raw_tp/{tp}"\)\s*int {prog}\(', src), prog
