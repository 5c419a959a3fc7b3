"""The call path drawn: an icicle (a flame graph upside down, the syscall on top) of one
cell's kernel call chains, as inline SVG.

Why not a library: no maintained flame-graph renderer fits a page whose CSP forbids scripts
and fetches. Brendan Gregg's flamegraph.pl is not packaged in Debian 12 and its SVG carries
the JavaScript the CSP refuses; inferno is Rust; d3-flame-graph and speedscope are browser
apps; flameprof reads cProfile output only. A static icicle is rectangles and text: the layout
is computed here and written through jinja2 (the report's templating, which escapes every
function name), so each frame keeps a native SVG <title> tooltip (function, layer, share,
inclusive ns per read) without a line of script, stays sharp at any zoom, and is a few KB.
Frames are coloured by their layer, with the same colours as the anatomy figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from readbench.model import layers

WIDTH = 1200.0  # SVG user units, about the page's width in pixels (the <svg> scales to it)
ROW = 16
CHAR = 6.6  # width of one character of the 11px monospace label
MIN_FRACTION = 0.02  # frames narrower than this share of the samples (24 px) are not drawn
MAX_DEPTH = 48


@dataclass(frozen=True)
class Frame:
    x: float
    y: float
    w: float
    tx: float  # label position
    ty: float
    label: str
    title: str
    css: str  # class of its layer's colour


def layer_class(layer: str) -> str:
    """The CSS class of a layer's colour (`.lyN`, N its order)."""
    known = layers.BY_NAME.get(layer) or layers.BY_NAME[layers.OTHER]
    return f"ly{known.order}"


def layout(
    tree: dict[str, Any], cpu_ns: float, min_fraction: float = MIN_FRACTION
) -> tuple[list[Frame], float]:
    """(frames, height) of the icicle of `tree` (analysis.anatomy.call_tree): each frame as
    wide as its inclusive samples, children left to right heaviest first; `cpu_ns` (the
    on-CPU ns per read) turns a frame's share of the samples into ns per read."""
    total = tree["samples"]
    frames: list[Frame] = []
    depth_seen = 0

    def visit(node: dict[str, Any], x: float, depth: int) -> None:
        nonlocal depth_seen
        share = node["samples"] / total
        w = share * WIDTH
        if share < min_fraction or depth > MAX_DEPTH:
            return
        depth_seen = max(depth_seen, depth)
        name = node["name"]
        if depth == 0:
            name = f"read(): {total:,} samples, {cpu_ns:,.0f} ns on CPU per read"
        title = f"{node['name']} · {node['layer']} · {share:.1%} · {share * cpu_ns:,.0f} ns"
        y = int(depth * ROW)
        frames.append(Frame(round(x, 1), y, round(w, 1), round(x + 2, 1), y + 11.5,
                            _fit(name, w), title, layer_class(node["layer"])))  # fmt: skip
        for child in node["children"]:
            visit(child, x, depth + 1)
            x += child["samples"] / total * WIDTH

    visit(tree, 0.0, 0)
    return frames, (depth_seen + 1) * ROW


def _fit(name: str, w: float) -> str:
    room = int((w - 4) / CHAR)
    if room >= len(name):
        return name
    return name[: room - 2] + ".." if room >= 4 else ""


def css() -> str:
    """The stylesheet of the icicles: one class per layer's colour."""
    from readbench.render.figures import LAYER_COLORS

    rules = [f"g.{layer_class(n)}{{fill:{c}}}" for n, c in LAYER_COLORS.items()]
    return (
        "svg.icicle{width:100%;height:auto;border:1px solid #eee}"
        "svg.icicle text{font:11px monospace;fill:#111;pointer-events:none}"
        "svg.icicle rect{stroke:#fff;stroke-width:.5;height:15px}" + "".join(rules)
    )
