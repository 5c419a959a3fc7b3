"""/proc/kallsyms: the one reader of kernel symbols (the probe, the hook resolver, the atlas
and sample attribution all use it)."""

from __future__ import annotations

import bisect
import functools
import os
from collections.abc import Iterable
from dataclasses import dataclass

from readbench.model.layers import USER_FRAME

UNKNOWN = "[unknown]"


def read_kallsyms(path: str | os.PathLike[str] = "/proc/kallsyms") -> list[tuple[int, str, str]]:
    """(address, type, name) for every line; addresses are 0 when kptr_restrict hides them."""
    out = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3:
                out.append((int(parts[0], 16), parts[1], parts[2]))
    return out


@functools.cache
def running_kallsyms() -> tuple[tuple[int, str, str], ...]:
    """/proc/kallsyms of the running kernel, parsed once per process (~120k lines, ~0.1 s)."""
    return tuple(read_kallsyms())


def kallsyms_names(path: str | os.PathLike[str] = "/proc/kallsyms") -> set[str] | None:
    try:
        return {name for _, _, name in read_kallsyms(path)}
    except OSError:
        return None


def function_names() -> frozenset[str]:
    """Text symbols (functions) of the running kernel."""
    return frozenset(n for _, t, n in running_kallsyms() if t in "tT")


@dataclass(frozen=True)
class Symbolized:
    ip: int
    kernel: bool
    sym: str


# Symbols that end a text region: an address past one of them (and below the next symbol) is
# in no function kallsyms knows, e.g. a BPF program loaded after kallsyms was read.
END_MARKERS = frozenset({"_etext", "_einittext"})


class Kallsyms:
    """Address -> function for kernel text, from /proc/kallsyms (sorted, bisect)."""

    def __init__(self, entries: Iterable[tuple[int, str, str]]) -> None:
        text = sorted((a, n) for a, t, n in entries if t in "tTwW" and a)
        self.addrs = [a for a, _ in text]
        self.names = [n for _, n in text]
        self.by_name = {n: a for a, n in text}

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> Kallsyms:
        """From a kallsyms file, or (None) the running kernel's, parsed once per process."""
        return cls(running_kallsyms() if path is None else read_kallsyms(path))

    @classmethod
    def fresh(cls) -> Kallsyms:
        """The running kernel's, read now: with the BPF programs and modules loaded since."""
        return cls(read_kallsyms())

    def lookup(self, ip: int) -> str:
        i = bisect.bisect_right(self.addrs, ip) - 1
        if i < 0 or (self.names[i] in END_MARKERS and self.addrs[i] != ip):
            return UNKNOWN
        return self.names[i]

    def symbolize(self, ip: int, kernel: bool) -> Symbolized:
        return Symbolized(ip, kernel, self.lookup(ip) if kernel else USER_FRAME)
