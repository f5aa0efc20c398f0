"""The portfolio page's monthly cash flows as a server-rendered SVG bar chart. Pure.

No Flask, no database, no float: coordinates are ``int`` computed with integer
arithmetic (rounded half up), amounts are ``int`` minor units. Input is what
``portfolio.monthly_cash_flows`` returns: one ``{"month": "YYYY-MM", "out",
"principal", "interest"}`` per month, oldest first. Each month gets three bars
(lent out, principal back, interest back); ``describe`` is the chart in words
(the SVG's ``<desc>``), and every bar has its own ``<title>``.

Words are English unless the caller passes its ``gettext`` (Flask-Babel's, with
``%(name)s`` variables), ``money`` (amount, currency -> text) and ``locale`` (for
month names); the chart is drawn per request, so they are the request's language.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from html import escape

from babel.dates import format_skeleton

from ..money import format_amount
from ..pools.chart import axis_ticks


def N_(message: str) -> str:  # noqa: N802  (the gettext convention: marked for extraction, translated later)
    return message


def _english(message: str, **values) -> str:
    """``gettext`` for callers that pass none: the message itself, with its ``%(name)s`` variables."""
    return message % values if values else message


WIDTH = 640
HEIGHT = 340
LEFT = 84
RIGHT = 16
TOP = 44
BOTTOM = 56
PLOT_WIDTH = WIDTH - LEFT - RIGHT
PLOT_HEIGHT = HEIGHT - TOP - BOTTOM
TITLE = N_("Money lent out and received back, by month")
SERIES = (  # key, legend label, CSS class, a bar's title
    ("out", N_("Lent out"), "bar-out", N_("%(month)s, lent out: %(amount)s")),
    ("principal", N_("Principal back"), "bar-principal", N_("%(month)s, principal back: %(amount)s")),
    ("interest", N_("Interest back"), "bar-interest", N_("%(month)s, interest back: %(amount)s")),
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


@dataclass(frozen=True)
class Words:
    """How the chart speaks: ``gettext``, amounts and month names (English by default)."""

    gettext: Callable[..., str] = _english
    money: Callable[[int, str], str] = format_amount
    locale: str | None = None

    def _english_months(self) -> bool:
        return self.locale is None or self.locale == "en"

    def long_month(self, month: MonthFlows) -> str:
        """``"November 2026"``, ``"marraskuu 2026"`` …"""
        if self._english_months():
            return month.long_name
        return format_skeleton("yMMMM", date(month.year, month.number, 1), locale=self.locale)

    def short_month(self, month: MonthFlows) -> str:
        """``"Nov"``, ``"marras"`` …"""
        if self._english_months():
            return month.short_name
        return format_skeleton("MMM", date(month.year, month.number, 1), locale=self.locale)


ENGLISH = Words()


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
    return {key: sum(getattr(m, key) for m in months) for key, *_rest in SERIES}


def describe(months: Sequence[MonthFlows], currency: str, words: Words = ENGLISH) -> str:
    """The chart in words: the period, the totals, the busiest month."""
    gettext = words.gettext
    if not months:
        return gettext("No months to show.")
    start, end = words.long_month(months[0]), words.long_month(months[-1])
    total = totals(months)
    if not any(total.values()):
        return gettext("From %(start)s to %(end)s no money was lent out or received back.", start=start, end=end)
    active = [m for m in months if m.out or m.principal or m.interest]
    busiest = max(months, key=lambda m: (m.principal + m.interest, m.out))
    text = gettext(
        "From %(start)s to %(end)s: lent out %(out)s, principal back %(principal)s, interest back %(interest)s. "
        "Money moved in %(active)s of %(count)s months.",
        start=start,
        end=end,
        out=words.money(total["out"], currency),
        principal=words.money(total["principal"], currency),
        interest=words.money(total["interest"], currency),
        active=len(active),
        count=len(months),
    )
    if busiest.principal + busiest.interest:
        most = gettext(
            "Most received in %(month)s: %(amount)s.",
            month=words.long_month(busiest),
            amount=words.money(busiest.principal + busiest.interest, currency),
        )
        text += " " + most
    return text


def _text(x: int, y: int, body: str, cls: str, anchor: str = "middle", extra: str = "") -> str:
    return f'<text x="{x}" y="{y}" class="{cls}" text-anchor="{anchor}"{extra}>{escape(body)}</text>'


def _legend(words: Words) -> list[str]:
    out = ['<g class="chart-legend">']
    x = LEFT
    for _key, label, cls, _tip in SERIES:
        label = words.gettext(label)
        out.append(f'<rect class="{cls}" x="{x}" y="12" width="14" height="14"/>')
        out.append(_text(x + 20, 24, label, "chart-legend-label", "start"))
        x += 24 + 8 * len(label) + 24
    out.append("</g>")
    return out


def render_svg(
    rows: Sequence[Mapping],
    *,
    currency: str,
    chart_id: str = "cash-flow-chart",
    gettext: Callable[..., str] | None = None,
    money: Callable[[int, str], str] | None = None,
    locale: str | None = None,
) -> str:
    """The whole ``<svg>`` element (every text escaped), one image with a title and a description.

    ``gettext``, ``money`` and ``locale`` (all optional: English) make it speak the reader's language.
    """
    words = Words(gettext or _english, money or format_amount, locale)
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
        f'<title id="{cid}-title">{escape(words.gettext(TITLE))}</title>',
        f'<desc id="{cid}-desc">{escape(describe(months, currency, words))}</desc>',
        *_legend(words),
        '<g class="chart-grid">',
    ]
    for tick in ticks[1:]:
        out.append(f'<line x1="{LEFT}" y1="{y(tick)}" x2="{right}" y2="{y(tick)}"/>')
    out.append("</g>")
    out.append('<g class="chart-y-ticks">')
    for tick in ticks:
        out.append(_text(LEFT - 8, y(tick) + 4, words.money(tick, ""), "chart-tick-label", "end"))
    out.append("</g>")
    mid_y = TOP + PLOT_HEIGHT // 2
    axis_title = words.gettext("Amount (%(currency)s)", currency=currency)
    out.append(_text(18, mid_y, axis_title, "chart-axis-title", extra=f' transform="rotate(-90 18 {mid_y})"'))
    if months:
        slot = PLOT_WIDTH // len(months)
        pad = max(1, slot // 8)
        bar = max(1, (slot - 2 * pad) // len(SERIES))
        out.append('<g class="chart-bars">')
        for index, month in enumerate(months):
            x0 = LEFT + index * slot + pad
            for offset, (key, _label, cls, tip) in enumerate(SERIES):
                value = getattr(month, key)
                if value <= 0:
                    continue
                top = y(value)
                height = max(1, bottom - top)
                tip_text = words.gettext(tip, month=words.long_month(month), amount=words.money(value, currency))
                out.append(
                    f'<rect class="bar {cls}" x="{x0 + offset * bar}" y="{bottom - height}" width="{bar}"'
                    f' height="{height}" data-month="{escape(month.month)}" data-amount="{value}">'
                    f"<title>{escape(tip_text)}</title></rect>"
                )
        out.append("</g>")
        out.append('<g class="chart-x-ticks">')
        for index, month in enumerate(months):
            centre = LEFT + index * slot + slot // 2
            out.append(_text(centre, bottom + 18, words.short_month(month), "chart-tick-label"))
            if index == 0 or month.number == 1:
                out.append(_text(centre, bottom + 34, str(month.year), "chart-tick-label"))
        out.append("</g>")
    if not any(totals(months).values()):
        empty = words.gettext("No money lent out or received yet")
        out.append(_text(LEFT + PLOT_WIDTH // 2, mid_y, empty, "chart-empty"))
    out.append(
        f'<g class="chart-axes" stroke="currentColor"><line x1="{LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}"/>'
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}"/></g>'
    )
    out.append("</svg>")
    return "\n".join(out)
