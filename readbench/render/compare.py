"""A comparison of runs on the page and in the terminal: `write_compare(result, out_dir)` and
the rich tables of readbench.analysis.compare's result (the statistics are there)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from readbench.model.guest import emulated_note
from readbench.render import figures
from readbench.render.report import render
from readbench.store.rundir import atomic_write_text


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("._") or "run"


def write_compare(result: dict[str, Any], out_dir: Path) -> Path:
    """Write `<out_dir>/compare-<A>-vs-<B>…/index.html` (+ compare.json); returns it."""
    name = "compare-" + "-vs-".join(_slug(r["label"]) for r in result["runs"])
    dest = Path(out_dir) / name[:180]
    figs = []
    for p in result["pairs"]:
        rows = [r for r in result["rows"] if r["pair"] == p["index"]]
        figs.append(figures.compare_forest(rows, f"{p['b']} vs {p['a']}", f"fig-cmp-{p['index']}"))
    html = render(
        "compare.html.j2",
        title="readbench compare — " + " vs ".join(r["label"] for r in result["runs"]),
        r=result,
        figs=figs,
    )
    atomic_write_text(dest / "compare.json", json.dumps(result, indent=1))
    atomic_write_text(dest / "index.html", html)
    return dest / "index.html"


def _fmt(x: Any, spec: str) -> str:
    return "–" if x is None else format(x, spec)


def rich_table(result: dict[str, Any]) -> Table:
    labels = (
        " vs ".join(r["label"] for r in result["runs"][1:]) + f" vs {result['runs'][0]['label']}"
    )
    t = Table(
        title=Text(
            f"readbench compare: {labels} (Holm over {result['n_claims']} cross-run claims, "
            f"α = {result['alpha']:g}; unit: {result.get('unit', 'worker process')})"
        ),
        show_lines=False,
    )
    many = len(result["pairs"]) > 1
    for col, j in (
        ("cell", "left"),
        *([("B vs A", "left")] if many else []),
        ("n A/B", "right"),
        ("A median ns", "right"),
        ("B median ns", "right"),
        ("Δ ns", "right"),
        ("ratio B/A [95% CI]", "right"),
        ("p" if not result.get("within_boot", True) else "p MWU (within-boot)", "right"),
        ("p Holm", "right"),
        ("verdict", "left"),
    ):
        t.add_column(col, justify=j)  # type: ignore[arg-type]
    for r in result["rows"]:
        style = "bold red" if r["significant"] else ("green" if r["equivalent"] else "")
        lo, hi = r["ratio_ci95"]
        # Text(): names come from input files and must not be read as rich markup
        t.add_row(
            Text(r["name"]),
            *([Text(f"{r['b']} / {r['a']}")] if many else []),
            f"{r['n_a']}/{r['n_b']}",
            _fmt(r["median_a_ns"], ",.1f"),
            _fmt(r["median_b_ns"], ",.1f"),
            _fmt(r["delta_ns"], "+,.1f"),
            f"{r['ratio']:.4f} [{lo:.4f}, {hi:.4f}]",
            _fmt(r["p"], ".2g"),
            _fmt(r["p_holm"], ".2g"),
            Text(r["verdict"]),
            style=style,
        )
    notes = [n for p in result["pairs"] for n in p["notes"]]
    for p in result["pairs"]:
        if p["only_in_a"]:
            notes.append(f"only in {p['a']}: " + ", ".join(p["only_in_a"]))
        if p["only_in_b"]:
            notes.append(f"only in {p['b']}: " + ", ".join(p["only_in_b"]))
    if notes:
        t.caption = Text("\n".join(notes))
    return t


def machine_lines(result: dict[str, Any]) -> list[Text]:
    """One line per run: its kernel, CPU model, copy routine and the routine's share of each
    baseline cell's read() samples; first, where the runs are emulated, that every time in
    the table is. The routine and its share are what a cross-CPU compare is asked for."""
    lines = []
    if result.get("emulated"):
        lines.append(Text(emulated_note("in this comparison"), style="bold yellow"))
    for r in result["runs"]:
        m = r.get("machine") or {}
        shares = ", ".join(
            f"{c['cell']}: {c['copy_fraction'] * 100:.1f} % in {c.get('copy_symbol') or '?'}"
            for c in m.get("copy_share") or []
            if c.get("copy_fraction") is not None
        )
        cpu = m.get("cpu_model_asked") or m.get("cpu_model") or "?"
        accel = f", {m['accel']}" if m.get("accel") else ""
        line = f"{r['label']}: {m.get('kernel', '?')}, -cpu {cpu}{accel}, "
        line += f"copy routine {m.get('copy_routine') or '?'}"
        if shares:
            line += f"; copy share {shares}"
        lines.append(Text(line))  # Text(): labels come from input files, never rich markup
    return lines


def rich_change_table(result: dict[str, Any]) -> Table | None:
    """Hook overhead in each run and its change B/A (Holm-tested, simultaneous CI)."""
    rows = result.get("overhead_change") or []
    if not rows:
        return None
    t = Table(title=Text("hook overhead change between runs (paired overheads, Holm)"))
    cols = ("hooked cell", "B vs A", "n A/B", "overhead A %", "overhead B %", "ratio B/A [CI]",
            "p Holm")  # fmt: skip
    for col in cols:
        t.add_column(col, justify="left" if col in ("hooked cell", "B vs A") else "right")
    for c in rows:
        ci = c["change_ci"]
        t.add_row(
            Text(c["name"]),
            Text(f"{c['b']} / {c['a']}"),
            f"{c['n_a']}/{c['n_b']}",
            f"{c['overhead_a_pct']:+.2f}",
            f"{c['overhead_b_pct']:+.2f}",
            f"{c['change_ratio']:.4f} " + (f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "[–]"),
            f"{c['p_holm']:.2g}",
            style="bold red" if c["significant"] else "",
        )
    return t


# -- several runs per side: the run (one boot) is the unit ----------------------------------
