"""Run a readbench command inside a QEMU guest (design §7b), with virtme-ng: the host's root
file system shared read-only, the guest kernel's own modules, a writable cache and results
directory, the data files on an ext4 virtio-blk disk, and `bpf` in the kernel's lsm= list.

Acceleration is decided by trying: KVM when a guest really boots under it (a stock kernel
hangs under a paravirtual /dev/kvm such as kvm_pvm, so a short trial boot is the only
honest test; its verdict is cached per host boot), else TCG, said plainly. Under TCG every
time is emulated: the guest's probe, and so every manifest, report and `compare`, records
it (READBENCH_GUEST below).

No guest outlives the command: QEMU runs in a process group of its own, and a watchdog
process that dies with this one (PR_SET_PDEATHSIG) kills that group, whether this process
exits, is interrupted, or is SIGKILLed.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from readbench.errors import MissingCapability
from readbench.guest import disk
from readbench.guest.kernels import SBIN, GuestKernel
from readbench.measure.machine import GUEST_ENV
from readbench.model.guest import GuestSpec, emulated_note, lsm_list
from readbench.store.cache import cache_home
from readbench.store.rundir import atomic_write_json

MOUNT = "/run/readbench-data"  # where the guest mounts its data disk
GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
KVM_TRIAL_S = 30  # a KVM guest reaches user space in ~2 s; a hung one never does

PR_SET_PDEATHSIG = 1


def guest_dir() -> Path:
    return cache_home() / "guest"


def _which(name: str) -> str | None:
    here = str(Path(sys.executable).parent)  # a virtualenv's vng sits beside its python
    return shutil.which(name, path=os.pathsep.join([here, os.environ.get("PATH", ""), SBIN]))


def check_tools() -> dict[str, str]:
    """The host programs a guest needs; MissingCapability names what is missing and how to
    get it."""
    need = {
        "qemu-system-x86_64": "apt-get install qemu-system-x86",
        "vng": "pip install virtme-ng",
        "busybox": "apt-get install busybox-static (virtme-ng's initramfs)",
        "depmod": "apt-get install kmod",
        "udevadm": "apt-get install udev (the guest's script I/O ports need udev)",
    }
    found, missing = {}, []
    for tool, how in need.items():
        path = _which(tool)
        if path:
            found[tool] = path
        else:
            missing.append(f"{tool} ({how})")
    if missing:
        raise MissingCapability("readbench guest needs " + "; ".join(missing))
    return found


def qemu_version(qemu: str) -> str:
    p = subprocess.run([qemu, "--version"], capture_output=True, text=True, check=False)
    return (p.stdout.splitlines() or ["unknown"])[0]


@dataclass(frozen=True)
class Accel:
    name: str  # kvm | tcg
    reason: str

    @property
    def emulated(self) -> bool:
        return self.name == "tcg"


def kvm_device() -> tuple[bool, str]:
    """Whether /dev/kvm can be opened, and which module serves it."""
    dev = Path("/dev/kvm")
    mods = sorted(m.name for m in Path("/sys/module").glob("kvm*")) if dev.exists() else []
    what = f"/dev/kvm ({', '.join(mods) or 'module unknown'})"
    if not dev.exists():
        return False, "no /dev/kvm on this machine"
    try:
        os.close(os.open(dev, os.O_RDWR | os.O_CLOEXEC))
    except OSError as e:
        return False, f"{what} cannot be opened: {e.strerror}"
    return True, what


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def set_pdeathsig(sig: int = signal.SIGKILL) -> None:
    """preexec_fn: the child gets `sig` when its parent dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)


# The watchdog's parent-death signal is SIGWINCH, whose default action is to do nothing: if
# it arrives before Python has installed the handler, the watchdog is not killed by it, and
# the getppid() poll still sees the parent gone within half a second.
_WATCHDOG = """
import os, signal, sys, time
pgid, parent = int(sys.argv[1]), int(sys.argv[2])
def kill(*_):
    try: os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError: pass
    os._exit(0)
signal.signal(signal.SIGWINCH, kill)
signal.signal(signal.SIGTERM, kill)
while True:
    if os.getppid() != parent: kill()
    try: os.killpg(pgid, 0)
    except ProcessLookupError: os._exit(0)
    time.sleep(0.5)
"""


class GuestProcess:
    """vng (and the QEMU it starts) in a process group of its own, with a watchdog that
    kills the group when this process dies, however it dies."""

    def __init__(
        self,
        cmd: list[str],
        env: dict[str, str],
        stdout: IO[str] | int | None,
        on_stderr: Callable[[str], None],
    ) -> None:
        self.proc = subprocess.Popen(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.watchdog = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, str(self.proc.pid), str(os.getpid())],
            preexec_fn=lambda: set_pdeathsig(signal.SIGWINCH),
            stdin=subprocess.DEVNULL,
        )
        self._reader = threading.Thread(target=self._read, args=(on_stderr,), daemon=True)
        self._reader.start()

    def _read(self, on_stderr: Callable[[str], None]) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            on_stderr(line)

    def wait(self, timeout: float | None = None) -> int:
        try:
            rc = self.proc.wait(timeout=timeout)
        finally:
            self._reader.join(timeout=5)
        return rc

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)  # QEMU shuts the guest down on TERM
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        except ProcessLookupError:
            pass

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        self.watchdog.terminate()
        self.watchdog.wait()


def vng_command(
    spec: GuestSpec,
    kernel: GuestKernel,
    accel: str,
    *,
    exec_cmd: str,
    rwdirs: list[Path],
    data_disk: Path | None,
    memory_mib: int | None = None,
) -> list[str]:
    tools = check_tools()
    qemu_opts = ["-cpu", spec.cpu.qemu]
    if data_disk is not None:
        qemu_opts += ["-drive", f"file={data_disk},if=virtio,format=raw,snapshot=on"]
    append = [f"lsm={lsm_list(kernel.config_lsm)}", *spec.append]
    if spec.clearcpuid:
        append.append(f"clearcpuid={','.join(spec.clearcpuid)}")
    # --force-9p: the host root over 9p; QEMU 7.2's C virtiofsd cannot serve virtme-ng
    cmd = [tools["vng"], "--run", str(kernel.image), "--verbose", "--force-9p"]
    cmd += ["--cpus", str(spec.cpus)]
    cmd += ["--memory", f"{memory_mib or spec.memory_mib}M"]
    # `=`: both values start with a dash, which argparse would take for an option
    cmd += ["--qemu-opts=" + " ".join(shlex.quote(o) for o in qemu_opts)]
    cmd += ["--append=" + " ".join(append)]
    if accel == "tcg":
        cmd.append("--disable-kvm")
    for d in rwdirs:
        cmd += ["--rwdir", str(d)]
    return [*cmd, "--exec", exec_cmd]


def _vng_env() -> dict[str, str]:
    env = dict(os.environ)
    # vng starts virtme-run by name: the virtualenv's bin must be on PATH
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", ""), SBIN])
    env.pop(GUEST_ENV, None)
    return env


def choose_accel(spec: GuestSpec, kernel: GuestKernel, say: Callable[[str], None]) -> Accel:
    """KVM where a guest really boots under it (tried once per host boot, kernel and CPU
    model, and remembered), else TCG, with the reason."""
    if spec.accel == "tcg":
        return Accel("tcg", "TCG asked for (--accel tcg)")
    ok, what = kvm_device()
    if not ok:
        if spec.accel == "kvm":
            raise MissingCapability(f"--accel kvm: {what}")
        return Accel("tcg", f"KVM unavailable: {what}")
    key = hashlib.sha256(f"{_boot_id()}|{kernel.image}|{spec.cpu.qemu}".encode()).hexdigest()
    verdicts = guest_dir() / "accel"
    cached = verdicts / f"{key[:16]}.json"
    if cached.is_file():
        v = json.loads(cached.read_text())
    else:
        say(f"trying KVM ({what}): a {KVM_TRIAL_S} s trial boot of {kernel.release}")
        t0 = time.monotonic()
        lines: list[str] = []
        cmd = vng_command(
            spec, kernel, "kvm", exec_cmd="true", rwdirs=[], data_disk=None, memory_mib=1024
        )
        g = GuestProcess(cmd, _vng_env(), subprocess.DEVNULL, lines.append)
        try:
            rc = g.wait(timeout=KVM_TRIAL_S)
            err = [ln.strip() for ln in lines if "qemu" in ln.lower() or "kvm" in ln.lower()]
            if rc == 0:
                why = f"a guest booted under KVM in {time.monotonic() - t0:.1f} s"
            else:
                why = f"the trial boot failed (exit {rc}): {' | '.join(err[-2:]) or 'no message'}"
            v = {"ok": rc == 0, "reason": f"{what}: {why}"}
        except subprocess.TimeoutExpired:
            v = {
                "ok": False,
                "reason": f"{what}: the trial guest did not reach user space in "
                f"{KVM_TRIAL_S} s (a stock kernel hangs under a paravirtual KVM such as "
                "kvm_pvm)",
            }
        finally:
            g.close()
        atomic_write_json(
            cached, {**v, "boot_id": _boot_id(), "kernel": str(kernel.image), "cpu": spec.cpu.qemu}
        )
    if v["ok"]:
        return Accel("kvm", v["reason"])
    if spec.accel == "kvm":
        raise MissingCapability(f"--accel kvm: {v['reason']}")
    return Accel("tcg", f"KVM tried and refused: {v['reason']}")


def _guest_script(env: dict[str, str], cwd: Path, argv: list[str], stderr: Path) -> str:
    """The shell the guest runs: mount the data disk, set the environment, run `python ARGV`
    (`-m readbench …`, or `-m pytest …`)."""
    exports = "\n".join(f"export {k}={shlex.quote(v)}" for k, v in env.items())
    return f"""#!/bin/sh
dev=/dev/disk/by-label/{disk.LABEL}
[ -e "$dev" ] || dev=/dev/vda
mkdir -p {MOUNT}
if ! mount -t ext4 "$dev" {MOUNT}; then
    echo "readbench guest: cannot mount the data disk $dev on {MOUNT}" >&2
    exit 3
fi
{exports}
mkdir -p "$XDG_CACHE_HOME" "$MPLCONFIGDIR"
cd {shlex.quote(str(cwd))} || exit 3
# the command's stderr goes to a file the host follows: the serial console shares fd 2
exec {shlex.quote(sys.executable)} {" ".join(shlex.quote(a) for a in argv)} \
    2>>{shlex.quote(str(stderr))}
"""


class _Follow:
    """Copy what the guest command writes to its stderr file onto this process's stderr,
    as it arrives (the file is on a directory the guest mounts writable over 9p)."""

    def __init__(self, path: Path) -> None:
        self.path, self._stop = path, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with open(self.path, errors="replace") as f:
            while True:
                chunk = f.read()
                if chunk:
                    sys.stderr.write(chunk)
                    sys.stderr.flush()
                elif self._stop.is_set():
                    return
                else:
                    time.sleep(0.2)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


BOOT_STALL_S = 300  # TCG on a loaded 2-core host reaches the script in under a minute
_STARTED = "virtme-ng-init: starting script"


def _boot(
    cmd: list[str],
    out: IO[str] | int,
    console: Path,
    timeout: float | None,
    show_console: bool,
    say: Callable[[str], None],
) -> tuple[int, int]:
    """(exit code, boots): run the guest; a boot that stalls before user space (seen once
    in early module loading of a 6.12 guest under load) is stopped and booted once more."""
    for boot in (1, 2):
        started = threading.Event()
        with open(console, "a") as log:

            def on_console(line: str, started: threading.Event = started) -> None:
                log.write(line)
                if _STARTED in line:
                    started.set()
                if show_console:
                    sys.stderr.write(line)

            g = GuestProcess(cmd, _vng_env(), out, on_console)
            t0 = time.monotonic()
            try:
                while True:
                    try:
                        return g.wait(timeout=2), boot
                    except subprocess.TimeoutExpired:
                        pass
                    waited = time.monotonic() - t0
                    if timeout is not None and waited > timeout:
                        say(f"the guest command ran past --timeout {timeout:g} s: stopped")
                        return 124, boot
                    if not started.is_set() and waited > BOOT_STALL_S:
                        break
            finally:
                g.close()
        then = "booting again" if boot == 1 else "giving up"
        say(f"boot {boot}: no script after {BOOT_STALL_S} s (console {console}); {then}")
    return 125, 2


@dataclass
class GuestResult:
    returncode: int
    seconds: float
    accel: Accel
    kernel: GuestKernel
    console_log: Path
    run_dirs: list[Path]


def run(
    spec: GuestSpec,
    kernel: GuestKernel,
    argv: list[str],
    *,
    writable: list[Path],
    say: Callable[[str], None],
    stdout: IO[str] | None = None,
    timeout: float | None = None,
    show_console: bool = False,
) -> GuestResult:
    """Run `python ARGV…` (`-m readbench …`) in the guest. Its stdout is this process's
    stdout; its stderr is forwarded, and the guest's console goes to a log file (and to
    stderr with `show_console`). `writable`: the host directories the command may write,
    the results root first; run directories it makes there get guest.json."""
    check_tools()
    accel = choose_accel(spec, kernel, say)
    results = writable[0]
    before = {p.name for p in results.iterdir()}
    gdir = guest_dir()
    runs = gdir / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=runs, prefix=time.strftime("%Y%m%d-%H%M%S-")))
    (gdir / "bpf").mkdir(parents=True, exist_ok=True)
    data_disk = disk.data_disk()
    host = {
        "kernel": platform.release(),
        "machine": platform.node(),
        "qemu": qemu_version(check_tools()["qemu-system-x86_64"]),
    }
    description = {
        "launcher": "readbench guest",
        "accel": accel.name,
        "emulated": accel.emulated,
        "accel_reason": accel.reason,
        "cpu_model": spec.cpu.qemu,
        "clearcpuid": list(spec.clearcpuid),
        "append": list(spec.append),
        "kernel": kernel.to_json(),
        "host": host,
    }
    env = {
        "READBENCH_DATA_DIR": f"{MOUNT}/{disk.DATA_SUBDIR}",
        "READBENCH_TEST_DATA": f"{MOUNT}/{disk.DATA_SUBDIR}",
        "READBENCH_BPF_CACHE": str(gdir / "bpf"),
        "XDG_CACHE_HOME": "/tmp/readbench-guest-cache",  # the guest's own overlay
        "MPLCONFIGDIR": "/tmp/readbench-guest-mpl",
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), GUEST_PATH]),
        GUEST_ENV: json.dumps(description, separators=(",", ":")),
    }
    # the caller's other READBENCH_* settings (STRICT, COUNTERS, …) hold inside too
    env |= {k: v for k, v in os.environ.items() if k.startswith("READBENCH_") and k not in env}
    script, errfile = work / "guest.sh", work / "stderr"
    errfile.touch()
    script.write_text(_guest_script(env, Path.cwd(), argv, errfile))
    cmd = vng_command(
        spec,
        kernel,
        accel.name,
        exec_cmd=f"sh {script}",
        rwdirs=[gdir, *writable],
        data_disk=data_disk,
    )
    console = work / "console.log"
    say(
        f"booting Linux {kernel.release} ({kernel.source}) with -cpu {spec.cpu.qemu}"
        + (f", clearcpuid={','.join(spec.clearcpuid)}" if spec.clearcpuid else "")
        + f"; {accel.name.upper()}: {accel.reason}"
    )
    if accel.emulated:
        say(emulated_note("measured in this guest"))
    t0 = time.monotonic()
    follow = _Follow(errfile)
    out = stdout if stdout is not None else sys.stdout
    try:
        rc, boots = _boot(cmd, out, console, timeout, show_console, say)
    finally:
        follow.stop()
    seconds = time.monotonic() - t0
    new = sorted(
        p for p in results.iterdir() if p.name not in before and (p / "manifest.json").is_file()
    )
    record = {
        **description,
        "command": ["python", *argv],
        "boots": boots,
        "returncode": rc,
        "seconds": round(seconds, 1),
        "console_log": str(console),
    }
    for d in new:
        shutil.copyfile(console, d / "guest-console.log")
        atomic_write_json(d / "guest.json", {**record, "console_log": "guest-console.log"})
    atomic_write_json(work / "guest.json", record)
    return GuestResult(rc, seconds, accel, kernel, console, new)
