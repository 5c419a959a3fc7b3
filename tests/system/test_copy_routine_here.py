"""The copy-routine model on this machine: its prediction against kallsyms and CPUID, and the
probe's kernel-text check."""

from __future__ import annotations

import os
import platform

import pytest

from readbench.copy.cpuid import cpuid_flags
from readbench.kernel import copyroutine, ksyms


@pytest.mark.skipif(platform.machine() != "x86_64", reason="not-on-this-kind: x86-64 only")
def test_this_machine_prediction_matches_kallsyms() -> None:
    """The running kernel's symbols agree with what the model predicts for its flags."""
    p = copyroutine.identify(cpuid_flags())
    assert p["kallsyms_check"]["status"] == "consistent", p["kallsyms_check"]
    ids = cpuid_flags()
    assert ids is not None and ids <= {"erms", "fsrm"}
    assert p["cpuid"]["read"] is True
    if not p["inline"]:
        assert p["symbol"] in (ksyms.kallsyms_names() or set())


def test_probe_reports_text_check() -> None:
    t = copyroutine.identify()["text_check"]
    if not os.path.exists("/proc/kcore"):
        assert t["status"] in ("unreadable", "unchecked") and t.get("reason")
    else:
        assert t["status"] in ("consistent", "unreadable", "unchecked"), t
