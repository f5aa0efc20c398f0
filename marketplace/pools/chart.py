"""The pool page's price curve as a server-rendered SVG step chart. Pure.

No Flask, no database, no float: every coordinate is an ``int`` computed with
integer arithmetic (rounded half up), prices are ``int`` minor units.

``steps_from_bids`` turns the bids into :class:`Step` values (the best unit
price any bid offers, held over a range of volumes; gaps where no bid serves
a volume are kept as gaps); ``render_svg`` draws them with labelled axes, the
pool minimum and the current volume; ``describe`` is the same curve in words,
the SVG's ``<desc>``.

Every word and number a person reads goes through a :class:`Wording`: English
by default (what the unit tests see); the pool page passes one built from
Flask-Babel's ``gettext`` and ``marketplace.i18n``'s formatters, so the chart
is written in the reader's language without this module importing Flask.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from ..money import format_amount
from . import engine

WIDTH = 640
HEIGHT = 320
LEFT = 84
RIGHT = 24
TOP = 20
BOTTOM = 60
PLOT_WIDTH = WIDTH - LEFT - RIGHT
PLOT_HEIGHT = HEIGHT - TOP - BOTTOM
MAX_TICKS = 5


def english_gettext(message: str, **values) -> str:
    """``gettext`` without a catalog: the English text, ``%(name)s`` filled in (as Flask-Babel does)."""
    return message % values if values else message


def english_ngettext(singular: str, plural: str, num: int, **values) -> str:
    values.setdefault("num", num)
    return (singular if num == 1 else plural) % values


def english_number(value: int) -> str:
    return f"{value:,}"


@dataclass(frozen=True)
class Wording:
    """How the chart says things: ``gettext``/``ngettext`` (Flask-Babel's signatures), numbers, money."""

    gettext: Callable[..., str] = english_gettext
    ngettext: Callable[..., str] = english_ngettext
    number: Callable[[int], str] = english_number
    money: Callable[..., str] = format_amount  # (amount, currency="") -> "1,234.56 EUR"


ENGLISH = Wording()


@dataclass(frozen=True)
class Step:
    """From ``start`` to ``end`` units (both included) the best unit price is ``price``."""

    start: int
    end: int
    price: int


def steps_from_bids(bids: Sequence[engine.Bid]) -> list[Step]:
    """The best price at every volume a bid serves, as maximal constant steps.

    The best price can only change where a tier starts or just past a bid's
    capacity, so it is evaluated at those volumes only.
    """
    events = sorted({t.min_volume for b in bids for t in b.tiers} | {b.capacity + 1 for b in bids})
    steps: list[Step] = []
    for here, after in zip(events, events[1:], strict=False):
        price = engine.best_unit_price(bids, here)
        if price is None:
            continue
        last = steps[-1] if steps else None
        if last is not None and last.price == price and last.end + 1 == here:
            steps[-1] = Step(last.start, after - 1, price)
        else:
            steps.append(Step(here, after - 1, price))
    return steps


def price_at(steps: Sequence[Step], volume: int) -> int | None:
    """The step price at ``volume``; None where no bid serves it."""
    for step in steps:
        if step.start <= volume <= step.end:
            return step.price
    return None


def nice_step(maximum: int, max_ticks: int = MAX_TICKS) -> int:
    """The smallest 1, 2 or 5 x 10^k step that covers ``maximum`` in at most ``max_ticks`` ticks."""
    if maximum <= 0:
        return 1
    magnitude = 1
    while True:
        for multiple in (1, 2, 5):
            step = multiple * magnitude
            if -(-maximum // step) <= max_ticks:
                return step
        magnitude *= 10


def axis_ticks(maximum: int) -> list[int]:
    """``0, step, 2 step, …`` up to the first multiple of the step at or above ``maximum``."""
    step = nice_step(maximum)
    top = max(1, -(-maximum // step)) * step
    return list(range(0, top + 1, step))


def _scaled(value: int, span: int, pixels: int) -> int:
    """``value * pixels / span`` rounded half up, in integers (value, span >= 0)."""
    return (2 * value * pixels + span) // (2 * span)


@dataclass(frozen=True)
class Frame:
    """Axis ranges and the mapping from (volume, price) to SVG coordinates."""

    x_ticks: tuple[int, ...]
    y_ticks: tuple[int, ...]

    @property
    def x_max(self) -> int:
        return self.x_ticks[-1]

    @property
    def y_max(self) -> int:
        return self.y_ticks[-1]

    def x(self, volume: int) -> int:
        return LEFT + _scaled(min(max(volume, 0), self.x_max), self.x_max, PLOT_WIDTH)

    def y(self, price: int) -> int:
        return TOP + PLOT_HEIGHT - _scaled(min(max(price, 0), self.y_max), self.y_max, PLOT_HEIGHT)


def frame_for(steps: Sequence[Step], current_volume: int, min_volume: int) -> Frame:
    volume_max = max([s.end for s in steps] + [current_volume, min_volume, 1])
    price_max = max([s.price for s in steps] + [1])
    return Frame(tuple(axis_ticks(volume_max)), tuple(axis_ticks(price_max)))


def step_path(steps: Sequence[Step], frame: Frame) -> str:
    """``M x y H x V y H x …``: vertical jumps between touching steps, a new subpath after a gap."""
    parts: list[str] = []
    for i, step in enumerate(steps):
        following = steps[i + 1] if i + 1 < len(steps) else None
        if i == 0 or steps[i - 1].end + 1 != step.start:
            parts.append(f"M{frame.x(step.start)} {frame.y(step.price)}")
        if following is not None and step.end + 1 == following.start:
            parts.append(f"H{frame.x(following.start)} V{frame.y(following.price)}")
        else:
            parts.append(f"H{frame.x(step.end)}")
    return " ".join(parts)


def _units(n: int, w: Wording) -> str:
    return w.ngettext("%(count)s unit", "%(count)s units", n, count=w.number(n))


def describe(
    steps: Sequence[Step], *, current_volume: int, min_volume: int, currency: str, wording: Wording = ENGLISH
) -> str:
    """The chart in words: every step, then where the pool stands."""
    w = wording
    if not steps:
        curve = w.gettext("No supplier has bid yet, so there is no price curve.")
    else:
        parts = [
            w.gettext(
                "from %(start)s to %(end)s units: %(price)s",
                start=w.number(s.start),
                end=w.number(s.end),
                price=w.money(s.price, currency),
            )
            for s in steps
        ]
        curve = w.gettext("Best unit price offered at each pooled volume, %(steps)s.", steps="; ".join(parts))
    now_price = price_at(steps, current_volume)
    if now_price is not None:
        where = w.gettext(
            "Pooled now: %(volume)s, best price %(price)s.",
            volume=_units(current_volume, w),
            price=w.money(now_price, currency),
        )
    else:
        where = w.gettext("Pooled now: %(volume)s, no bid serves this volume.", volume=_units(current_volume, w))
    minimum = w.gettext("Pool minimum: %(volume)s.", volume=_units(min_volume, w))
    return " ".join((curve, where, minimum))


def _text(x: int, y: int, body: str, cls: str, anchor: str = "middle", extra: str = "") -> str:
    return f'<text x="{x}" y="{y}" class="{cls}" text-anchor="{anchor}"{extra}>{escape(body)}</text>'


def _marker(frame: Frame, volume: int, label: str, cls: str, label_y: int) -> list[str]:
    x = frame.x(volume)
    anchor, label_x = ("end", x - 6) if x > LEFT + (PLOT_WIDTH * 3) // 4 else ("start", x + 6)
    return [
        f'<line x1="{x}" y1="{TOP}" x2="{x}" y2="{TOP + PLOT_HEIGHT}" class="{cls}" stroke="currentColor"'
        ' stroke-dasharray="6 4"/>',
        _text(label_x, label_y, label, f"{cls}-label", anchor),
    ]


def render_svg(
    steps: Sequence[Step],
    *,
    current_volume: int,
    min_volume: int,
    currency: str,
    unit: str,
    chart_id: str = "price-chart",
    wording: Wording = ENGLISH,
) -> str:
    """The whole ``<svg>`` element (text escaped), accessible as one image with a title and description."""
    w = wording
    frame = frame_for(steps, current_volume, min_volume)
    description = describe(
        steps, current_volume=current_volume, min_volume=min_volume, currency=currency, wording=wording
    )
    cid = escape(chart_id)
    bottom = TOP + PLOT_HEIGHT
    right = LEFT + PLOT_WIDTH
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="price-chart" viewBox="0 0 {WIDTH} {HEIGHT}"'
        f' width="{WIDTH}" height="{HEIGHT}" role="img" aria-labelledby="{cid}-title {cid}-desc"'
        ' preserveAspectRatio="xMinYMin meet">',
        f'<title id="{cid}-title">{escape(w.gettext("Best unit price by pooled volume"))}</title>',
        f'<desc id="{cid}-desc">{escape(description)}</desc>',
        '<g class="chart-grid">',
    ]
    for tick in frame.y_ticks[1:]:
        out.append(f'<line x1="{LEFT}" y1="{frame.y(tick)}" x2="{right}" y2="{frame.y(tick)}"/>')
    out.append("</g>")
    out.append(
        f'<g class="chart-axes" stroke="currentColor"><line x1="{LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}"/>'
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}"/></g>'
    )
    out.append('<g class="chart-x-ticks">')
    for tick in frame.x_ticks:
        out.append(_text(frame.x(tick), bottom + 18, w.number(tick), "chart-tick-label"))
    out.append("</g>")
    if steps:
        out.append('<g class="chart-y-ticks">')
        for tick in frame.y_ticks:
            out.append(_text(LEFT - 8, frame.y(tick) + 4, w.money(tick), "chart-tick-label", "end"))
        out.append("</g>")
    x_title = w.gettext("Pooled volume (%(unit)s)", unit=unit)
    out.append(_text(LEFT + PLOT_WIDTH // 2, HEIGHT - 12, x_title, "chart-axis-title"))
    mid_y = TOP + PLOT_HEIGHT // 2
    y_title = w.gettext("Best unit price (%(currency)s)", currency=currency)
    out.append(_text(18, mid_y, y_title, "chart-axis-title", extra=f' transform="rotate(-90 18 {mid_y})"'))
    minimum = w.gettext("minimum %(volume)s", volume=w.number(min_volume))
    out.extend(_marker(frame, min_volume, minimum, "chart-min", TOP + 14))
    current = w.gettext("now %(volume)s", volume=w.number(current_volume))
    out.extend(_marker(frame, current_volume, current, "chart-current", TOP + 32))
    if steps:
        out.append(
            f'<path class="chart-line" d="{step_path(steps, frame)}" fill="none" stroke="currentColor" stroke-width="3"/>'
        )
        out.append('<g class="chart-points">')
        for step in steps:
            out.append(
                f'<circle cx="{frame.x(step.start)}" cy="{frame.y(step.price)}" r="4"'
                f' data-volume="{step.start}" data-price="{step.price}"/>'
            )
        out.append("</g>")
        now_price = price_at(steps, current_volume)
        if now_price is not None:
            out.append(
                f'<circle class="chart-current-dot" cx="{frame.x(current_volume)}" cy="{frame.y(now_price)}" r="6"/>'
            )
    else:
        out.append(_text(LEFT + PLOT_WIDTH // 2, mid_y, w.gettext("No supplier has bid yet"), "chart-empty"))
    out.append("</svg>")
    return "\n".join(out)
