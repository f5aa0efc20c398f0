"""Jinja filters and globals: money, times, the nav, pagination."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from flask import current_app, request, url_for
from markupsafe import Markup, escape

from .i18n import current_locale, format_bps, format_moment, format_money, format_number

# Nav endpoints that have their own entry: visiting one of them never marks
# its blueprint's index entry as the current section too.
PRIMARY_NAV = frozenset(
    {
        "pools.index",
        "pools.my_pledges",
        "wallet.index",
        "notifications.index",
        "operators.index",
        "auth.settings",
        "docs.index",
    }
)


def money(amount, currency: str = "") -> str:
    if amount is None:
        return "—"
    return format_money(int(amount), currency)


def signed_money(amount, currency: str = "") -> str:
    """``1234`` -> ``"+12.34 EUR"``, ``-1234`` -> ``"−12.34 EUR"`` (a real minus sign)."""
    if amount is None:
        return "—"
    amount = int(amount)
    sign = "+" if amount > 0 else ("\u2212" if amount < 0 else "")
    return sign + format_money(abs(amount), currency)


def when(value: datetime | None) -> str:
    if value is None:
        return "—"
    if current_locale() != "en":
        return format_moment(value.astimezone(UTC))
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def humanize(value) -> str:
    """``"pool_escrow"`` -> ``"Pool escrow"``."""
    if value is None:
        return ""
    text = str(value).replace("_", " ").replace(".", " ").strip()
    return text[:1].upper() + text[1:]


def has_endpoint(endpoint: str) -> bool:
    """True when a view is registered for ``endpoint`` (features appear as they land)."""
    return endpoint in current_app.view_functions


def nav_link(endpoint: str, label: str, **values) -> Markup:
    """``<li><a …>label</a></li>`` for a registered endpoint, else nothing.

    The link gets ``aria-current="page"`` on its own page, and
    ``aria-current="true"`` on other pages of its section (``pools.index``
    while looking at a pool).
    """
    if not has_endpoint(endpoint):
        return Markup("")
    current = ""
    here = request.endpoint or ""
    if here == endpoint:
        current = ' aria-current="page"'
    elif (
        endpoint.endswith(".index") and here not in PRIMARY_NAV and here.partition(".")[0] == endpoint.partition(".")[0]
    ):
        current = ' aria-current="true"'
    href = url_for(endpoint, **values)
    return Markup('<li class="nav-item"><a class="nav-link" href="{}"{}>{}</a></li>').format(
        href, Markup(current), escape(label)
    )


def is_safe_next(target: str | None) -> bool:
    """Only same-site relative paths (``/wallet?x=1``) are safe redirect targets."""
    if not target or not isinstance(target, str) or len(target) > 2000:
        return False
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return False
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in target):
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


@dataclass(frozen=True)
class Page:
    """One page of a list: ``number`` is 1-based; ``pages`` is at least 1."""

    number: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.per_page

    @property
    def has_prev(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.pages

    @property
    def first_item(self) -> int:
        return 0 if self.total == 0 else self.offset + 1

    @property
    def last_item(self) -> int:
        return min(self.total, self.offset + self.per_page)

    def window(self, size: int = 2) -> list[int | None]:
        """Page numbers to link, ``None`` where a gap is: ``[1, None, 4, 5, 6, None, 20]``."""
        keep = {1, self.pages} | set(range(self.number - size, self.number + size + 1))
        out: list[int | None] = []
        previous = 0
        for n in sorted(k for k in keep if 1 <= k <= self.pages):
            if n - previous > 1:
                out.append(None)
            out.append(n)
            previous = n
        return out


def page_from_request(total: int, per_page: int = 25, arg: str = "page") -> Page:
    """The page asked for by ``?page=``, clamped to what exists (bad input: page 1)."""
    raw = request.args.get(arg, "1")
    try:
        number = int(raw) if raw.isdigit() and len(raw) < 10 else 1
    except ValueError:
        number = 1
    page = Page(1, per_page, total)
    return Page(min(max(number, 1), page.pages), per_page, total)


def page_url(number: int, arg: str = "page") -> str:
    """The current URL with ``?page=`` set to ``number`` (other query args kept)."""
    args = request.args.to_dict(flat=False)
    args[arg] = [str(number)]
    return url_for(request.endpoint, **(request.view_args or {}), **args)


def register(app) -> None:
    app.jinja_env.filters["money"] = money
    app.jinja_env.filters["signed_money"] = signed_money
    app.jinja_env.filters["when"] = when
    app.jinja_env.filters["number"] = format_number
    app.jinja_env.filters["bps"] = format_bps
    app.jinja_env.filters["humanize"] = humanize
    app.jinja_env.globals["nav_link"] = nav_link
    app.jinja_env.globals["has_endpoint"] = has_endpoint
    app.jinja_env.globals["page_url"] = page_url

    @app.context_processor
    def globals_():
        from .clock import now

        return {"now": now, "currencies": app.config["CURRENCIES"]}
