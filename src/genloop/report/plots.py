"""The report's charts: matplotlib figures drawn off-screen (Agg) and returned as PNG data: URIs.

No pyplot: each chart is a bare `Figure` on its own Agg canvas, so building a report
never touches a GUI backend or the global figure list of whoever imported us. A CJK
font (WenQuanYi Micro Hei, Noto Sans CJK, ...) is added as a fallback after DejaVu Sans
when one is installed, so Chinese labels draw as glyphs, not boxes.
"""

from __future__ import annotations

import base64
import io
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import date2num
from matplotlib.figure import Figure

CJK_FONT_FILES = (
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
)
CJK_FONT_NAMES = (
    "WenQuanYi Micro Hei",
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "SimHei",
    "Microsoft YaHei",
    "PingFang SC",
)
MAX_POINTS = 2000  # per line: more than a 900-px-wide chart can show
MAX_NOTES = 5000  # per piano roll
COLOURS = ("#3b6fd8", "#d9534f", "#2f9e6f", "#8a5cd6", "#e0a030", "#3aa6b9", "#6b7280")


@lru_cache(maxsize=1)
def font_family() -> tuple[str, ...]:
    """DejaVu Sans, then the first CJK font this machine has (none: Latin glyphs only)."""
    from matplotlib import font_manager

    for path in CJK_FONT_FILES:
        if path.is_file():
            try:
                font_manager.fontManager.addfont(str(path))
            except Exception:  # an unreadable font file: try the next one
                continue
    installed = {font.name for font in font_manager.fontManager.ttflist}
    cjk = next((name for name in CJK_FONT_NAMES if name in installed), None)
    return ("DejaVu Sans", cjk) if cjk else ("DejaVu Sans",)


@contextmanager
def _style() -> Iterator[None]:
    settings: Any = {  # Any: matplotlib types the keys as one big Literal
        "font.family": list(font_family()),
        "font.size": 9,
        "axes.grid": True,
        "axes.formatter.useoffset": False,  # 0.3153 on the axis, not 1e-5 + 3.153e-1
    }
    with rc_context(settings), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing")
        yield


def figure_uri(figure: Figure) -> str:
    """The figure as a PNG data: URI."""
    canvas = FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    canvas.print_png(buffer)
    return png_uri(buffer.getvalue())


def png_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _thin(xs: Sequence[float], ys: Sequence[float]) -> tuple[Sequence[float], Sequence[float]]:
    stride = max(1, len(xs) // MAX_POINTS)
    return xs[::stride], ys[::stride]


def _new(width: float = 7.5, height: float = 3.0) -> Figure:
    figure = Figure(figsize=(width, height), dpi=110, layout="constrained")
    return figure


def bar_chart(counts: Mapping[str, int], *, title: str, limit: int = 40) -> str:
    """Horizontal bars (label → count), the largest `limit` of them."""
    items = sorted(counts.items(), key=lambda item: -item[1])[:limit]
    with _style():
        figure = _new(7.5, max(1.6, 0.22 * len(items) + 0.8))
        axes = figure.add_subplot()
        names = [name for name, _ in items][::-1]
        axes.barh(names, [n for _, n in items][::-1], color=COLOURS[0])
        axes.set_title(title)
        axes.grid(axis="y", visible=False)
        return figure_uri(figure)


def loss_chart(series: Mapping[str, tuple[Sequence[float], Sequence[float]]], *, title: str) -> str:
    """One line per metric (name → (steps, values)); held-out ones dashed, epoch points marked."""
    with _style():
        figure = _new()
        axes = figure.add_subplot()
        for i, (name, (steps, values)) in enumerate(sorted(series.items())):
            xs, ys = _thin(steps, values)
            heldout = any(word in name for word in ("heldout", "val", "test", "eval"))
            axes.plot(
                xs,
                ys,
                label=name,
                color=COLOURS[i % len(COLOURS)],
                linestyle="--" if heldout else "-",
                marker="o" if len(xs) <= 40 else None,
                markersize=3,
            )
        axes.set_xlabel("step")
        axes.set_ylabel("loss")
        axes.set_title(title)
        axes.legend(fontsize=8)
        return figure_uri(figure)


def metric_chart(
    name: str, versions: Sequence[int], values: Sequence[float], gates: Sequence[tuple[str, float]]
) -> str:
    """One metric across model versions; each gate (kind, threshold) a horizontal line."""
    with _style():
        figure = _new(3.6, 2.6)
        axes = figure.add_subplot()
        axes.plot(versions, values, marker="o", color=COLOURS[0])
        for kind, threshold in gates:
            axes.axhline(threshold, color=COLOURS[1], linestyle="--", linewidth=1.2)
            axes.annotate(
                f"{kind} {threshold:g}",
                (1.0, threshold),
                xycoords=("axes fraction", "data"),
                ha="right",
                va="bottom",
                color=COLOURS[1],
                fontsize=8,
            )
        axes.set_xticks(list(versions), [f"v{v}" for v in versions])
        axes.set_title(name, fontsize=9)
        return figure_uri(figure)


def feedback_chart(events: Mapping[str, Sequence[tuple[datetime, str]]], *, title: str) -> str:
    """Cumulative likes (solid) and dislikes (dashed) over time, one colour per model version."""
    with _style():
        figure = _new()
        axes = figure.add_subplot()
        for i, (version, votes) in enumerate(events.items()):
            colour = COLOURS[i % len(COLOURS)]
            for kind, style, marker in (("like", "-", "o"), ("dislike", "--", "x")):
                times = [float(date2num(when)) for when, k in votes if k == kind]
                if times:
                    xs, ys = _thin(times, list(range(1, len(times) + 1)))
                    axes.step(
                        xs,
                        ys,
                        where="post",
                        color=colour,
                        linestyle=style,
                        marker=marker if len(xs) <= 200 else None,  # a single vote is a point, not a line
                        markersize=3,
                        label=f"{version} {kind}s",
                    )
        axes.xaxis_date()
        axes.set_ylabel("votes (cumulative)")
        axes.set_title(title)
        axes.legend(fontsize=8)
        figure.autofmt_xdate()
        return figure_uri(figure)


def piano_roll(notes: Sequence[tuple[float, float, int]], *, title: str) -> str:
    """Notes (start s, duration s, MIDI pitch) as bars: time across, pitch up."""
    shown: list[Any] = list(notes[:MAX_NOTES])
    with _style():
        figure = _new(7.5, 2.8)
        axes = figure.add_subplot()
        if shown:
            axes.barh(
                [pitch for _, _, pitch in shown],
                [duration for _, duration, _ in shown],
                left=[start for start, _, _ in shown],
                height=0.8,
                color=COLOURS[3],
            )
        else:
            axes.text(0.5, 0.5, "no notes", ha="center", va="center", transform=axes.transAxes)
        axes.set_xlabel("seconds")
        axes.set_ylabel("MIDI pitch")
        axes.set_title(title)
        return figure_uri(figure)
