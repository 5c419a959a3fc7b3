"""Render the report (of a SYNTHETIC run) in real headless Chromium.

Checks: every figure decoded (non-zero natural size), no console message at all
(the page has no script, so any console line is a CSP violation or a load error),
and a screenshot that is not blank. Debian's `chromium` is installed by
scripts/ensure-chromium.sh when missing.
"""

from __future__ import annotations

import html as htmllib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from readbench.render import report
from tests.conftest import require
from tests.synthetic_runs import write_run

ROOT = Path(__file__).resolve().parents[2]
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
NONCE = "rbcheck"
WIDTH = 1280
WINDOW = f"{WIDTH},1000"  # the layout width of every check and screenshot
# Injected into a copy of the page only: collects load/CSP errors and each image's
# natural size, and writes them into the DOM for --dump-dom to carry out.
CHECK_JS = """
window.__rb = [];
addEventListener('error', e => __rb.push(
  'error: ' + (e.message || (e.target && e.target.src) || '?')), true);
addEventListener('securitypolicyviolation', e => __rb.push(
  'csp: ' + e.violatedDirective + ' ' + e.blockedURI));
const _ce = console.error;
console.error = (...a) => { __rb.push('console: ' + a.join(' ')); _ce(...a); };
addEventListener('load', () => {
  const imgs = Array.from(document.images);
  const icicles = Array.from(document.querySelectorAll('svg.icicle')).map(s => {
    const r = s.getBoundingClientRect();
    return [s.closest('figure').id, r.left + scrollX, r.top + scrollY, r.width, r.height,
            s.querySelectorAll('rect').length];
  });
  const out = {
    n: imgs.length,
    sizes: imgs.map(i => [
      (i.closest('figure') || {}).id || i.src.slice(0, 40),
      i.naturalWidth, i.naturalHeight, i.complete]),
    icicles: icicles,
    errors: __rb,
  };
  const pre = document.createElement('pre');
  pre.id = 'rb-check';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
"""


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None and os.geteuid() == 0:
        subprocess.run(["sh", str(ROOT / "scripts" / "ensure-chromium.sh")], check=False)
        path = shutil.which("chromium")
    require(path is not None, "needs Debian's chromium (scripts/ensure-chromium.sh, as root)")
    assert path is not None
    return path


def _run(chromium: str, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"  # fresh each call
    return subprocess.run(
        [chromium, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _check(chromium: str, text: str, probe_path: Path, tmp: Path) -> dict:
    """Load an instrumented copy of the page (CSP relaxed for exactly our nonce'd
    script, nothing else changed) and return what the check script saw."""
    policy = "script-src &#39;none&#39;"
    assert policy in text
    probe = text.replace(policy, f"script-src &#39;nonce-{NONCE}&#39;").replace(
        "<title>", f'<script nonce="{NONCE}">{CHECK_JS}</script><title>', 1
    )
    probe_path.write_text(probe)
    proc = _run(chromium, tmp, "--virtual-time-budget=10000", f"--window-size={WINDOW}",
                "--dump-dom", probe_path.as_uri())  # fmt: skip
    m = re.search(r'<pre id="rb-check">(.*?)</pre>', proc.stdout, re.S)
    assert m, f"check script did not run: {proc.stderr[-2000:]}"
    return json.loads(htmllib.unescape(m.group(1)))


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("browser")
    run = write_run(
        base / "run",
        run_id="browser-<check>",
        hooks=("none", "rawtp:sys_enter:empty", "<script>alert(1)</script>"),
        hook_cost={"rawtp:sys_enter:empty": (60.0, 0.0), "<script>alert(1)</script>": (20.0, 0.0)},
        processes=8,
    )
    # a SYNTHETIC coverage matrix beside it (labelled so): the section, table and heatmap
    kinds = [{"workload": w, "op": "<op>", "fd_arg": w != "io_uring", "buffered": True}
             for w in ("cached", "io_uring", "mmap-fault")]  # fmt: skip
    pts = [("raw_syscalls", "sys_enter", {"cached": 1.0, "io_uring": 1.0, "mmap-fault": 0.0}),
           ("filemap", "mm_filemap_fault", {"cached": 0.0, "io_uring": 0.0, "mmap-fault": 1.0}),
           ("io_uring", "<b>io_uring_submit_req</b>", {"cached": 0, "io_uring": 1.0,
                                                       "mmap-fault": 0})]  # fmt: skip
    cov = {"size": 4096, "fs_type": "SYNTHETIC", "kernel": "SYNTHETIC", "kinds": kinds,
           "points": [{"key": f"{g}/{t}", "group": g, "target": t, "via": "rawtp",
                       "fires_note": "", "sees": {"file": "struct file *"},
                       "fires_per_op": f} for g, t, f in pts]}  # fmt: skip
    (run / "coverage.json").write_text(json.dumps(cov))
    return report.write_report(run, base / "reports")


@pytest.mark.slow
def test_every_figure_loads_and_no_console_errors(
    chromium: str, page: Path, tmp_path: Path
) -> None:
    text = page.read_text()
    n_figures = text.count("<figure ")
    n_icicles = text.count('<svg class="icicle"')
    assert n_figures == 10 + n_icicles and n_icicles == 18  # one per perf cell
    res = _check(chromium, text, page.with_name("probe.html"), tmp_path)
    assert res["errors"] == []
    assert res["n"] == 10
    assert len(res["icicles"]) == n_icicles
    for fig_id, w, h, complete in res["sizes"]:
        assert complete and w > 0 and h > 0, fig_id

    # the real page, untouched: Chromium logs any console message (CSP violation,
    # failed load, script error) to stderr; there must be none
    proc = _run(chromium, tmp_path, "--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [ln for ln in proc.stderr.splitlines() if ":CONSOLE" in ln]
    assert console == []
    # the hostile hook name arrived as text, not as a script element
    assert "<script>alert(1)</script>" not in proc.stdout
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in proc.stdout


@pytest.mark.slow
def test_screenshot(chromium: str, page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    proc = _run(
        chromium, tmp_path, "--window-size=1280,4000", f"--screenshot={shot}", page.as_uri()
    )
    assert shot.exists(), proc.stderr[-2000:]
    im = Image.open(shot).convert("L")
    assert im.size == (1280, 4000)
    # not a blank page: real text and figures give contrast across the page
    for top in range(0, 4000, 1000):
        assert ImageStat.Stat(im.crop((0, top, 1280, top + 1000))).stddev[0] > 10
    keep = os.environ.get("READBENCH_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "report.png")


def _near(im: Image.Image, color: str, tol: int = 14) -> float:
    """Share of the pixels of `im` within `tol` of `color` on every channel."""
    want = tuple(int(color[i : i + 2], 16) for i in (1, 3, 5))
    px = list(im.convert("RGB").get_flattened_data())
    return sum(all(abs(a - b) <= tol for a, b in zip(p, want, strict=True)) for p in px) / len(px)


@pytest.mark.slow
def test_icicle_screenshot(chromium: str, page: Path, tmp_path: Path) -> None:
    """The flame graph as a person sees it: a real screenshot of the page, cropped to the
    first (open) icicle. Its frames are drawn in their layers' colours: the root and the
    syscall frames across the width, the copy routine's, the page cache's; labels in them."""
    from readbench.model import layers
    from readbench.render.figures import LAYER_COLORS

    res = _check(chromium, page.read_text(), page.with_name("probe.html"), tmp_path)
    visible = [ic for ic in res["icicles"] if ic[3] > 0 and ic[4] > 0]
    assert visible, res["icicles"]  # the first of each workload is open
    fig_id, x, y, w, h, n_rects = visible[0]
    assert n_rects >= 8 and w > 0.8 * WIDTH * 0.9
    shot = tmp_path / "icicle-page.png"
    height = int(y + h + 40)
    proc = _run(chromium, tmp_path, f"--window-size={WIDTH},{height}", f"--screenshot={shot}",
                page.as_uri())  # fmt: skip
    assert shot.exists(), proc.stderr[-2000:]
    icicle = Image.open(shot).crop((int(x), int(y), int(x + w), int(y + h)))
    assert ImageStat.Stat(icicle.convert("L")).stddev[0] > 20  # frames and text, not blank
    top = icicle.crop((0, 2, icicle.width, 12))  # the root frame spans the width
    assert _near(top, LAYER_COLORS[layers.SYSCALL]) > 0.6
    # the synthetic 64 B read: syscall entry, VFS, ext4's read_iter, the page-cache lookup, a
    # thin copy (3 % of the samples) and the user side, each in its layer's colour
    drawn = (layers.SYSCALL, layers.VFS, layers.FS, layers.LOOKUP, layers.COPY, layers.USER)
    shares = {layer: _near(icicle, LAYER_COLORS[layer]) for layer in drawn}
    assert shares[layers.SYSCALL] > 0.15 and shares[layers.LOOKUP] > 0.05, shares
    assert min(shares.values()) > 0.003, shares
    # dark label text inside the frames
    assert _near(icicle, "#111111", tol=40) > 0.005
    keep = os.environ.get("READBENCH_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        icicle.save(Path(keep) / f"{fig_id}.png")


@pytest.mark.slow
def test_check_catches_a_broken_figure(chromium: str, page: Path, tmp_path: Path) -> None:
    """The check itself can fail: a truncated PNG and a network image are caught."""
    text = page.read_text()
    broken = text.replace(
        '<img src="data:image/png;base64,', '<img src="data:image/png;base64,AAAA', 1
    ).replace("</h1>", '</h1><img src="http://example.invalid/x.png" alt="net">', 1)
    res = _check(chromium, broken, page.with_name("broken.html"), tmp_path)
    bad = [s for s in res["sizes"] if not (s[1] > 0 and s[2] > 0)]
    assert len(bad) == 2
    assert any(e.startswith("csp: img-src") for e in res["errors"])


@pytest.mark.slow
def test_quick_perf_run_opens_with_anatomy_and_carries_the_atlas(
    chromium: str, tmp_path: Path
) -> None:
    """A real `readbench run --matrix quick --perf --report`: the page opens with the answer
    and the anatomy figure, carries the atlas table, and both render in Chromium."""
    require(os.geteuid() == 0, "needs root (BPF, perf)")
    r = subprocess.run(
        [sys.executable, "-m", "readbench", "run", "--matrix", "quick", "--perf", "--no-copy",
         "--no-progress", "--report", "--out", str(tmp_path / "res"),
         "--report-out", str(tmp_path / "rep"), "--json"],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    page = Path(json.loads(r.stdout)["report"])
    text = page.read_text()
    order = [text.index(f'id="{s}"') for s in ("answer", "anatomy", "atlas", "summary")]
    assert text.index('id="anatomy"') < text.index('id="callpath"') < text.index('id="atlas"')
    assert order == sorted(order)  # the answer first, then the anatomy, then the atlas
    assert 'id="fig-anatomy"' in text and "sys_enter" in text[order[2] : order[3]]
    # the call path drawn: an icicle per perf cell, with its measured path
    assert text.count('<svg class="icicle"') == 3 and "Measured path to the copy routine" in text
    # the coverage matrix of the run's read kinds rides with the atlas
    assert 'id="coverage"' in text and 'id="fig-coverage"' in text
    res = _check(chromium, text, page.with_name("probe.html"), tmp_path)
    assert res["errors"] == []
    sizes = {fid: (w, h, ok) for fid, w, h, ok in res["sizes"]}
    for fid in ("fig-anatomy", "fig-coverage"):
        w, h, ok = sizes[fid]
        assert ok and w > 0 and h > 0, fid
    assert any(ic[3] > 0 and ic[5] > 5 for ic in res["icicles"])
