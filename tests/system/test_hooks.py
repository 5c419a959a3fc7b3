"""BPF hooks: names, availability, and real programs attached around the real C read loops.

The attach tests load programs into this test process and drive readbench's ReadLoop:
what the BPF maps say (counts, size histograms, hashes of the bytes read) must equal
what the loop did and what landed in its user buffer.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from readbench.bpf import abi, hookplan, support
from readbench.bpf.attach import attach_hook, verify
from readbench.errors import BadInput, MissingCapability
from readbench.measure.readloop import SYSCALL_OF, ReadLoop
from readbench.model import hookspec
from tests.conftest import ALLOWED_IN_STRICT, require

FILE_SIZE = 2 << 20
LOOPS = 4000


@pytest.fixture(scope="module")
def data_file(data_dir: Path) -> Path:
    p = data_dir / "hooks-2MiB.bin"
    if not p.exists() or p.stat().st_size != FILE_SIZE:
        tmp = p.with_suffix(".tmp")
        # Distinct 64-byte chunks, so hashes identify offsets.
        tmp.write_bytes(os.urandom(FILE_SIZE))
        tmp.rename(p)
    return p


@pytest.fixture(scope="module")
def probe() -> dict:
    require(os.geteuid() == 0, "needs root (BPF)")
    return support.attach_type_support()


def need(probe: dict, attach: str) -> None:
    require(probe[attach]["available"], f"{attach} not available here: {probe[attach]['reason']}")


def loop_for(workload: str, size: int, data_file: Path) -> ReadLoop:
    return ReadLoop(workload, size, None if workload == "pipe" else data_file)


def sc(workload: str) -> str:
    return SYSCALL_OF[workload]


# ---- applicability (kallsyms: the running kernel's functions) -------------------------


def test_tracepoint_of_other_syscall_is_not_applicable() -> None:
    ok, why = support.availability("tp:syscalls/sys_enter_pread64", "pipe")
    assert not ok and why.startswith(hookspec.NOT_APPLICABLE)
    assert "pread64" in why and "read()" in why and "sys_enter_read" in why


def test_function_off_the_workload_path_is_not_applicable() -> None:
    ok, why = support.availability("fentry:filemap_read", "pipe")
    assert not ok and "not on the pipe read path" in why
    assert why.startswith(hookspec.NOT_APPLICABLE)
    ok, why = support.availability("kprobe:_copy_to_iter", "direct")
    assert not ok and "not on the direct read path" in why


def test_attach_rejects_inapplicable_hook_as_bad_input() -> None:
    with pytest.raises(BadInput, match="traces pread64"):
        attach_hook("tp:syscalls/sys_enter_pread64", tgid=os.getpid(), workload="pipe")


def test_pre_6_4_copy_routines_resolved_against_kallsyms() -> None:
    syms = hookplan.kernel_functions()
    for name in hookspec.PRE64_ROUTINES:
        ok, why = support.availability(f"kprobe:{name}", "cached")
        if name not in syms:
            assert not ok and "no function" in why and name in why
    # pipe_read / anon_pipe_read: whichever this kernel has
    resolved = hookplan.resolve_target("pipe_read")
    assert resolved in (*hookspec.PIPE_READ_NAMES, None)
    if resolved is not None:
        assert resolved in syms
    assert hookplan.resolve_target("pipe_read") == hookplan.resolve_target("anon_pipe_read")


def test_none_is_always_available_and_attaches_nothing() -> None:
    assert support.availability("none", "cached") == (True, "no hook")
    with attach_hook("none", tgid=os.getpid(), workload="cached") as h:
        snap = h.snapshot()
    assert snap["hook"] == "none" and snap["programs"] == []


# ---- probing the kernel ------------------------------------------------------------


def test_probe_reports_every_attach_type(probe: dict) -> None:
    assert set(probe) == set(hookspec.ATTACH_TYPES)
    for a, r in probe.items():
        assert isinstance(r["available"], bool), a
        assert r["reason"], a
        if not r["available"]:
            # the kernel's verdict, not a guess: errno number, name and meaning
            assert "refused by kernel: errno" in r["reason"] or "no function" in r["reason"]
            if "EPERM" in r["reason"] and os.geteuid() == 0:
                # root holds the capabilities, so they must not be named as the cause
                assert "needs CAP_BPF" not in r["reason"], r["reason"]
    assert support.attach_type_support() is not probe  # fresh dict, cached trials
    assert support.attach_type_support() == probe


@pytest.mark.parametrize("attach", ["fentry", "fexit", "kprobe", "kretprobe"])
def test_function_hooks_refused_or_counted(attach: str, probe: dict, data_file: Path) -> None:
    """Where the kernel refuses (this VM: fentry/fexit EPERM, kprobes ENOENT), every
    entry point reports the kernel's errno; where it accepts, the hook counts reads."""
    spec = f"{attach}:vfs_read:count"
    if not probe[attach]["available"]:
        reason = probe[attach]["reason"]
        m = __import__("re").search(r"errno (\d+) (E[A-Z]+) \(", reason)
        assert m, reason
        assert errno.errorcode[int(m.group(1))] == m.group(2)
        ok, why = support.availability(spec, "cached")
        assert not ok and f"errno {m.group(1)} {m.group(2)}" in why
        with pytest.raises(MissingCapability, match=f"errno {m.group(1)} {m.group(2)}") as ei:
            attach_hook(spec, tgid=os.getpid(), workload="cached")
        assert ei.value.exit_code == 3
        assert hookspec.parse(spec).name not in support.default_hooks(["cached"])
        return
    with (
        loop_for("cached", 64, data_file) as rl,
        attach_hook(spec, tgid=os.getpid(), workload="cached") as h,
    ):
        before = h.snapshot()["count"]
        r = rl.run(LOOPS)
        assert h.snapshot()["count"] - before == r.ops


# ---- real programs around the real loops -------------------------------------------

CASES = [("cached", 64), ("cached", 17), ("pipe", 100), ("cached-stream", 4096)]


def _hooks_for(workload: str, attach: str) -> list[str]:
    if attach == "tp":
        return [f"tp:syscalls/sys_enter_{sc(workload)}", f"tp:syscalls/sys_exit_{sc(workload)}"]
    return [f"{attach}:sys_enter", f"{attach}:sys_exit"]


@pytest.mark.parametrize("attach", ["tp", "rawtp", "tpbtf"])
@pytest.mark.parametrize(("workload", "size"), [*CASES, ("uncached", 4096), ("direct", 4096)])
def test_count_equals_syscalls(
    attach: str, workload: str, size: int, probe: dict, data_file: Path
) -> None:
    need(probe, attach)
    with loop_for(workload, size, data_file) as rl:
        for base in _hooks_for(workload, attach):
            with attach_hook(f"{base}:count", tgid=os.getpid(), workload=workload) as h:
                c0 = h.snapshot()["count"]
                r = rl.run(LOOPS)
                c1 = h.snapshot()["count"]
            assert r.ops == LOOPS
            assert c1 - c0 == r.syscalls, base
            if workload != "pipe":
                assert r.syscalls == r.ops


@pytest.mark.parametrize("attach", ["tp", "rawtp", "tpbtf"])
@pytest.mark.parametrize(("workload", "size"), CASES)
def test_hist_buckets_match_requested_size(
    attach: str, workload: str, size: int, probe: dict, data_file: Path
) -> None:
    need(probe, attach)
    bucket = size.bit_length() - 1
    with loop_for(workload, size, data_file) as rl:
        enter, exit_ = _hooks_for(workload, attach)
        with attach_hook(f"{enter}:hist", tgid=os.getpid(), workload=workload) as h:
            b0 = {x["bucket"]: x["count"] for x in h.snapshot()["hist_size"]}
            r = rl.run(LOOPS)
            snap = h.snapshot()
        got = Counter({x["bucket"]: x["count"] for x in snap["hist_size"]})
        got.subtract(b0)
        assert sum(got.values()) == r.syscalls
        # every op's first read asks for `size`; pipe top-ups ask for less
        assert got[bucket] >= r.ops
        assert all(b <= bucket for b, n in got.items() if n)
        assert snap["hist_lat_ns"] == []  # enter alone cannot time anything
        assert len(snap["programs"]) == 1

        # named exit: an enter companion records size and time, the exit the latency
        with attach_hook(f"{exit_}:hist", tgid=os.getpid(), workload=workload) as h:
            s0 = h.snapshot()
            r = rl.run(LOOPS)
            s1 = h.snapshot()
        lat = sum(x["count"] for x in s1["hist_lat_ns"]) - sum(
            x["count"] for x in s0["hist_lat_ns"]
        )
        assert lat == r.syscalls
        size_n = {x["bucket"]: x["count"] for x in s1["hist_size"]}
        size_0 = {x["bucket"]: x["count"] for x in s0["hist_size"]}
        assert size_n.get(bucket, 0) - size_0.get(bucket, 0) >= r.ops
        assert {p["role"] for p in s1["programs"]} == {"enter", "exit"}


def _expected_hashes(workload: str, size: int, buf: bytes, data: bytes, ops: int) -> Counter:
    n = min(size, abi.INSPECT_MAX)
    if workload == "cached":
        # every op reads the same bytes at offset 0: they are what the buffer holds
        assert buf == data[:size]
        return Counter({abi.fnv1a64(buf[:n]): ops})
    if workload == "cached-stream":
        chunks = len(data) // size  # the loop wraps before a partial chunk
        return Counter(abi.fnv1a64(data[(i % chunks) * size :][:n]) for i in range(ops))
    raise AssertionError(workload)


@pytest.mark.parametrize("attach", ["tp", "rawtp", "tpbtf"])
@pytest.mark.parametrize("named", ["enter", "exit"])
@pytest.mark.parametrize(("workload", "size"), CASES)
def test_inspect_hashes_what_was_read(
    attach: str, named: str, workload: str, size: int, probe: dict, data_file: Path
) -> None:
    need(probe, attach)
    data = data_file.read_bytes()
    enter, exit_ = _hooks_for(workload, attach)
    spec = f"{enter if named == 'enter' else exit_}:inspect"
    # a fresh loop: the stream starts at offset 0, so expected chunks are known
    with (
        loop_for(workload, size, data_file) as rl,
        attach_hook(spec, tgid=os.getpid(), workload=workload) as h,
    ):
        s0 = h.snapshot()["inspect"]
        r = rl.run(LOOPS)
        s1 = h.snapshot()["inspect"]
        buf = rl.buffer()  # what the last read left in the user buffer
    got = Counter({int(k, 16): v for k, v in s1["hashes"].items()})
    got.subtract({int(k, 16): v for k, v in s0["hashes"].items()})
    got = +got
    assert s1["events"] - s0["events"] == r.syscalls
    assert s1["faults"] == 0 and s1["skipped"] == s0["skipped"]
    if workload == "pipe":
        # the writer fills the pipe with 0x5a; a top-up read may deliver < 64 bytes
        assert buf == b"\x5a" * size
        allowed = {abi.fnv1a64(b"\x5a" * k) for k in range(1, abi.INSPECT_MAX + 1)}
        assert set(got) <= allowed
        assert got[abi.fnv1a64(b"\x5a" * min(size, 64))] >= r.ops - (r.syscalls - r.ops)
        assert sum(got.values()) == r.syscalls
    else:
        assert got == _expected_hashes(workload, size, buf, data, r.ops)
        assert s1["bytes_seen"] - s0["bytes_seen"] == r.ops * min(size, 64)


@pytest.mark.parametrize("attach", ["tp", "rawtp", "tpbtf"])
def test_empty_body_is_just_the_filter(attach: str, probe: dict, data_file: Path) -> None:
    """`empty` must not carry the other bodies' code: the verifier drops the branches
    the read-only config turns off, so it is the smallest program, and touches no map."""
    need(probe, attach)
    name = _hooks_for("cached", attach)[0]
    sizes = {}
    with loop_for("cached", 64, data_file) as rl:
        for body in hookspec.BODIES:
            with attach_hook(f"{name}:{body}", tgid=os.getpid(), workload="cached") as h:
                rl.run(1000)
                snap = h.snapshot()
            enter = [p for p in snap["programs"] if p["role"] == "enter"]
            sizes[body] = enter[0]["xlated_len"]
            if body == "empty":
                assert len(snap["programs"]) == 1
                assert snap["counts"] == {"enter": 0, "exit": 0}
                assert snap["hist_size"] == [] and snap["inspect"]["events"] == 0
    assert sizes["empty"] < sizes["count"] < sizes["hist"]
    assert sizes["empty"] <= 40 * 8  # a few dozen instructions: filters + return 0


def test_stats_pass_counts_runs_and_is_fd_scoped(probe: dict, data_file: Path) -> None:
    need(probe, "rawtp")

    def stats_fds() -> int:
        n = 0
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                n += os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:bpf-stats"
        return n

    base = stats_fds()
    with loop_for("cached", 64, data_file) as rl:
        with attach_hook(
            "rawtp:sys_enter:count", tgid=os.getpid(), workload="cached", stats=True
        ) as h:
            assert stats_fds() == base + 1
            p0 = h.snapshot()["programs"][0]
            r = rl.run(LOOPS)
            snap = h.snapshot()
        p1 = snap["programs"][0]
        assert snap["stats_enabled"] is True
        assert p1["type"] == "raw_tracepoint" and p1["name"] == "rawtp_enter"
        # raw sys_enter runs for every syscall on the machine; ours are a subset
        assert p1["run_cnt"] - p0["run_cnt"] >= r.syscalls
        assert p1["run_time_ns"] > p0["run_time_ns"]
        assert p1["recursion_misses"] == 0
    assert stats_fds() == base
    json.dumps(snap)  # JSON-able as the contract says


def test_other_process_is_filtered_out(probe: dict, data_file: Path) -> None:
    """tgid filter: a hook for another tgid sees none of our reads."""
    need(probe, "rawtp")
    with (
        loop_for("cached", 64, data_file) as rl,
        attach_hook("rawtp:sys_enter:count", tgid=1, workload="cached") as h,
    ):
        before = h.snapshot()["count"]
        rl.run(LOOPS)
        # pid 1 may read things meanwhile, but never LOOPS preads in this window
        assert h.snapshot()["count"] - before < LOOPS


def test_default_hooks(probe: dict) -> None:
    ws = ["cached", "pipe"]
    d = support.default_hooks(ws)
    assert d[0] == "none"
    assert len(d) == len(set(d))
    for name in d[1:]:
        spec = hookspec.parse(name)
        assert spec.name == name
        assert spec.body in ("empty", "inspect")
        assert probe[spec.attach]["available"]
        assert any(support.availability(spec, w)[0] for w in ws)
    for a in hookspec.ATTACH_TYPES:
        has = any(n.startswith(a + ":") for n in d)
        assert has == probe[a]["available"], a
    if probe["tp"]["available"]:
        assert "tp:syscalls/sys_enter_pread64:inspect" in d
        assert "tp:syscalls/sys_enter_read:empty" in d


def test_catalogue_lists_every_point_with_reason(probe: dict) -> None:
    rows = support.catalogue()
    names = {r["hook"] for r in rows}
    assert "rawtp:sys_enter" in names and "kprobe:rep_movs_alternative" in names
    for r in rows:
        assert isinstance(r["available"], bool) and r["reason"]
        if not probe[r["attach"]]["available"]:
            assert not r["available"]


# ---- SIGKILL leaves nothing behind -------------------------------------------------

CHILD = """
import json, os, sys, time
from readbench.bpf.attach import attach_hook
hs = [attach_hook(n, tgid=os.getpid(), workload="cached", stats=True) for n in sys.argv[1:]]
ids = [i for h in hs for i in h.program_ids()]
print(json.dumps(ids), flush=True)
time.sleep(600)
"""


def _bpftool(*args: str) -> list[dict]:
    out = subprocess.run(
        ["bpftool", "-j", *args], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out or "[]")


def test_sigkill_detaches_everything(probe: dict) -> None:
    import shutil

    require(shutil.which("bpftool") is not None, "needs bpftool (apt-get install bpftool)")
    names = [
        n
        for n in (
            "rawtp:sys_enter:count",
            "tpbtf:sys_exit:inspect",
            "tp:syscalls/sys_enter_pread64:hist",
        )
        if probe[n.split(":")[0]]["available"]
    ]
    require(bool(names), "no attach type available")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, *names],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        line = child.stdout.readline()  # type: ignore[union-attr]
        ids = set(json.loads(line))
        assert ids, "child attached nothing"
        linked = {lk.get("prog_id") for lk in _bpftool("link", "list")}
        assert ids <= linked, (ids, linked)  # every program is attached through a link
        assert ids <= {p["id"] for p in _bpftool("prog", "list")}
    finally:
        child.kill()  # SIGKILL: no Python cleanup, no atexit
        child.wait()
    assert child.returncode == -9
    deadline = time.monotonic() + 10
    while True:
        left_links = ids & {lk.get("prog_id") for lk in _bpftool("link", "list")}
        left_progs = ids & {p["id"] for p in _bpftool("prog", "list")}
        if not left_links and not left_progs:
            break
        # freeing is deferred (RCU) but quick; 10 s means something is still held
        assert time.monotonic() < deadline, (left_links, left_progs)
        time.sleep(0.1)
    # nothing pinned either
    pinned = subprocess.run(
        ["bash", "-c", "ls -R /sys/fs/bpf 2>/dev/null | grep -i readbench || true"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    assert pinned == ""


def test_cmd_hooks_json(probe: dict, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from readbench.cli import hooks

    p = argparse.ArgumentParser()
    hooks.add_parser(p.add_subparsers())
    args = p.parse_args(["hooks", "--json"])
    assert args.func(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["attach_types"] == json.loads(json.dumps(probe))
    assert data["default_hooks"][0] == "none"
    by_hook = {r["hook"]: r for r in data["catalogue"]}
    assert by_hook["rawtp:sys_enter"]["available"] == probe["rawtp"]["available"]
    # text mode names every refused row's reason
    args = p.parse_args(["hooks"])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    for a, r in probe.items():
        assert ("yes" if r["available"] else "NO ") in text.split(f"  {a:10} ", 1)[1][:4]


def test_cli_hooks_subcommand(probe: dict) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "readbench", "hooks", "--json"],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert r.returncode == 0, r.stderr
    assert set(json.loads(r.stdout)["attach_types"]) == set(hookspec.ATTACH_TYPES)


def _function_specs() -> list[str]:
    out = []
    for a in ("fentry", "fexit", "kprobe", "kretprobe"):
        targets = (
            hookspec.TRAMPOLINE_TARGETS if a in ("fentry", "fexit") else hookspec.KPROBE_TARGETS
        )
        for t in targets:
            if t == "pipe_read":
                continue  # alias of anon_pipe_read, resolved per kernel
            out += [f"{a}:{t}:{b}" for b in hookspec.BODIES]
    return out


@pytest.mark.parametrize("name", _function_specs())
def test_function_hook_programs_pass_the_verifier_or_load_is_refused(
    name: str, probe: dict
) -> None:
    """Where only attaching is refused (kprobes here), the programs still go through the
    verifier: every target kind and body must be accepted. Where loading itself is
    refused (fentry/fexit here), the refusal carries the kernel's errno."""
    spec = hookspec.parse(name)
    if hookplan.resolve_target(spec.target) is None:
        require(False, f"{ALLOWED_IN_STRICT} kernel has no {spec.target} (other kernel version)")
    workload = next(w for w in SYSCALL_OF if hookspec.applicable(spec, w) is None)
    try:
        progs = verify(spec, workload)
    except MissingCapability as e:
        types = {spec.attach, hookspec.companion_type(spec) or spec.attach}
        assert any(not probe[t]["available"] for t in types), str(e)
        assert "errno" in str(e)
        return
    assert progs and all(p["xlated_len"] > 0 for p in progs)
    roles = {p["role"] for p in progs}
    assert spec.side in roles
    if spec.body == "inspect":
        assert "exit" in roles


def test_classic_tracepoint_mounts_missing_tracefs(probe: dict) -> None:
    """Without tracefs a classic tracepoint has no id to attach to: the loader mounts it in
    a mount namespace of its own, so the host's mount table is left as it was. The test
    itself unmounts tracefs only inside a private namespace (unshare -m)."""
    import shutil

    need(probe, "tp")
    require(shutil.which("unshare") is not None, "needs unshare (util-linux)")
    code = (
        "import os; from readbench.bpf.attach import attach_hook; "
        "h = attach_hook('tp:syscalls/sys_enter_pread64:count', tgid=os.getpid(), "
        "workload='cached'); print(h.snapshot()['notes']); h.close()"
    )
    script = (
        "umount /sys/kernel/tracing 2>/dev/null; umount /sys/kernel/debug 2>/dev/null; "
        "test ! -d /sys/kernel/tracing/events || exit 99; "
        f'{sys.executable} -c "{code}"; '
        # the attaching process's mount was private to it: this namespace still has none
        "test ! -d /sys/kernel/tracing/events || exit 98"
    )
    r = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert r.returncode == 0, r.stderr
    assert "mounted tracefs at /sys/kernel/tracing (private to this process)" in r.stdout


@pytest.mark.parametrize("name", ["rawtp:sys_enter:count", "tp:syscalls/sys_enter_pread64:count"])
def test_floor_variant_runs_but_never_matches(name: str, probe: dict, data_file: Path) -> None:
    """floor=True: same program and attach point with a filter that never matches. It
    must run for each of our preads (stats on) and count none of them."""
    need(probe, name.split(":")[0])
    with (
        loop_for("cached", 64, data_file) as rl,
        attach_hook(name, tgid=os.getpid(), workload="cached", stats=True, floor=True) as h,
    ):
        s0 = h.snapshot()
        r = rl.run(LOOPS)
        s1 = h.snapshot()
    assert s1["floor"] is True
    assert s1["count"] == s0["count"] == 0
    assert s1["programs"][0]["run_cnt"] - s0["programs"][0]["run_cnt"] >= r.ops
