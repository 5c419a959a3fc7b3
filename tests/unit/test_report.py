"""HTML report from SYNTHETIC runs (tests/synthetic_runs.py): content, escaping,
no-data sections, CLI. The browser check lives in test_report_browser.py."""

from __future__ import annotations

import base64
import html as htmllib
import io
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from readbench.analysis import program_time, stats
from readbench.cli import main
from readbench.render import report
from readbench.store.load import load_sides
from tests.synthetic_runs import write_run

IMG_RE = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')

HOSTILE_HOOK = "<script>alert(1)</script>"
HOSTILE_MODEL = '"><img src=x onerror=alert(2)> $x^2$ [bold]cpu[/bold]'
HOSTILE_RUN = "<img src=x onerror=alert(3)>"


def _pngs(html: str) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(m))) for m in IMG_RE.findall(html)]


@pytest.fixture(scope="module")
def full_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    base = tmp_path_factory.mktemp("full")
    run = write_run(
        base / "run", sizes=(64, 4096, 65536), no_data_cells={"cached/64/kprobe:x:empty": "EPERM"}
    )
    path = report.write_report(run, base / "reports")
    return path, path.read_text()


def test_report_has_every_section_and_figure(full_report: tuple[Path, str]) -> None:
    path, html = full_report
    assert path.name == "index.html" and path.parent.name == "synthetic-run"
    for sec in ("summary", "machine", "unavailable", "overhead", "heatmap", "progmech"):
        assert f'id="{sec}"' in html
    for sec in ("dist", "copy", "aa", "method", "answer", "anatomy", "atlas"):
        assert f'id="{sec}"' in html
    for fig in (
        "fig-anatomy",
        "fig-overhead",
        "fig-heatmap",
        "fig-dist",
        "fig-ecdf",
        "fig-copyfrac",
        "fig-copy",
        "fig-progmech",
        "fig-aa",
    ):
        assert f'id="{fig}"' in html, fig
    imgs = _pngs(html)
    assert len(imgs) == 9
    for im in imgs:
        assert im.format == "PNG" and im.size[0] > 100 and im.size[1] > 100
    # the synthetic banner and the stats JSON next to the page
    assert "SYNTHETIC DATA" in html
    analysis = json.loads((path.parent / "analysis.json").read_text())
    assert analysis["run_id"] == "synthetic-run"


def test_report_is_self_contained(full_report: tuple[Path, str]) -> None:
    _, html = full_report
    # the attribute is HTML-escaped; the browser sees the unescaped policy
    assert "Content-Security-Policy" in html
    assert "default-src 'none'; img-src data:" in htmllib.unescape(html)
    assert "<script" not in html
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "<link" not in html


def test_report_numbers_match_the_analysis(full_report: tuple[Path, str]) -> None:
    path, html = full_report
    a = json.loads((path.parent / "analysis.json").read_text())
    assert f"<b>{a['significant']}</b>" in html.replace("\n", "")
    # each comparison row shows its Holm p and verdict
    for c in a["comparisons"]:
        assert c["name"] in html
        assert c["verdict"] in html
    # unavailable hooks and cells without data are listed with their reasons
    assert "synthetic lockdown" in html and "cached/64/kprobe:x:empty" in html
    assert "EPERM" in html


def test_rebuilt_report_is_identical(full_report: tuple[Path, str], tmp_path: Path) -> None:
    path, html = full_report
    run = Path(json.loads((path.parent / "analysis.json").read_text())["run_dir"])
    again = report.write_report(run, tmp_path).read_text()
    assert again == html


def test_hostile_labels_are_escaped(tmp_path: Path) -> None:
    hooks = ("none", HOSTILE_HOOK, "_underscore")
    run = write_run(
        tmp_path / "run",
        run_id=HOSTILE_RUN,
        sizes=(64, 4096),
        hooks=hooks,
        cpu_model=HOSTILE_MODEL,
        hook_cost={HOSTILE_HOOK: (50.0, 0.0), "_underscore": (10.0, 0.0)},
        processes=6,
    )
    html = report.write_report(run, tmp_path / "reports").read_text()
    assert "<script" not in html
    assert "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(3)&gt;" in html
    assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt; $x^2$ [bold]cpu[/bold]" in html
    # figures still render with mathtext-like and underscore labels
    assert len(_pngs(html)) == 9


def test_sections_without_data_say_so(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", sizes=(64,), aa=False, side_files=False, processes=4)
    html = report.write_report(run, tmp_path / "rep").read_text()
    assert "No perf attribution data (perf/*.json) in this run." in html
    assert "No user-space copy sweep (copy.json) in this run." in html
    assert "No BPF statistics" in html
    assert "This run has no A/A cells" in html
    assert len(_pngs(html)) == 4  # overhead, heatmap, distributions, ECDFs only

    base_only = write_run(
        tmp_path / "base", sizes=(64,), hooks=("none",), aa=False, side_files=False
    )
    html = report.write_report(base_only, tmp_path / "rep2").read_text()
    assert "No hooked cell with a baseline in this run" in html
    assert "No comparisons in this run: no heatmap." in html
    assert len(_pngs(html)) == 2  # distributions and ECDFs


def test_underpowered_run_renders(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", sizes=(64,), processes=2, values=2)
    html = report.write_report(run, tmp_path / "rep").read_text()
    assert "underpowered" in html
    assert "smallest attainable p" in html


def test_report_dir_accepts_root_or_run_dir(tmp_path: Path) -> None:
    run = tmp_path / "results" / "abc"
    assert report.report_dir(run, tmp_path / "reports", "abc") == tmp_path / "reports" / "abc"
    assert (
        report.report_dir(run, tmp_path / "reports" / "abc", "abc") == tmp_path / "reports" / "abc"
    )


def test_cli_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path / "run", sizes=(64,), processes=4)
    assert main.main(["report", str(run), "--out", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == str(tmp_path / "rep" / "synthetic-run" / "index.html")
    assert "A/A false-positive rate" in out.err

    assert main.main(["report", str(run), "--out", str(tmp_path / "rep"), "--json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["report"].endswith("index.html")
    assert {"cells", "comparisons", "significant", "aa_false_positive_rate"} <= set(obj)


def test_cli_report_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main.main(["report", str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err
    run = write_run(tmp_path / "run", sizes=(64,), processes=2)
    (run / "manifest.json").write_text("{broken")
    assert main.main(["report", str(run), "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err
    assert "manifest.json" in err and "not valid JSON" in err


def test_interrupted_run_says_so(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", sizes=(64,), processes=3, values=3)
    m = json.loads((run / "manifest.json").read_text())
    m["status"] = "interrupted"
    m["failed"] = [{"cell": "pipe/64/none", "reason": "round 2: worker exited 1"}]
    (run / "manifest.json").write_text(json.dumps(m))
    html = report.write_report(run, tmp_path / "rep").read_text()
    assert "Run status is “interrupted”" in html
    assert "round 2: worker exited 1" in html


def test_program_mechanism_split_uses_the_floor(tmp_path: Path) -> None:
    # SYNTHETIC: program body = 40 % of the 60 ns hook cost, stats floor 5 ns/run
    run = write_run(tmp_path / "run", sizes=(64,), processes=8)
    a = stats.analyze_run(run)
    rows = {r["cell"]: r for r in program_time.bpf_rows(load_sides(run).bpf, a["comparisons"])}
    r = rows["cached/64/rawtp:sys_enter:empty"]
    assert r["floor_ns_per_run"] == pytest.approx(5.0)
    assert r["raw_program_ns"] == pytest.approx(29.0)
    assert r["program_ns"] == pytest.approx(24.0)
    assert r["mechanism_ns"] == pytest.approx(r["delta_ns"] - 24.0)
    # without a floor the raw time is used, and the table says there was none
    side = run / "bpf" / "cached_64_rawtp_sys_enter_empty.json"
    obj = json.loads(side.read_text())
    del obj["floor"]
    side.write_text(json.dumps(obj))
    r = {x["cell"]: x for x in program_time.bpf_rows(load_sides(run).bpf, a["comparisons"])}[
        r["cell"]
    ]
    assert r["floor_ns_per_run"] is None and r["program_ns"] == pytest.approx(29.0)
    assert "no floor" in report.write_report(run, tmp_path / "rep").read_text()


def _atlas(run: Path) -> None:
    """An atlas side file whose refusals repeat across rows and attach types."""
    lockdown = "fentry refused by kernel: errno 1 EPERM (Operation not permitted) — lockdown"
    points = []
    for target in ("vfs_read", "filemap_read", "<b>copy_page_to_iter</b>"):
        # libbpf names the target: still one refusal, the note says ‹point›
        nokprobe = (f"kprobe refused by kernel: errno 2 ENOENT at attach kprobe {target} — "
                    "kernel built without CONFIG_KPROBES")  # fmt: skip
        attach = {"fentry": {"available": False, "reason": lockdown},
                  "fexit": {"available": False, "reason": lockdown},
                  "kprobe": {"available": False, "reason": nokprobe},
                  "kretprobe": {"available": False, "reason": nokprobe}}  # fmt: skip
        points.append({"target": target, "kind": "function", "group": None, "layer": "x",
                       "fs_independent": True, "presence": "present", "attach": attach,
                       "fires_per_read": None, "args": [], "sees": {}, "note": ""})  # fmt: skip
    (run / "atlas").mkdir(exist_ok=True)
    (run / "atlas" / "cached_64.json").write_text(
        json.dumps({"cell": "cached/64", "workload": "cached", "size": 64, "points": points})
    )


def test_cells_sort_by_workload_then_size_as_a_number(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", workloads=("cached-stream", "cached"),
                    sizes=(1024, 128, 65536), processes=4)  # fmt: skip
    html = report.write_report(run, tmp_path / "rep").read_text()
    for section in ("anatomy", "callpath", "dist"):
        part = html[html.index(f'id="{section}"') :]
        cells = ("cached/128", "cached/1024", "cached/65536", "cached-stream/128",
                 "cached-stream/1024")  # fmt: skip
        at = [part.index(f"{c}/none") for c in cells]
        assert at == sorted(at), section


def test_atlas_gives_each_refusal_once_as_a_numbered_note(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", sizes=(64,), processes=4)
    _atlas(run)
    html = report.write_report(run, tmp_path / "rep").read_text()
    atlas = html[html.index('id="atlas"') : html.index('id="summary"')]
    # the table and the notes after it (a recommendation may quote the reason it could not use)
    atlas = atlas[atlas.index("<table>") :]
    assert atlas.count("lockdown") == 1 and atlas.count("CONFIG_KPROBES") == 1
    assert atlas.count("fentry, fexit: refused") == 3 and atlas.count("[1]") == 3
    assert atlas.count("kprobe, kretprobe: refused") == 3 and atlas.count("[2]") == 3
    assert 'id="refusal-1"' in atlas and 'id="refusal-2"' in atlas
    assert "attach kprobe ‹point›" in atlas and 'id="refusal-3"' not in atlas
    assert "&lt;b&gt;copy_page_to_iter&lt;/b&gt;" in atlas


def test_call_paths_are_drawn_as_icicles_with_escaped_names(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", workloads=("cached",), sizes=(64, 65536), hooks=("none",),
                    processes=4)  # fmt: skip
    side = run / "perf" / "cached_64_none.json"
    perf = json.loads(side.read_text())
    perf["callchains"]["folded"].append(["entry_SYSCALL_64;<script>evil</script>", 50])
    side.write_text(json.dumps(perf))
    html = report.write_report(run, tmp_path / "rep").read_text()
    part = html[html.index('id="callpath"') : html.index('id="atlas"')]
    assert part.count('<svg class="icicle"') == 2
    assert "<script>" not in html and "&lt;script&gt;evil&lt;/script&gt;" in part
    # the measured path, the founding question's sequence, ends at the copy routine
    assert "Measured path to the copy routine" in part
    seq = [part.index(f">{f}</span>") for f in ("vfs_read", "filemap_read", "_copy_to_iter",
                                                 "rep_movs_alternative")]  # fmt: skip
    assert seq == sorted(seq)
    assert "ly12" in part  # the copy layer's colour class (model.layers order)


def test_other_above_ten_percent_lists_its_functions(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", workloads=("cached",), sizes=(64,), processes=4)
    side = run / "perf" / "cached_64_none.json"
    perf = json.loads(side.read_text())
    total = sum(n for _, n in perf["callchains"]["folded"])
    perf["callchains"]["folded"].append(["mystery_function_xyz", total // 3])
    side.write_text(json.dumps(perf))
    html = report.write_report(run, tmp_path / "rep").read_text()
    part = html[html.index('id="anatomy"') : html.index('id="callpath"')]
    assert "“other” is" in part and "mystery_function_xyz" in part


def test_an_emulated_run_says_so_on_top(tmp_path: Path) -> None:
    """A run from a TCG guest: the page opens with the emulated-times banner, naming the CPU
    model the guest was booted with; a hardware run's page has no such banner."""
    run = write_run(tmp_path / "tcg", sizes=(64,), processes=8, aa=False, emulated=True)
    page = report.write_report(run, tmp_path / "rep").read_text()
    assert "EMULATED TIMES" in page and "-cpu max" in page
    assert page.index("EMULATED TIMES") < page.index('id="answer"')
    hw = write_run(tmp_path / "hw", sizes=(64,), processes=8, aa=False)
    assert "EMULATED TIMES" not in report.write_report(hw, tmp_path / "rep").read_text()


def test_ecdf_panels_show_the_hooked_cells_first() -> None:
    """Six panels of eight: the three with a hook are drawn, then baseline-only ones to
    fill, each in workload and size order (the first six by name were all baseline-only)."""
    import pandas as pd

    from readbench.render import figures

    rows = [{"panel": f"cached / {n}", "workload": "cached", "size_n": n, "hook": "none"}
            for n in (1, 2, 4, 8, 16)]  # fmt: skip
    for w, n in (("cached", 4096), ("mmap", 4096), ("pipe", 64)):
        for h in ("none", "rawtp:sys_enter"):
            rows.append({"panel": f"{w} / {n}", "workload": w, "size_n": n, "hook": h})
    panels, shown = figures.ecdf_panels(pd.DataFrame(rows), 6)
    assert len(panels) == 8
    assert shown == ["cached / 1", "cached / 2", "cached / 4", "cached / 4096", "mmap / 4096",
                     "pipe / 64"]  # fmt: skip
