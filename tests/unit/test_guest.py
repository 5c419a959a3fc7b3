"""What a guest run asks for, checked before anything is fetched or booted (pure)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from readbench.errors import BadInput
from readbench.model.guest import (
    GuestSpec,
    lsm_list,
    parse_clearcpuid,
    parse_cpu,
    parse_memory,
)


def test_cpu_models_and_flag_edits() -> None:
    m = parse_cpu("max,-erms,-fsrm")
    assert m.qemu == "max,-erms,-fsrm" and m.removed() == {"erms", "fsrm"}
    assert parse_cpu("Skylake-Server,+erms,fsrm=off").removed() == {"fsrm"}
    assert parse_cpu("host,-arch-capabilities").removed() == {"arch_capabilities"}
    for bad in ("", "-erms", "max,erms;rm", "max,,x", "max,-er ms"):
        with pytest.raises(BadInput, match="--cpu"):
            parse_cpu(bad)


def test_clearcpuid_names_need_5_19() -> None:
    assert parse_clearcpuid("rep_good,erms", (6, 1)) == ("rep_good", "erms")
    assert parse_clearcpuid("112", (5, 15)) == ("112",)
    with pytest.raises(BadInput, match="takes bit numbers only"):
        parse_clearcpuid("rep_good", (5, 15))
    with pytest.raises(BadInput, match="neither a flag name"):
        parse_clearcpuid("REP-GOOD!", (6, 1))


def test_spec_refuses_what_the_launcher_sets() -> None:
    with pytest.raises(BadInput, match="set by readbench guest"):
        GuestSpec("debian-6.1", append=("lsm=landlock",))
    with pytest.raises(BadInput, match="--accel"):
        GuestSpec("debian-6.1", accel="hvf")
    with pytest.raises(BadInput, match="512 MiB"):
        GuestSpec("debian-6.1", memory_mib=100)
    assert parse_memory("3G") == 3072 and parse_memory("2048M") == 2048
    with pytest.raises(BadInput, match="--memory"):
        parse_memory("lots")


def test_lsm_list_adds_bpf_in_the_kernels_order() -> None:
    debian61 = "landlock,lockdown,yama,loadpin,safesetid,integrity,apparmor,selinux,smack,tomoyo"
    assert lsm_list(debian61).endswith(",tomoyo,bpf")
    assert lsm_list(debian61 + ",bpf").count("bpf") == 1
    assert lsm_list(None).split(",")[-1] == "bpf"


def test_kernel_release_from_the_bzimage_header(tmp_path: Path) -> None:
    from readbench.guest.kernels import image_release

    img = bytearray(0x2000)
    img[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", img, 0x20E, 0x1000 - 0x200)
    version = b"6.1.0-57-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC\0"
    img[0x1000 : 0x1000 + len(version)] = version
    p = tmp_path / "vmlinuz"
    p.write_bytes(bytes(img))
    assert image_release(p) == "6.1.0-57-amd64"
    p.write_bytes(b"\0" * 0x400)
    with pytest.raises(BadInput, match="not an x86 bzImage"):
        image_release(p)
