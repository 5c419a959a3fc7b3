"""setup.py exists for two things pyproject.toml cannot declare: the cffi modules (the C read
loops and copy replicas), and shipping the BPF sources of bpf/ inside the wheel, so that a
non-editable `pip install .` can still build the hooks on first use."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildPyWithBpf(build_py):
    def run(self) -> None:
        super().run()
        dest = Path(self.build_lib) / "readbench" / "bpf_src"
        dest.mkdir(parents=True, exist_ok=True)
        for src in sorted((ROOT / "bpf").glob("*.bpf.c")) + sorted((ROOT / "bpf").glob("*.h")):
            if src.name != "vmlinux.h":  # generated per kernel at first use
                shutil.copy2(src, dest / src.name)


setup(
    cffi_modules=[
        "readbench/_build_readloop.py:ffi",
        "readbench/_build_copy.py:ffi",
    ],
    cmdclass={"build_py": BuildPyWithBpf},
)
