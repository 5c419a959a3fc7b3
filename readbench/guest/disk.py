"""The guest's data disk: an ext4 image on a virtio-blk device, so that `uncached` and
`direct` in a guest read from a block device through the page cache or around it (the
guest's root is the host's, shared over 9p, where neither means what it says).

The image is built once on the host with `mkfs.ext4 -d`, holding the data files of the
fixed-size workloads (written by readbench.measure.datafiles, so they are the files a host
run would use), and booted with QEMU's snapshot=on: the guest may write to it (the larger
stream file is made there when a run needs it), and the cached image never changes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from readbench.errors import MissingCapability
from readbench.guest.kernels import SBIN
from readbench.measure import datafiles
from readbench.store.cache import cache_home

LABEL = "rbdata"
DATA_SUBDIR = "data"  # where the data files sit inside the image
IMAGE_BYTES = 3 << 30  # sparse: room for the prebuilt files and a stream file made inside
LAYOUT_VERSION = 1  # bump when the files in the image change
PREBUILT = ("cached", "uncached")  # direct reads uncached's file


def image_path() -> Path:
    return cache_home() / "guest" / "disks" / f"data-v{LAYOUT_VERSION}.ext4"


def data_disk() -> Path:
    """The ext4 image with the data files, built once (atomically) in the cache."""
    img = image_path()
    if img.is_file():
        return img
    mkfs = shutil.which("mkfs.ext4", path=os.pathsep.join([os.environ.get("PATH", ""), SBIN]))
    if not mkfs:
        raise MissingCapability("the guest data disk needs mkfs.ext4: apt-get install e2fsprogs")
    img.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=img.parent, prefix=".stage-") as stage:
        data = Path(stage) / DATA_SUBDIR
        data.mkdir()
        for w in PREBUILT:
            datafiles.ensure(data, w)
        fd, tmp = tempfile.mkstemp(dir=img.parent, prefix=".data-", suffix=".ext4")
        os.close(fd)
        try:
            os.truncate(tmp, IMAGE_BYTES)
            p = subprocess.run(
                [mkfs, "-q", "-F", "-L", LABEL, "-d", stage, "-E", "root_owner=0:0", tmp],
                capture_output=True,
                text=True,
                check=False,
            )
            if p.returncode != 0:
                raise MissingCapability(f"mkfs.ext4 -d failed: {p.stderr.strip()[-300:]}")
            os.replace(tmp, img)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return img
