"""Guest kernels: a Debian kernel package fetched with `apt-get download` and unpacked into
the cache (never installed into the host), a kernel image path, or the running kernel.

    resolve("debian-6.1") -> GuestKernel(image=.../boot/vmlinuz-6.1.0-57-amd64, ...)

A package is unpacked with `dpkg-deb -x` into a temporary directory, given its modules.dep
(depmod -b, so the guest can load modules), and renamed into place whole: an interrupted
fetch never leaves a half-unpacked kernel that a later run would trust.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import struct
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from readbench.errors import BadInput, MissingCapability
from readbench.model.guest import KERNEL_ALIASES
from readbench.store.cache import cache_home

SBIN = "/usr/sbin:/sbin"


@dataclass(frozen=True)
class GuestKernel:
    image: Path  # the bzImage the guest boots
    release: str  # its `uname -r`
    source: str  # how it was obtained, in words
    root: Path | None = None  # the unpacked package (boot/, lib/modules/) if any
    package: str | None = None
    version: str | None = None  # the package's Debian version
    config_lsm: str | None = None  # CONFIG_LSM of the kernel's config, where shipped

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["image"], d["root"] = str(self.image), str(self.root) if self.root else None
        return d

    @property
    def release_tuple(self) -> tuple[int, int] | None:
        m = re.match(r"^(\d+)\.(\d+)", self.release)
        return (int(m.group(1)), int(m.group(2))) if m else None


def kernels_dir() -> Path:
    return cache_home() / "guest" / "kernels"


def image_release(image: Path) -> str:
    """`uname -r` of a bzImage, from its setup header (the kernel_version string the boot
    protocol points at: offset 0x20e holds its address minus 0x200)."""
    with open(image, "rb") as f:
        head = f.read(0x4000)
    if len(head) < 0x210 or head[0x202:0x206] != b"HdrS":
        raise BadInput(f"--kernel {image}: not an x86 bzImage (no HdrS boot header)")
    (ptr,) = struct.unpack_from("<H", head, 0x20E)
    with open(image, "rb") as f:
        f.seek(ptr + 0x200)
        text = f.read(256).split(b"\0", 1)[0].decode(errors="replace")
    if not text.strip():
        raise BadInput(f"--kernel {image}: the boot header names no kernel version")
    return text.split()[0]


def _tool(name: str, package: str) -> str:
    path = shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), SBIN]))
    if not path:
        raise MissingCapability(f"readbench guest needs `{name}`: apt-get install {package}")
    return path


def _run(cmd: list[str], what: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if p.returncode != 0:
        err = (p.stderr or p.stdout).strip().splitlines()
        raise MissingCapability(f"{what} failed (exit {p.returncode}): {' | '.join(err[-3:])}")
    return p


def _apt_names(prefix: str) -> list[str]:
    apt_cache = _tool("apt-cache", "apt")
    p = subprocess.run([apt_cache, "pkgnames", prefix], capture_output=True, text=True)
    return p.stdout.split()


_updated = False


def _apt_update_once() -> bool:
    """`apt-get update` once per process, as root, when a lookup found nothing: a machine
    that never ran it has empty package lists."""
    global _updated
    if _updated or os.geteuid() != 0:
        return False
    _updated = True
    _run([_tool("apt-get", "apt"), "update", "-qq"], "apt-get update")
    return True


def resolve_alias(alias: str) -> str:
    """The newest Debian package an alias (KERNEL_ALIASES) stands for."""
    rx = re.compile(KERNEL_ALIASES[alias])
    prefix = rx.pattern.lstrip("^").split("\\", 1)[0]
    for _ in range(2):
        found = [(int(m.group(1)), n) for n in _apt_names(prefix) if (m := rx.match(n))]
        if found:
            return max(found)[1]
        if not _apt_update_once():
            break
    raise BadInput(
        f"--kernel {alias}: no package matching {rx.pattern} in this machine's apt lists "
        "(apt-get update, or name the package)"
    )


def fetch_package(package: str) -> Path:
    """The unpacked root of a Debian kernel package, fetched and unpacked once."""
    if not re.fullmatch(r"linux-image-[A-Za-z0-9.+~-]+", package):
        raise BadInput(
            f"--kernel {package!r}: not a kernel image path, an alias "
            f"({', '.join(KERNEL_ALIASES)}), 'running' or a linux-image-* package name"
        )
    dest = kernels_dir() / package
    if (dest / "kernel.json").is_file():
        return dest
    apt_get = _tool("apt-get", "apt")
    dpkg_deb = _tool("dpkg-deb", "dpkg")
    depmod = _tool("depmod", "kmod")
    kernels_dir().mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=kernels_dir(), prefix=f".{package}."))
    try:
        for attempt in range(2):
            p = subprocess.run(
                [apt_get, "-q", "download", package], cwd=tmp, capture_output=True, text=True
            )
            if p.returncode == 0:
                break
            if attempt == 0 and "Unable to locate" in p.stderr and _apt_update_once():
                continue
            msg = " | ".join(p.stderr.strip().splitlines()[-2:])
            if "Unable to locate" in p.stderr or "has no installation candidate" in p.stderr:
                raise BadInput(f"--kernel {package}: apt knows no such package ({msg})")
            raise MissingCapability(f"apt-get download {package} failed: {msg}")
        deb = next(tmp.glob("*.deb"))
        version = _run([dpkg_deb, "-f", str(deb), "Version"], "dpkg-deb -f").stdout.strip()
        _run([dpkg_deb, "-x", str(deb), str(tmp / "root")], f"dpkg-deb -x {deb.name}")
        deb.unlink()
        images = sorted((tmp / "root" / "boot").glob("vmlinuz-*"))
        if not images:
            raise BadInput(f"--kernel {package}: the package holds no boot/vmlinuz-*")
        release = image_release(images[0])
        mods = tmp / "root" / "lib" / "modules" / release
        if mods.is_dir():
            _run([depmod, "-a", "-b", str(tmp / "root"), release], f"depmod for {release}")
        info = {
            "package": package,
            "version": version,
            "release": release,
            "image": str(images[0].relative_to(tmp)),
        }
        (tmp / "kernel.json").write_text(json.dumps(info, indent=1) + "\n")
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(dest)  # a half-made one from an older readbench
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _config_lsm(config: Path) -> str | None:
    try:
        for line in config.read_text().splitlines():
            if line.startswith("CONFIG_LSM="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        return None
    return None


def resolve(spec: str) -> GuestKernel:
    """A kernel image path, a Debian package name, an alias (debian-6.1, debian-6.12) or
    'running' -> the kernel a guest boots. BadInput names the spec and the rule."""
    if spec == "running":
        rel = platform.release()
        image = Path(f"/boot/vmlinuz-{rel}")
        if not os.access(image, os.R_OK):
            raise MissingCapability(
                f"--kernel running: the running kernel's image {image} is not readable here "
                "(no /boot image on this machine); name a package or an image instead"
            )
        return GuestKernel(
            image,
            image_release(image),
            f"the running kernel ({image})",
            config_lsm=_config_lsm(Path(f"/boot/config-{rel}")),
        )
    path = Path(spec)
    if "/" in spec or path.is_file():
        if not path.is_file():
            raise BadInput(f"--kernel {spec}: no such kernel image")
        rel = image_release(path)
        root = path.resolve().parent.parent
        config = path.resolve().parent / f"config-{rel}"
        return GuestKernel(
            path.resolve(),
            rel,
            f"kernel image {path}",
            root=root if (root / "lib" / "modules" / rel).is_dir() else None,
            config_lsm=_config_lsm(config),
        )
    package = resolve_alias(spec) if spec in KERNEL_ALIASES else spec
    dest = fetch_package(package)
    info = json.loads((dest / "kernel.json").read_text())
    root = dest / "root"
    return GuestKernel(
        image=dest / info["image"],
        release=info["release"],
        source=f"Debian package {package} {info['version']} (apt-get download, unpacked in "
        f"{root}; not installed)",
        root=root,
        package=package,
        version=info["version"],
        config_lsm=_config_lsm(root / "boot" / f"config-{info['release']}"),
    )
