"""Only here because cffi_modules cannot be declared in pyproject.toml."""

from setuptools import setup

setup(
    cffi_modules=[
        "readbench/_build_readloop.py:ffi",
        "readbench/_build_copy.py:ffi",
    ]
)
