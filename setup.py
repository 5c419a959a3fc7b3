"""setup.py exists for what pyproject.toml cannot declare: the cffi modules (the C read loops
and copy replicas, built from workloads/ by readbench/_cffi_build.py)."""

from setuptools import setup

setup(
    cffi_modules=[
        "readbench/_cffi_build.py:readloop_ffi",
        "readbench/_cffi_build.py:replicas_ffi",
    ],
)
