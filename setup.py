"""setup.py exists for what pyproject.toml cannot declare: the cffi modules (the C read loops
and copy replicas, built from workloads/ by readbench/_cffi_build.py), and the BPF C sources
of bpf/ copied into a wheel as package data (readbench/bpf/src/), since they are compiled on
the user's machine against its own kernel's BTF. An editable install reads bpf/ in place."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithBpf(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        dest = Path(self.build_lib) / "readbench" / "bpf" / "src"
        dest.mkdir(parents=True, exist_ok=True)
        for src in sorted([*Path("bpf").glob("*.bpf.c"), *Path("bpf").glob("*.h")]):
            self.copy_file(str(src), str(dest / src.name))


setup(
    cmdclass={"build_py": BuildPyWithBpf},
    cffi_modules=[
        "readbench/_cffi_build.py:readloop_ffi",
        "readbench/_cffi_build.py:replicas_ffi",
    ],
)
