"""seaborn/matplotlib figures for the report and compare pages.

Each function takes already-computed numbers (from readbench.analysis.stats / side files)
and returns a `Figure` with the PNG embedded as a data: URI, or None when it has
no data, so the page can say so instead of showing an empty plot.
"""

from __future__ import annotations

import base64
import functools
import io
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, NullFormatter
from PIL import Image

from readbench.model import layers

DPI = 90  # with 128-colour PNGs: the default matrix's report stays under 1 MB
# Labels come from input files: never let matplotlib interpret them as mathtext.
RC = {"text.parse_math": False, "svg.fonttype": "none", "axes.titlesize": 10}


F = TypeVar("F", bound=Callable[..., Any])


def _quiet(fn: F) -> F:
    """seaborn 0.13 on matplotlib 3.11 emits deprecation warnings about its own
    internals (cmap.set_bad, bxp vert=); they say nothing about our data."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=PendingDeprecationWarning)
            warnings.filterwarnings("ignore", category=matplotlib.MatplotlibDeprecationWarning)
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@dataclass
class Figure:
    id: str
    title: str
    uri: str
    alt: str
    caption: str = ""


def _label(s: str) -> str:
    # matplotlib hides legend entries starting with "_"; a hook name must still show
    return " " + s if s.startswith("_") else s


def size_label(n: float) -> str:
    n = int(n)
    for unit, k in (("M", 1 << 20), ("K", 1 << 10)):
        if n >= k and n % k == 0:
            return f"{n // k}{unit}"
    return str(n)


_SIZE_FMT = FuncFormatter(lambda x, _pos: size_label(x) if x >= 1 else f"{x:g}")


def _encode(fig: plt.Figure, dpi: int = DPI) -> str:
    """The figure as a PNG data: URI, in 64 colours (no dithering): these are flat-coloured
    plots, and a palette PNG is about a third of the size of the RGBA one (64 colours keep
    the default matrix's report under 1 MB: 1,027,694 bytes at 128)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    buf.seek(0)
    with Image.open(buf) as im:
        pal = im.convert("RGB").quantize(64, method=Image.Quantize.MEDIANCUT,
                                         dither=Image.Dither.NONE)  # fmt: skip
    out = io.BytesIO()
    pal.save(out, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")


# One colour per layer of the read path (readbench.model.layers), in every figure.
LAYER_COLORS = {
    layers.USER: "#9edae5", layers.SYSCALL: "#1f77b4", layers.BPF: "#ff7f0e", layers.VFS: "#aec7e8",
    layers.PIPE: "#e377c2", layers.FS: "#2ca02c", layers.LOOKUP: "#98df8a", layers.FILL: "#bcbd22",
    layers.MAPPING: "#dbdb8d", layers.BLOCK: "#8c564b", layers.DRIVER: "#c49c94",
    layers.IRQ: "#9467bd", layers.COPY: "#d62728", layers.LOCKS: "#ff9896", layers.SCHED: "#c5b0d5",
    layers.MM: "#17becf", layers.DEVICE: "#393b79", layers.RUNQ: "#6b6ecf",
    layers.OFF_CPU: "#c7c7c7", layers.OTHER: "#7f7f7f",
}  # fmt: skip
assert set(LAYER_COLORS) == set(layers.NAMES)


def _log2_sizes(ax: plt.Axes, sizes: Sequence[int]) -> None:
    ax.set_xscale("log", base=2)
    ticks = sorted(set(int(s) for s in sizes))
    ax.set_xticks(ticks)
    ax.xaxis.set_major_formatter(_SIZE_FMT)
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.tick_params(axis="x", labelrotation=45)


def _plain_log_labels(ax: plt.Axes, values: Sequence[float], axis: str = "y") -> None:
    # with parse_math off the default log labels would print raw "$\\mathdefault...$"
    fmt = FuncFormatter(lambda x, _pos: f"{x:g}")
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(fmt)
    lo, hi = float(np.min(values)), float(np.max(values))
    target.set_minor_formatter(fmt if hi / max(lo, 1e-12) < 20 else NullFormatter())
    if axis == "x":
        ax.tick_params(axis="x", which="both", labelsize=7, labelrotation=45)


def _facets(n: int, width: float = 5.0, height: float = 3.6) -> tuple[plt.Figure, list[plt.Axes]]:
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(
        rows, cols, figsize=(width * cols, height * rows), squeeze=False, layout="constrained"
    )
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


@_quiet
def overhead_vs_size(comps: list[dict[str, Any]], margin: float) -> Figure | None:
    """Overhead % vs buffer size per hook with each claim's 95 % interval, log-x; filled
    markers = significant after Holm, hollow = not. The caption names the estimator of the
    claims plotted (paired, or unpaired for runs before the paired design)."""
    rows = [c for c in comps if c.get("ratio") is not None]
    if not rows:
        return None
    with plt.rc_context(RC):
        df = pd.DataFrame(rows)
        keys = sorted(df["workload"].unique())
        fig, axes = _facets(len(keys))
        palette = _hook_palette(sorted(df["hook"].unique()))
        for ax, w in zip(axes, keys, strict=True):
            sub = df[df["workload"] == w]
            for hook, g in sub.groupby("hook"):
                g = g.sort_values("size")
                col = palette[hook]
                # a cell with too few processes for an interval: its point, no band
                cis = [
                    c if c else (o, o)
                    for c, o in zip(g["overhead_ci95_pct"], g["overhead_pct"], strict=True)
                ]
                lo = [c[0] for c in cis]
                hi = [c[1] for c in cis]
                ax.fill_between(g["size"], lo, hi, color=col, alpha=0.2, linewidth=0)
                # error bars as well: a band has no width when a workload has one size
                ax.errorbar(
                    g["size"],
                    g["overhead_pct"],
                    yerr=[g["overhead_pct"] - lo, np.array(hi) - g["overhead_pct"]],
                    fmt="none",
                    ecolor=col,
                    elinewidth=0.8,
                    capsize=3,
                )
                ax.plot(g["size"], g["overhead_pct"], color=col, label=_label(str(hook)))
                sig = g["significant"].astype(bool)
                ax.scatter(g["size"][sig], g["overhead_pct"][sig], color=col, zorder=3, s=22)
                ax.scatter(
                    g["size"][~sig],
                    g["overhead_pct"][~sig],
                    facecolors="white",
                    edgecolors=col,
                    zorder=3,
                    s=22,
                )
            ax.axhline(0, color="black", linewidth=0.8)
            for m in (-margin * 100, margin * 100):
                ax.axhline(m, color="grey", linewidth=0.6, linestyle="--")
            _log2_sizes(ax, sub["size"])
            ax.set_title(f"workload: {w}")
            ax.set_xlabel("buffer size (bytes)")
            ax.set_ylabel("overhead vs none (%)")
            ax.legend(fontsize=7, title="hook (● significant, ○ not)", title_fontsize=7)
        return Figure(
            "fig-overhead",
            "Hook overhead vs buffer size",
            _encode(fig, dpi=80),
            "Line plot of overhead percent against buffer size per hook, with CI bands",
            _overhead_caption(rows) + " Filled = significant after Holm; dashed = "
            f"equivalence margin ±{margin * 100:g} %.",
        )


PAIRED_ESTIMATOR = (
    "exp(Hodges-Lehmann pseudo-median of the per-process median log(on/off)) − 1, hook on "
    "and off inside each worker process; band = its exact 95 % signed-rank interval"
)
UNPAIRED_ESTIMATOR = (
    "exp(Hodges-Lehmann shift of log per-process medians, hooked vs baseline cell) − 1; "
    "band = 95 % two-level bootstrap interval"
)


def _overhead_caption(rows: list[dict[str, Any]]) -> str:
    designs = {r.get("design", "unpaired") for r in rows}
    parts = []
    if "paired" in designs:
        parts.append(f"paired claims: {PAIRED_ESTIMATOR}")
    if designs - {"paired"}:
        parts.append(f"unpaired claims (a run before the paired design): {UNPAIRED_ESTIMATOR}")
    return "Overhead = " + "; ".join(parts) + "."


@_quiet
def overhead_heatmap(comps: list[dict[str, Any]], alpha: float) -> Figure | None:
    rows = [c for c in comps if c.get("ratio") is not None]
    if not rows:
        return None
    with plt.rc_context(RC):
        df = pd.DataFrame(rows)
        df["row"] = df["workload"].astype(str) + " · " + df["hook"].astype(str)
        df["size_l"] = df["size"].map(size_label) + df["buf_offset"].map(
            lambda o: f"+{o}" if o else ""
        )
        order = [size_label(s) for s in sorted(df["size"].unique())]
        cols = sorted(df["size_l"].unique(), key=lambda s: (order.index(s.split("+")[0]), s))
        val = df.pivot_table(index="row", columns="size_l", values="overhead_pct", aggfunc="first")
        val = val.reindex(columns=cols)
        sig = df.pivot_table(
            index="row", columns="size_l", values="significant_bh", aggfunc="first"
        ).reindex(index=val.index, columns=cols)
        annot = np.empty(val.shape, dtype=object)
        for i in range(val.shape[0]):
            for j in range(val.shape[1]):
                v = val.iat[i, j]
                s = sig.iat[i, j]
                flagged = not pd.isna(s) and bool(s)
                annot[i, j] = "" if pd.isna(v) else (f"{v:.1f}" + ("" if flagged else "\nn.s."))
        h = 2.4 + 0.5 * len(val.index)
        w = 5.0 + 0.9 * len(cols)
        fig, ax = plt.subplots(figsize=(min(w, 16), min(h, 20)), layout="constrained")
        lim = float(np.nanmax(np.abs(val.to_numpy(dtype=float)))) or 1.0
        sns.heatmap(
            val.astype(float),
            annot=annot,
            fmt="",
            cmap="vlag",
            center=0,
            vmin=-lim,
            vmax=lim,
            ax=ax,
            annot_kws={"fontsize": 7},
            cbar_kws={"label": "overhead %"},
            linewidths=0.5,
            linecolor="white",
        )
        ax.set_yticklabels([_label(t.get_text()) for t in ax.get_yticklabels()], rotation=0)
        ax.set_xlabel("buffer size")
        ax.set_ylabel("workload · hook")
        ax.set_title(f"EXPLORATORY: overhead %, 'n.s.' = BH q ≥ {alpha:g}")
        return Figure(
            "fig-heatmap",
            "Overhead heatmap (exploratory, Benjamini-Hochberg)",
            _encode(fig, dpi=80),
            "Heatmap of overhead percent by workload, hook and size",
            "Exploratory view: cells marked n.s. are not significant after Benjamini-Hochberg "
            f"at q < {alpha:g}. Claims in the tables use Holm, not this map.",
        )


@_quiet
def distributions(cells: list[dict[str, Any]]) -> Figure | None:
    rows = []
    for c in cells:
        label = c["hook"] + (" (A/A copy)" if c.get("aa_copy") else "")
        for v in c.get("process_median_ns", []):
            rows.append(
                {
                    "workload": c["workload"],
                    "size": size_label(c["size"])
                    + (f"+{c['buf_offset']}" if c.get("buf_offset") else ""),
                    "size_n": c["size"],
                    "hook": _label(label),
                    "ns": v,
                }
            )
    if not rows:
        return None
    with plt.rc_context(RC):
        df = pd.DataFrame(rows)
        keys = sorted(df["workload"].unique())
        fig, axes = _facets(len(keys), width=5.5, height=3.0)
        hooks = sorted(df["hook"].unique())
        pal = _hook_palette(hooks)
        for ax, w in zip(axes, keys, strict=True):
            sub = df[df["workload"] == w].sort_values("size_n")
            order = list(dict.fromkeys(sub["size"]))
            here = set(sub["hook"])
            # box and points share one layout: same data, axes, order and colours; a panel
            # dodges only its own hooks (dodging all of the run's left most slots empty)
            common = {
                "data": sub, "x": "size", "y": "ns", "hue": "hook", "order": order,
                "hue_order": [h for h in hooks if h in here], "palette": pal,
                "ax": ax,
            }  # fmt: skip
            sns.boxplot(**common, showfliers=False, fill=False, legend=False, linewidth=0.8)
            # seaborn jitters with the global numpy RNG: seed it so a rebuilt report is
            # byte-identical, and restore it so callers' random streams are untouched
            state = np.random.get_state()
            try:
                np.random.seed(0)
                sns.stripplot(**common, dodge=True, size=3, alpha=0.7, legend=False)
            finally:
                np.random.set_state(state)
            ax.set_yscale("log")
            _plain_log_labels(ax, sub["ns"])
            ax.set_title(f"workload: {w}")
            ax.set_xlabel("buffer size")
            ax.set_ylabel("per-process median (ns/op, log)")
        # one legend below the panels: a legend in each panel listed every hook of the run
        # and covered the points
        handles = [plt.Line2D([], [], ls="", marker="o", color=pal[h]) for h in hooks]
        fig.legend(handles, hooks, loc="outside lower center", ncol=3, fontsize=7)
        return Figure(
            "fig-dist",
            "Latency distributions (per-process medians)",
            _encode(fig, dpi=80),  # many panels of dots and lines
            "Strip and box plots of per-process median ns per op",
            "Each dot is one worker process's median ns/op (the unit of replication); boxes "
            "show quartiles across processes.",
        )


def ecdf_panels(df: pd.DataFrame, max_panels: int) -> tuple[list[str], list[str]]:
    """Every panel in workload and size order, and the ones drawn. A hook's tail is what
    the figure is for, so panels with a hook beside the baseline come before
    baseline-only ones."""
    panels = list(dict.fromkeys(df.sort_values(["workload", "size_n"], kind="stable")["panel"]))
    n_hooks = df.groupby("panel")["hook"].nunique()
    shown = sorted(panels, key=lambda p: n_hooks[p] < 2)[:max_panels]
    return panels, sorted(shown, key=panels.index)


@_quiet
def ecdfs(
    cells: list[dict[str, Any]], values: dict[str, Any], max_panels: int = 6
) -> Figure | None:
    """ECDF of every value per cell, one panel per (workload, size): the tails, where
    a hook's cost can hide, which medians do not show. `values` maps cell name to its
    per-process arrays (ns/op)."""
    rows = []
    for c in cells:
        runs = values.get(c["name"])
        if not runs:
            continue
        panel = f"{c['workload']} / {size_label(c['size'])}" + (
            f"+{c['buf_offset']}" if c.get("buf_offset") else ""
        )
        label = _label(c["hook"] + (" (A/A copy)" if c.get("aa_copy") else ""))
        for r in runs:
            for v in r:
                rows.append({"panel": panel, "size_n": c["size"], "hook": label, "ns": float(v)})
    if not rows:
        return None
    with plt.rc_context(RC):
        df = pd.DataFrame(rows)
        df["workload"] = df["panel"].str.split(" / ").str[0]
        panels, shown = ecdf_panels(df, max_panels)
        fig, axes = _facets(len(shown), width=4.6, height=3.2)
        hooks = sorted(df["hook"].unique())
        pal = _hook_palette(hooks)
        for ax, panel in zip(axes, shown, strict=True):
            sub = df[df["panel"] == panel]
            here = set(sub["hook"])
            mine = [h for h in hooks if h in here]  # the legend lists these only
            sns.ecdfplot(data=sub, x="ns", hue="hook", hue_order=mine, palette=pal, ax=ax)
            ax.set_xscale("log")
            _plain_log_labels(ax, sub["ns"], axis="x")
            ax.set_title(panel)
            ax.set_xlabel("ns/op (every value, log)")
            leg = ax.get_legend()
            if leg is not None:
                leg.set_title(None)
                for t in leg.get_texts():
                    t.set_fontsize(7)
        more = (
            f" Showing {len(shown)} of {len(panels)} panels, those with a hook first."
            if len(panels) > len(shown)
            else ""
        )
        return Figure(
            "fig-ecdf",
            "Latency ECDFs (all values)",
            _encode(fig, dpi=80),  # many panels of dots and lines
            "Empirical CDFs of ns per op for each workload and size, by hook",
            "Every value of every process pooled per cell, for shape and tails only: tests "
            "use per-process medians." + more,
        )


@_quiet
def copy_fraction(perf: list[dict[str, Any]]) -> Figure | None:
    rows = [p for p in perf if p.get("copy_fraction") is not None]
    if not rows:
        return None
    with plt.rc_context(RC):
        df = pd.DataFrame(rows)
        df["pct"] = df["copy_fraction"] * 100
        df["series"] = (df["workload"] + " · " + df["hook"]).map(_label)
        fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
        sns.lineplot(data=df, x="size", y="pct", hue="series", marker="o", ax=ax)
        _log2_sizes(ax, df["size"])
        # fractions are often a few %: a fixed 0-100 axis would flatten them
        ax.set_ylim(0, min(100.0, max(5.0, 1.3 * float(df["pct"].max()))))
        ax.set_xlabel("buffer size (bytes)")
        ax.set_ylabel("read() samples in copy routine (%)")
        ax.legend(fontsize=7)
        return Figure(
            "fig-copyfrac",
            "Copy fraction vs size",
            _encode(fig, dpi=80),
            "Line plot of copy-routine share of read samples vs size",
            "Share of perf samples of read() that fall in the copy routine (or on the inlined "
            "copy instruction), from the separate perf pass.",
        )


@_quiet
def copy_strategies(results: list[dict[str, Any]]) -> Figure | None:
    rows = [r for r in results if r.get("gbps") is not None]
    if not rows:
        return None
    with plt.rc_context(RC):
        df = pd.DataFrame(rows)
        df["variant"] = df["variant"].astype(str).map(_label)
        fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
        sns.lineplot(data=df, x="size", y="gbps", hue="variant", marker="o", ax=ax)
        _log2_sizes(ax, df["size"])
        ax.set_xlabel("copy size (bytes)")
        ax.set_ylabel("GB/s")
        return Figure(
            "fig-copy",
            "User-space copy strategies",
            _encode(fig, dpi=80),
            "Line plot of GB/s vs size per copy variant",
            "User-space replicas of the kernel copy loops (rep movsb, rep movsq, unrolled, "
            "libc memcpy).",
        )


@_quiet
def program_vs_mechanism(rows: list[dict[str, Any]]) -> Figure | None:
    rows = [r for r in rows if r.get("program_ns") is not None and r.get("delta_ns") is not None]
    if not rows:
        return None
    with plt.rc_context(RC):
        df = pd.DataFrame(rows).sort_values(["hook", "workload", "size"])
        df["label"] = (
            df["hook"].map(_label) + "  " + df["workload"] + "/" + df["size"].map(size_label)
        )
        # Horizontal bars: one row per hooked cell stays legible however many cells there are.
        fig, ax = plt.subplots(figsize=(9, 1.6 + 0.3 * len(df)), layout="constrained")
        y = np.arange(len(df))[::-1]
        # a split of a Δ that is not significant is noise: draw it faded and hatched
        sig = df["significant"].fillna(False).astype(bool).to_numpy()
        alpha = np.where(sig, 1.0, 0.35)
        for i in range(len(df)):
            ax.barh(y[i], df["program_ns"].iat[i], color="#4c72b0", alpha=alpha[i])
            m = df["mechanism_ns"].iat[i]
            ax.barh(
                y[i],
                m,
                left=df["program_ns"].iat[i] if m >= 0 else 0,
                color="#dd8452",
                alpha=alpha[i],
                hatch=None if sig[i] else "//",
            )
        ax.scatter(df["delta_ns"], y, color="black", zorder=3, s=14, label="total Δ (timing)")
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_yticks(y)
        ax.set_yticklabels(df["label"], fontsize=7)
        ax.set_xlabel("ns per read op")
        # legend from explicit patches: the first bar may be faded, the legend should not be
        handles = [
            *ax.get_legend_handles_labels()[0],
            Patch(color="#4c72b0", label="BPF program (over stats floor)"),
            Patch(color="#dd8452", label="mechanism (Δ − program)"),
            Patch(facecolor="#dd8452", alpha=0.35, hatch="//", label="Δ not significant"),
        ]
        ax.legend(handles=handles, fontsize=7)
        return Figure(
            "fig-progmech",
            "Program vs mechanism time per hook",
            _encode(fig, dpi=80),
            "Stacked bars of BPF program time and mechanism time per hooked cell",
            "Program time = (Σ run_time_ns − floor × run_cnt) / ops from the BPF_ENABLE_STATS "
            "side pass (floor: same program, never-matching filter); mechanism "
            "= the claim's Δ (ratio − 1 times the hook-off median, from the timing pass) minus "
            "program time (attach trampoline, syscall slow path). "
            "Faded, hatched bars: Δ not significant after Holm, so the split is noise.",
        )


def _forest(df: pd.DataFrame, width: float, row: float, xlabel: str, title: str) -> plt.Figure:
    """Ratios with their 95 % CIs, one row per cell; red = significant after Holm."""
    fig, ax = plt.subplots(figsize=(width, 1.8 + row * len(df)), layout="constrained")
    y = np.arange(len(df))
    cis = [c if c else (r, r) for c, r in zip(df["ratio_ci95"], df["ratio"], strict=True)]
    lo = df["ratio"] - [c[0] for c in cis]
    hi = [c[1] for c in cis] - df["ratio"]
    colors = ["#c44e52" if s else "#4c72b0" for s in df["significant"]]
    ax.errorbar(df["ratio"], y, xerr=[lo, hi], fmt="none", ecolor=colors)
    ax.scatter(df["ratio"], y, c=colors, zorder=3, s=16)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels([_label(str(n)) for n in df["name"]], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return fig


@_quiet
def aa_forest(aa: list[dict[str, Any]], rate: float | None, alpha: float) -> Figure | None:
    """`rate`: the uncorrected A/A rate (the one that means something; Holm's is ~0)."""
    rows = [c for c in aa if c.get("ratio") is not None]
    if not rows:
        return None
    with plt.rc_context(RC):
        df = pd.DataFrame(rows).sort_values(["workload", "size"]).reset_index(drop=True)
        r = "n/a" if rate is None else f"{rate:.1%}"
        fig = _forest(
            df,
            7,
            0.3,
            "ratio sham-toggled / off arm: exp(pseudo-median of per-process log ratios), "
            "exact 95 % CI",
            f"A/A: {r} flagged uncorrected at α = {alpha:g}; red = flagged after Holm",
        )
        return Figure(
            "fig-aa",
            "A/A false-positive check",
            _encode(fig),
            "Forest plot of A/A ratios with confidence intervals",
            "Each baseline measured paired against itself: the second arm attaches and detaches "
            "a sham BPF link on a point the read never reaches, exactly as a hook toggles. "
            "Any flagged cell is a false positive (or a side effect of toggling).",
        )


@_quiet
def compare_forest(rows: list[dict[str, Any]], title: str, fig_id: str) -> Figure | None:
    rows = [r for r in rows if r.get("ratio") is not None]
    if not rows:
        return None
    with plt.rc_context(RC):
        df = pd.DataFrame(rows).reset_index(drop=True)
        xlabel = "ratio B / A: exp(HL shift of log per-process medians), 95 % bootstrap CI"
        fig = _forest(df, 8, 0.28, xlabel, title)
        return Figure(
            fig_id,
            title,
            _encode(fig),
            "Forest plot of per-cell ratios between two runs",
            "Red = significant after Holm across this comparison's common cells.",
        )


def _anatomy_frame(perf: list[dict[str, Any]]) -> pd.DataFrame | None:
    rows = []
    for p in perf:
        a = p.get("anatomy")
        for layer in a["layers"] if a else []:
            rows.append({"workload": p["workload"], "size": int(p["size"]),
                         "layer": layer["layer"], "ns": layer["ns"]})  # fmt: skip
    return pd.DataFrame(rows) if rows else None


def _hook_palette(hooks: list[str]) -> dict[str, Any]:
    """A colour per hook, none repeated: colorblind-safe up to its 10 colours, tab20 above
    (a cycled palette gave two hooks one colour)."""
    name = "colorblind" if len(hooks) <= 10 else "tab20"
    return dict(zip(hooks, sns.color_palette(name, len(hooks)), strict=True))


def _layer_legend(fig: plt.Figure, present: list[str]) -> None:
    handles = [plt.Rectangle((0, 0), 1, 1, color=LAYER_COLORS.get(k, "#7f7f7f")) for k in present]
    fig.legend(handles, present, loc="outside lower center", ncol=5, fontsize=7)


def _stacks(df: pd.DataFrame, w: str) -> pd.DataFrame:
    """Sizes × layers (ns per read) of one workload, layers in read-path order."""
    sub = df[df["workload"] == w].pivot_table(
        index="size", columns="layer", values="ns", aggfunc="median"
    )
    sub = sub.sort_index()
    return sub[[c for c in layers.order(list(sub.columns)) if sub[c].fillna(0).sum() > 0]]


def _bars(ax: plt.Axes, sub: pd.DataFrame, share: bool, present: list[str]) -> None:
    """One stacked bar per size; to 100 % (`share`) or in ns per read."""
    x = np.arange(len(sub.index))
    total = sub.fillna(0).sum(axis=1).to_numpy()
    bottom = np.zeros(len(x))
    for layer in sub.columns:
        vals = sub[layer].fillna(0).to_numpy()
        if share:
            vals = vals / np.where(total > 0, total, 1) * 100
        ax.bar(x, vals, bottom=bottom, color=LAYER_COLORS[layer], width=0.8)
        bottom += vals
        if layer not in present:
            present.append(layer)
    if share:
        for xi, t in zip(x, total, strict=True):
            ax.text(xi, 101, f"{t:,.0f}", ha="center", va="bottom", fontsize=6, rotation=90)
        ax.set_ylim(0, 128)
        ax.set_yticks([0, 25, 50, 75, 100])
        ax.set_ylabel("share of a read (%)")
    else:
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:,.0f}"))
        ax.set_ylabel("ns per read")
    ax.set_xticks(x)
    ax.set_xticklabels([size_label(s) for s in sub.index], rotation=45, fontsize=7)
    ax.tick_params(axis="y", labelsize=7)


@_quiet
def anatomy(perf: list[dict[str, Any]]) -> Figure | None:
    """Per workload, one row: the layers' shares of a read stacked to 100 % against size,
    beside the same stacks in ns per read (absolute time, to compare a layer across sizes);
    a workload whose reads span more than 30x gets a third panel with its smaller sizes."""
    df = _anatomy_frame(perf)
    if df is None:
        return None
    with plt.rc_context(RC):
        keys = sorted(df["workload"].unique())
        stacks = {w: _stacks(df, w) for w in keys}
        small: dict[str, pd.DataFrame] = {}
        for w, sub in stacks.items():
            total = sub.fillna(0).sum(axis=1)
            if len(sub) > 3 and total.max() > 30 * max(total.min(), 1e-9):
                small[w] = sub[total <= float(np.sqrt(total.min() * total.max()))]
        ncols = 3 if small else 2
        fig, axes = plt.subplots(
            len(keys), ncols, figsize=(4.3 * ncols, 2.2 * len(keys) + 0.6), squeeze=False,
            layout="constrained", width_ratios=[1.25, 1, 1][:ncols],
        )  # fmt: skip
        present: list[str] = []
        for row, w in zip(axes, keys, strict=True):
            _bars(row[0], stacks[w], True, present)
            row[0].set_title(f"{_label(w)}: shares (total ns above each bar)")
            _bars(row[1], stacks[w], False, present)
            row[1].set_title(f"{_label(w)}: ns per read")
            if ncols == 3:
                if w in small:
                    _bars(row[2], small[w], False, present)
                    row[2].set_title(f"{_label(w)}: up to {size_label(small[w].index.max())}")
                else:
                    row[2].set_visible(False)
        for ax in axes[-1]:
            ax.set_xlabel("buffer size")
        _layer_legend(fig, layers.order(present))
        return Figure(
            "fig-anatomy",
            "Anatomy of a read(): shares beside ns per read",
            _encode(fig, dpi=85),
            "Per workload: stacked bars of each layer's share of a read and of its ns per read, "
            "against buffer size",
            "On-CPU samples placed in layers by their kernel call chain, scaled by task-clock "
            "per read; off the CPU, the device wait measured from the block tracepoints and "
            "the rest of wall − CPU. Left: shares stacked to 100 % (the read's total ns above "
            "each bar); middle: the same stacks in ns per read (linear axis); right, where a "
            "workload's reads span more than 30×: its smaller sizes.",
        )


@_quiet
def coverage_heatmap(cov: dict[str, Any] | None) -> Figure | None:
    """Points × read kinds, measured fires per op (annotated; 0 shows as a pale cell). Rows
    that no attach type reaches, or that never fired on any kind, are left to the table."""
    if not cov or not cov.get("points"):
        return None
    kinds = [k["workload"] for k in cov["kinds"]]
    rows = []
    for r in cov["points"]:
        f = [r["fires_per_op"].get(k) for k in kinds]
        if all(v is None for v in f) or not any(v for v in f if v is not None):
            continue
        label = f"{r['group']}:{r['target']}" if r.get("group") else r["target"]
        rows.append((f"{label} ({r['via']})", f))
    if not rows:
        return None
    with plt.rc_context(RC):
        val = pd.DataFrame([f for _, f in rows], index=[_label(n) for n, _ in rows],
                           columns=kinds, dtype=float)  # fmt: skip
        annot = val.map(lambda v: "" if pd.isna(v) else ("0" if v == 0 else f"{v:.2g}"))
        fig, ax = plt.subplots(
            figsize=(min(3.5 + 0.8 * len(kinds), 16), min(1.8 + 0.32 * len(rows), 24)),
            layout="constrained",
        )
        shown = np.log10(1 + val.astype(float))
        sns.heatmap(shown, annot=annot.to_numpy(), fmt="", cmap="rocket_r", vmin=0,
                    ax=ax, annot_kws={"fontsize": 7}, linewidths=0.5, linecolor="white",
                    cbar_kws={"label": "log10(1 + fires per op)"})  # fmt: skip
        ax.set_xticklabels(ax.get_xticklabels(), rotation=40, ha="right")
        ax.set_xlabel("read kind")
        ax.set_ylabel("point (attach type it was counted with)")
        ax.set_title(f"fires per op, {size_label(cov['size'])} B per op")
        return Figure(
            "fig-coverage",
            "Coverage: which points see which reads",
            _encode(fig, dpi=80),
            "Heatmap of measured fires per operation, hook points by read kind",
            "Measured with the atlas's counting program, gated to each read loop's timed "
            "window (an eviction or pipe drain between segments is never counted). Points no "
            "attach type reaches here and points that never fired on any kind are only in the "
            "table below.",
        )
