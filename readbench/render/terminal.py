"""Terminal output: rich tables of a run's cells and claims (the same verdict words as the
HTML report)."""

from __future__ import annotations

import sys
from typing import Any, ClassVar

from rich.console import Console

# Human output goes to stderr; stdout is kept for --json.
console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def print_cells(res: dict[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    # The answer first: one sentence per workload, from the measured claims.
    for h in res.get("headlines") or []:
        console.print(Text(f"{h['workload']}: {h['text']}."), style="bold")

    t = Table(title="cells (ns per read)")
    for col in (
        "cell",
        "procs",
        "median",
        "95% CI",
        "vs none",
        "ratio 95% CI",
        "p (Holm)",
        "verdict",
    ):
        t.add_column(col)
    comps = {c["name"]: c for c in res.get("comparisons", [])}
    for c in res.get("cells", []):
        cmp_ = comps.get(c["name"])
        ci = c.get("ci95_ns") or [float("nan")] * 2
        row = [
            c["name"],
            str(c.get("n_processes")),
            f"{c.get('median_ns', float('nan')):.1f}",
            f"{ci[0]:.1f}–{ci[1]:.1f}",
        ]
        if cmp_:
            rci = cmp_.get("ratio_ci95") or [float("nan")] * 2
            row += [
                f"{cmp_.get('delta_ns', float('nan')):+.1f} ns",
                f"{rci[0]:.3f}–{rci[1]:.3f}",
                f"{cmp_.get('p_holm', float('nan')):.2g}",
                cmp_["verdict"],  # stats.verdict: the same words the HTML report uses
            ]
        else:
            row += ["", "", "", "baseline"]
        t.add_row(*row)
    console.print(t)
    for w in res.get("warnings") or []:
        console.print(Text("warning: " + w), style="yellow")


def coverage_cell(f: float | None) -> str:
    """A fires-per-op cell of the coverage matrix: '–' where nothing could count it."""
    if f is None:
        return "–"
    return "0" if f == 0 else f"{f:.2f}" if f < 10 else f"{f:.0f}"


def print_coverage(cov: dict[str, Any]) -> None:
    """The coverage matrix (points × read kinds, fires per op) and its recommendation."""
    from rich.table import Table
    from rich.text import Text

    kinds = [k["workload"] for k in cov["kinds"]]
    t = Table(title=f"fires per op, {cov['size']} B per op ({cov.get('fs_type') or '?'}, "
              f"{cov.get('kernel')})")  # fmt: skip
    t.add_column("point")
    t.add_column("via")
    for k in kinds:
        t.add_column(k)
    for r in cov["points"]:
        label = f"{r['group']}:{r['target']}" if r.get("group") else r["target"]
        t.add_row(Text(label), r.get("via") or "refused",
                  *(coverage_cell(r["fires_per_op"].get(k)) for k in kinds))  # fmt: skip
    console.print(t)
    rec = cov.get("recommendation") or {}
    if rec:
        console.print(Text(f"to {rec['text']}: {rec['summary']}"))
    chk = cov.get("buffered_check")
    if chk:
        console.print(Text(chk["text"]))


class ProgressReporter:
    """The runner's reporter on a terminal (readbench.measure.runner.Reporter's methods): a
    progress bar of the run's steps and coloured messages, on stderr."""

    _STYLE: ClassVar[dict[str, str]] = {"info": "", "warn": "yellow", "error": "red"}

    def __init__(self, show: bool = True) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
            console=console, disable=not show, transient=False,
        )  # fmt: skip
        self._task: Any = None

    def start(self, total: int) -> None:
        self._progress.start()
        self._task = self._progress.add_task("measuring", total=total)

    def step(self, description: str) -> None:
        if self._task is not None:
            self._progress.update(self._task, description=description)

    def advance(self) -> None:
        if self._task is not None:
            self._progress.advance(self._task)

    def stop(self) -> None:
        self._progress.stop()

    def say(self, text: str, level: str = "info") -> None:
        from rich.text import Text

        style = self._STYLE.get(level, "")
        console.print(Text(f"{level}: " if style else "", style=style) + Text(text))
