"""What a guest run asks for (design §7b): a kernel, a CPU model and kernel command-line
edits, checked before anything is downloaded or booted. Pure code: the launcher
(readbench.guest) and the reports read these records without starting anything.

A CPU model is QEMU's `-cpu` argument with flag edits (`max,-erms,-fsrm`); flags the kernel
derives itself (rep_good) are cleared with the guest kernel's `clearcpuid=`, which takes
/proc/cpuinfo names from Linux 5.19 on and bit numbers before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from readbench.errors import BadInput

# Kernel aliases: a short name -> the Debian package names it stands for (the newest match).
KERNEL_ALIASES = {
    "debian-6.1": r"^linux-image-6\.1\.0-(\d+)-amd64$",
    "debian-6.12": r"^linux-image-6\.12\.(\d+)\+deb12-amd64$",
}
ACCELS = ("auto", "kvm", "tcg")
_MODEL_RE = re.compile(r"^[a-zA-Z0-9_.-]+$")
_EDIT_RE = re.compile(r"^([+-]?)([a-zA-Z0-9_.-]+)(?:=(on|off|true|false|\d+))?$")
_CPUINFO_NAME = re.compile(r"^[a-z0-9_]+$")


def emulated_note(times: str) -> str:
    """The one wording of what a TCG guest's numbers are; `times` says which times it covers
    ("on this page", "in this comparison")."""
    return (
        f"EMULATED TIMES (QEMU TCG): every time {times} is an emulated time, not a hardware "
        "time, and so is every share of time (the copy routine's share of a read included: "
        "TCG emulates rep movs in software); which copy-to-user routine runs, the counts, what "
        "attaches and what a program sees are facts"
    )


@dataclass(frozen=True)
class CpuModel:
    """QEMU's -cpu: a model name and flag edits, e.g. max,-erms,-fsrm."""

    name: str
    edits: tuple[str, ...] = ()

    @property
    def qemu(self) -> str:
        return ",".join((self.name, *self.edits))

    def removed(self) -> set[str]:
        """Flags the edits take away (QEMU names: erms, fsrm, ...)."""
        out = set()
        for e in self.edits:
            m = _EDIT_RE.match(e)
            if m and (m.group(1) == "-" or m.group(3) in ("off", "false")):
                out.add(m.group(2).replace("-", "_"))
        return out


def parse_cpu(text: str) -> CpuModel:
    """'max', 'max,-erms,-fsrm', 'host,-arch-capabilities', 'Skylake-Server,+erms'."""
    parts = [p.strip() for p in text.split(",")]
    if not parts or not parts[0] or not _MODEL_RE.match(parts[0]) or parts[0][0] in "+-":
        raise BadInput(
            f"--cpu {text!r}: expected a QEMU CPU model and flag edits, e.g. max,-erms,-fsrm"
        )
    for p in parts[1:]:
        if not _EDIT_RE.match(p):
            raise BadInput(
                f"--cpu {text!r}: {p!r} is not a flag edit (+flag, -flag or flag=on|off)"
            )
    return CpuModel(parts[0], tuple(parts[1:]))


def parse_clearcpuid(text: str, release: tuple[int, int] | None) -> tuple[str, ...]:
    """Flags for the guest kernel's clearcpuid=: cpuinfo names (5.19+) or bit numbers."""
    items = tuple(t.strip() for t in text.split(",") if t.strip())
    if not items:
        raise BadInput(f"--clearcpuid {text!r}: empty list")
    for t in items:
        if t.isdigit():
            continue
        if not _CPUINFO_NAME.match(t):
            raise BadInput(f"--clearcpuid {text!r}: {t!r} is neither a flag name nor a number")
        if release is not None and release < (5, 19):
            raise BadInput(
                f"--clearcpuid {t}: kernel {release[0]}.{release[1]} takes bit numbers only "
                "(names from 5.19, 1625c833db93); REP_GOOD is word 3 bit 16 = 112 on most "
                "kernels, ERMS 9*32+9 = 297, FSRM 18*32+4 = 580: check that kernel's "
                "cpufeatures.h"
            )
    return items


@dataclass(frozen=True)
class GuestSpec:
    """One guest: which kernel, which CPU, what else goes on its command line."""

    kernel: str  # a kernel image path, a Debian package name, an alias, or "running"
    cpu: CpuModel = field(default_factory=lambda: CpuModel("max"))
    clearcpuid: tuple[str, ...] = ()
    append: tuple[str, ...] = ()
    accel: str = "auto"
    cpus: int = 2
    memory_mib: int = 3072

    def __post_init__(self) -> None:
        if self.accel not in ACCELS:
            raise BadInput(f"--accel {self.accel!r}: one of {', '.join(ACCELS)}")
        if not 1 <= self.cpus <= 64:
            raise BadInput(f"--guest-cpus {self.cpus}: must be within 1..64")
        if not 512 <= self.memory_mib <= 1 << 20:
            raise BadInput(f"--memory {self.memory_mib} MiB: must be at least 512 MiB")
        for a in self.append:
            if a.split("=", 1)[0] in ("clearcpuid", "lsm", "init", "console"):
                raise BadInput(
                    f"--append {a!r}: {a.split('=', 1)[0]}= is set by readbench guest "
                    "(use --clearcpuid for CPU flags)"
                )


def parse_memory(text: str) -> int:
    """'3G', '3072M', '512' (MiB) -> MiB."""
    m = re.match(r"^\s*(\d+)\s*([MG]i?B?)?\s*$", text, re.IGNORECASE)
    if not m:
        raise BadInput(f"--memory {text!r}: expected a size like 3G or 2048M")
    n = int(m.group(1))
    return n * 1024 if (m.group(2) or "M")[0].upper() == "G" else n


def lsm_list(config_lsm: str | None) -> str:
    """The guest's lsm= list: the kernel's own CONFIG_LSM order with bpf added, so BPF LSM
    programs can load (Debian builds CONFIG_BPF_LSM=y, but a list without bpf disables it)."""
    base = [x for x in (config_lsm or "lockdown,capability,landlock,yama").split(",") if x]
    if "capability" not in base:
        base.insert(0, "capability")
    return ",".join([*base, "bpf"] if "bpf" not in base else base)
