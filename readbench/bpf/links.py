"""What readbench's hooks (readbench.bpf.attach) and the atlas's counting program
(readbench.bpf.points) share: a loaded BPF object whose links are fds of this process only
(never pinned: a crash or SIGKILL detaches everything), toggled without reloading: the paired
design detaches and re-attaches the links between values, the programs and maps stay."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import Any

from readbench.bpf import binding

# The filter value of a program attached for no process: tgids never exceed PID_MAX_LIMIT
# (4M), so the program runs and matches nothing (the probe's trials, the BPF-stats floor).
NO_TGID = 0xFFFFFFFF


class Attachment(ABC):
    """A loaded object and its links. Subclasses load in __init__ and say how to attach."""

    def __init__(self) -> None:
        self._obj: binding.Object | None = None
        self._links: list[binding.Link] = []
        self._stats_fd = -1

    @abstractmethod
    def _attach(self) -> list[binding.Link]:
        """Attach every program the object holds for this hook; on a refusal, destroy what
        was attached and raise."""

    @property
    def attached(self) -> bool:
        return bool(self._links)

    def reattach(self) -> None:
        """Attach again (after detach(), or the first time)."""
        if not self._links and self._obj is not None:
            self._links = self._attach()

    def detach(self) -> None:
        """Destroy the links, newest first; keep the programs loaded and the maps intact."""
        for link in reversed(self._links):
            link.destroy()
        self._links = []

    def _release(self) -> None:
        """What a subclass holds beside the object (a mapping of its .bss): nothing here."""
        return None

    def close(self) -> None:
        self.detach()
        self._release()
        if self._obj is not None:
            self._obj.close()
            self._obj = None
        if self._stats_fd >= 0:
            os.close(self._stats_fd)
            self._stats_fd = -1

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
