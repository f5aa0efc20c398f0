"""The portfolio page's monthly cash flows as a server-rendered SVG bar chart. Pure.

No Flask, no database, no float: coordinates are ``int`` computed with integer
arithmetic (rounded half up), amounts are ``int`` minor units. Input is what
``portfolio.monthly_cash_flows`` returns: one ``{"month": "YYYY-MM", "out",
"principal", "interest"}`` per month, oldest first. Each month gets three bars
(lent out, principal back, interest back); ``describe`` is the chart in words
(the SVG's ``<desc>``), and every bar has its own ``<title>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

from ..money import format_amount
from ..pools.chart import axis_ticks

WIDTH = 640
HEIGHT = 340
LEFT = 84
RIGHT = 16
TOP = 44
BOTTOM = 56
PLOT_WIDTH = WIDTH - LEFT - RIGHT
PLOT_HEIGHT = HEIGHT - TOP - BOTTOM
TITLE = "Money lent out and received back, by month"
SERIES = (
    ("out", "Lent out", "bar-out"),
    ("principal", "Principal back", "bar-principal"),
    ("interest", "Interest back", "bar-interest"),
)
MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
LONG_MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


@dataclass(frozen=True)
class MonthFlows:
    """One calendar month of a lender's cash flows (minor units, all >= 0)."""

    month: str  # "YYYY-MM"
    out: int
    principal: int
    interest: int

    @property
    def year(self) -> int:
        return int(self.month[:4])

    @property
    def number(self) -> int:
        return int(self.month[5:7])

    @property
    def long_name(self) -> str:
        return f"{LONG_MONTH_NAMES[self.number - 1]} {self.year}"

    @property
    def short_name(self) -> str:
        return MONTH_NAMES[self.number - 1]


def months_from_rows(rows: Sequence[Mapping]) -> list[MonthFlows]:
    """``monthly_cash_flows`` rows -> :class:`MonthFlows` (negative values are clamped to 0)."""
    return [
        MonthFlows(
            str(row["month"]),
            max(0, int(row["out"])),
            max(0, int(row["principal"])),
            max(0, int(row["interest"])),
        )
        for row in rows
    ]


def _scaled(value: int, span: int, pixels: int) -> int:
    """``value * pixels / span`` rounded half up, in integers (value, span >= 0)."""
    return (2 * value * pixels + span) // (2 * span)


def totals(months: Sequence[MonthFlows]) -> dict[str, int]:
    return {key: sum(getattr(m, key) for m in months) for key, _, _ in SERIES}


def describe(months: Sequence[MonthFlows], currency: str) -> str:
    """The chart in words: the period, the totals, the busiest month."""
    if not months:
        return "No months to show."
    period = f"{months[0].long_name} to {months[-1].long_name}"
    total = totals(months)
    if not any(total.values()):
        return f"From {period} no money was lent out or received back."
    said = ", ".join(f"{label.lower()} {format_amount(total[key], currency)}" for key, label, _ in SERIES)
    active = [m for m in months if m.out or m.principal or m.interest]
    busiest = max(months, key=lambda m: (m.principal + m.interest, m.out))
    text = f"From {period}: {said}. Money moved in {len(active)} of {len(months)} months."
    if busiest.principal + busiest.interest:
        text += (
            f" Most received in {busiest.long_name}: {format_amount(busiest.principal + busiest.interest, currency)}."
        )
    return text


def _text(x: int, y: int, body: str, cls: str, anchor: str = "middle", extra: str = "") -> str:
    return f'<text x="{x}" y="{y}" class="{cls}" text-anchor="{anchor}"{extra}>{escape(body)}</text>'


def _legend() -> list[str]:
    out = ['<g class="chart-legend">']
    x = LEFT
    for _, label, cls in SERIES:
        out.append(f'<rect class="{cls}" x="{x}" y="12" width="14" height="14"/>')
        out.append(_text(x + 20, 24, label, "chart-legend-label", "start"))
        x += 24 + 8 * len(label) + 24
    out.append("</g>")
    return out


def render_svg(rows: Sequence[Mapping], *, currency: str, chart_id: str = "cash-flow-chart") -> str:
    """The whole ``<svg>`` element (every text escaped), one image with a title and a description."""
    months = months_from_rows(rows)
    cid = escape(chart_id)
    biggest = max([max(m.out, m.principal, m.interest) for m in months] + [0])
    ticks = axis_ticks(biggest)
    y_max = ticks[-1]
    bottom = TOP + PLOT_HEIGHT
    right = LEFT + PLOT_WIDTH

    def y(value: int) -> int:
        return bottom - _scaled(min(max(value, 0), y_max), y_max, PLOT_HEIGHT)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="cash-flow-chart" viewBox="0 0 {WIDTH} {HEIGHT}"'
        f' width="{WIDTH}" height="{HEIGHT}" role="img" aria-labelledby="{cid}-title {cid}-desc"'
        ' preserveAspectRatio="xMinYMin meet">',
        f'<title id="{cid}-title">{escape(TITLE)}</title>',
        f'<desc id="{cid}-desc">{escape(describe(months, currency))}</desc>',
        *_legend(),
        '<g class="chart-grid">',
    ]
    for tick in ticks[1:]:
        out.append(f'<line x1="{LEFT}" y1="{y(tick)}" x2="{right}" y2="{y(tick)}"/>')
    out.append("</g>")
    out.append('<g class="chart-y-ticks">')
    for tick in ticks:
        out.append(_text(LEFT - 8, y(tick) + 4, format_amount(tick), "chart-tick-label", "end"))
    out.append("</g>")
    mid_y = TOP + PLOT_HEIGHT // 2
    out.append(
        _text(18, mid_y, f"Amount ({currency})", "chart-axis-title", extra=f' transform="rotate(-90 18 {mid_y})"')
    )
    if months:
        slot = PLOT_WIDTH // len(months)
        pad = max(1, slot // 8)
        bar = max(1, (slot - 2 * pad) // len(SERIES))
        out.append('<g class="chart-bars">')
        for index, month in enumerate(months):
            x0 = LEFT + index * slot + pad
            for offset, (key, label, cls) in enumerate(SERIES):
                value = getattr(month, key)
                if value <= 0:
                    continue
                top = y(value)
                height = max(1, bottom - top)
                tip = f"{month.long_name}, {label.lower()}: {format_amount(value, currency)}"
                out.append(
                    f'<rect class="bar {cls}" x="{x0 + offset * bar}" y="{bottom - height}" width="{bar}"'
                    f' height="{height}" data-month="{escape(month.month)}" data-amount="{value}">'
                    f"<title>{escape(tip)}</title></rect>"
                )
        out.append("</g>")
        out.append('<g class="chart-x-ticks">')
        for index, month in enumerate(months):
            centre = LEFT + index * slot + slot // 2
            out.append(_text(centre, bottom + 18, month.short_name, "chart-tick-label"))
            if index == 0 or month.number == 1:
                out.append(_text(centre, bottom + 34, str(month.year), "chart-tick-label"))
        out.append("</g>")
    if not any(totals(months).values()):
        out.append(_text(LEFT + PLOT_WIDTH // 2, mid_y, "No money lent out or received yet", "chart-empty"))
    out.append(
        f'<g class="chart-axes" stroke="currentColor"><line x1="{LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}"/>'
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}"/></g>'
    )
    out.append("</svg>")
    return "\n".join(out)
