"""Self-contained HTML pages for people: tables and charts in one file, no network needed.

Charts are drawn with matplotlib (Agg, no display) and embedded as inline SVG: text is drawn
as paths, so the page needs no font or file beside it. The same figures can be saved as PNG
files beside the Markdown (``figure_png``).
"""

from __future__ import annotations

import html
import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # no display: the reports are drawn on servers and in CI

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

plt.rcParams.update({"svg.fonttype": "path", "svg.hashsalt": "mlm-recompute", "font.size": 10})
BAR, OTHER = "#3465a4", "#f57900"


def bar_chart(labels: Sequence[str], series: dict[str, Sequence[int]], title: str, *, log: bool = False, ylabel: str = "users") -> Figure:
    """Bars per label, one colour per series (side by side), with each bar's count above it."""
    figure = Figure(figsize=(7.2, 3.6), dpi=100)
    axes = figure.subplots()
    width = 0.8 / max(len(series), 1)
    for i, (name, values) in enumerate(series.items()):
        positions = [x + (i - (len(series) - 1) / 2) * width for x in range(len(labels))]
        bars = axes.bar(positions, list(values), width=width, label=name, color=(BAR, OTHER, "#73d216")[i % 3])
        axes.bar_label(bars, labels=[f"{v:,}" for v in values], fontsize=8, padding=2)
    axes.set_xticks(range(len(labels)), list(labels))
    axes.set_title(title)
    axes.set_ylabel(ylabel + (" (log scale)" if log else ""))
    if log:
        axes.set_yscale("symlog", linthresh=1)
    if len(series) > 1:
        axes.legend()
    axes.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    return figure


def heatmap(rows: Sequence[str], columns: Sequence[str], counts: Sequence[Sequence[int]], title: str, xlabel: str, ylabel: str) -> Figure:
    """A matrix of counts (rows x columns), each cell labelled with its count."""
    figure = Figure(figsize=(6.4, 0.5 * len(rows) + 2.0), dpi=100)
    axes = figure.subplots()
    axes.imshow(counts, cmap="Blues", aspect="auto")
    axes.set_xticks(range(len(columns)), list(columns))
    axes.set_yticks(range(len(rows)), list(rows))
    peak = max((max(r) for r in counts if len(r)), default=0)
    for i, row in enumerate(counts):
        for j, value in enumerate(row):  # one label per cell of a small matrix (ranks x ranks)
            axes.text(j, i, f"{value:,}", ha="center", va="center", color="white" if value > peak / 2 else "black", fontsize=9)
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    figure.tight_layout()
    return figure


def figure_svg(figure: Figure) -> str:
    """The figure as an inline ``<svg>`` element (no XML prolog)."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def figure_png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def table(header: Sequence[str], rows: Sequence[Sequence], *, numeric_from: int = 1) -> str:
    """An HTML table; columns from ``numeric_from`` on are right-aligned."""
    def cell(tag: str, value, i: int) -> str:
        align = ' class="n"' if i >= numeric_from else ""
        return f"<{tag}{align}>{html.escape('-' if value is None else str(value))}</{tag}>"

    head = "".join(cell("th", h, i) for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell("td", v, i) for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def paragraph(text: str) -> str:
    return f"<p>{html.escape(text)}</p>"


_STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: .6em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; } td.n, th.n { text-align: right; }
th { background: #eef; } svg { max-width: 100%; height: auto; display: block; margin: .6em 0; }
"""


def page(title: str, sections: Sequence[tuple[str, str]], subtitle: str = "") -> str:
    """One complete page: ``sections`` are (heading, HTML body) pairs."""
    parts = [f"<h2>{html.escape(heading)}</h2>\n{body}" for heading, body in sections]
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n{paragraph(subtitle) if subtitle else ''}\n" + "\n".join(parts) + "\n</body></html>\n"
    )
