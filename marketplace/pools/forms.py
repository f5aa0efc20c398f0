"""Browser forms for the pool pages: create a pool, pledge, bid (tier editor), comment, review.

Amounts are typed in major units ("7.50") and parsed with ``money.parse_amount``;
the bounds are those of the API schemas (``pools/schemas.py``,
``conversation/schemas.py``) so both doors accept the same input.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from flask import current_app
from flask_babel import LazyString
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from marshmallow import ValidationError as SchemaError
from wtforms import HiddenField, RadioField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, ValidationError
from wtforms.widgets import DateTimeLocalInput

from ..conversation.services import MAX_COMMENT, MAX_REVIEW
from ..i18n import format_number, localized_input
from ..money import format_amount, parse_user_amount
from ..schemas import check_text
from .schemas import MAX_VOLUME

MAX_TIERS = 20  # BidIn allows 1..20 tiers
MIN_TIER_ROWS = 5

_WHOLE = re.compile(r"[0-9]{1,15}")
# Digits with optional thousands commas and a decimal part; checked before
# Decimal sees the text, so "1e999999999" never builds a huge number.
_DEADLINE_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S")
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def _lazy(make: Callable[[], str]) -> LazyString:
    """A text built when it is shown, so it is in the reader's language with numbers written for it."""
    return LazyString(make)


def _at_most(count: int) -> LazyString:
    return _lazy(lambda: _("Use at most %(count)s characters.", count=format_number(count)))


def _whole_messages(what: str) -> tuple[str, str]:
    """parse_whole's two sentences for ``what``: nothing typed, not a whole number."""
    if what == "number of units":
        return _("Enter a number of units."), _("Enter a whole number of units, for example 100.")
    if what == "number":
        return _("Enter a number."), _("Enter a whole number, for example 100.")
    return _("Enter a %(what)s.", what=what), _("Enter a whole %(what)s, for example 100.", what=what)


def storable_text(form, field) -> None:
    """What a database column can store: no NUL, valid Unicode (the API's rule too)."""
    try:
        check_text(field.data or "")
    except SchemaError as exc:
        raise ValidationError(" ".join(str(m) for m in exc.messages)) from exc


def parse_whole(text: str | None, *, low: int = 1, high: int = MAX_VOLUME, what: str = "number") -> int:
    """``"120"`` -> ``120``; ValueError with a sentence for anything else."""
    text = (localized_input(text) or "").strip().replace(",", "")
    if not text:
        raise ValueError(_whole_messages(what)[0])
    if not _WHOLE.fullmatch(text):
        raise ValueError(_whole_messages(what)[1])
    value = int(text)
    if value < low:
        raise ValueError(_("Must be at least %(low)s.", low=format_number(low)))
    if value > high:
        raise ValueError(_("Must be at most %(high)s.", high=format_number(high)))
    return value


def parse_price(text: str | None) -> int:
    """``"7.50"`` -> ``750`` minor units; ValueError with a sentence for anything else."""
    return parse_user_amount(localized_input(text), what="price", example="7.50")


class WholeNumberField(StringField):
    """A whole number typed as text; ``value`` (an int) once validated."""

    value: int | None = None

    def __init__(self, *args, low: int = 1, high: int = MAX_VOLUME, what: str = "number", **kwargs):
        kwargs.setdefault("render_kw", {"inputmode": "numeric", "autocomplete": "off"})
        super().__init__(*args, **kwargs)
        self.low, self.high, self.what = low, high, what

    def pre_validate(self, form) -> None:
        self.value = None
        try:
            self.value = parse_whole(self.data, low=self.low, high=self.high, what=self.what)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc


class PriceField(StringField):
    """A price in major units (``7.50``); ``minor_units`` once validated."""

    minor_units: int | None = None

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("render_kw", {"inputmode": "decimal", "autocomplete": "off", "maxlength": 40})
        super().__init__(*args, **kwargs)

    def pre_validate(self, form) -> None:
        self.minor_units = None
        try:
            self.minor_units = parse_price(self.data)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc


class UTCDateTimeLocalField(StringField):
    """``<input type="datetime-local">`` read as UTC; ``moment`` (aware) once validated."""

    widget = DateTimeLocalInput()
    moment: datetime | None = None

    def pre_validate(self, form) -> None:
        self.moment = None
        text = (self.data or "").strip()
        if not text:
            raise ValidationError(_("Enter the deadline, for example 2027-01-31 12:00."))
        for fmt in _DEADLINE_FORMATS:
            try:
                parsed = datetime.strptime(text, fmt).replace(tzinfo=UTC)
            except ValueError:
                continue
            if not EARLIEST <= parsed < LATEST:
                raise ValidationError(_("Choose a date between 1970 and 9000."))
            self.moment = parsed
            return
        raise ValidationError(_("Enter the deadline as a date and time, for example 2027-01-31 12:00."))


class PoolForm(FlaskForm):
    title = StringField(
        _l("Title"),
        filters=[_strip],
        description=_l("What the pool buys, e.g. “Solar panels for the community hall”."),
        validators=[
            DataRequired(_l("Give the pool a title.")),
            Length(max=200, message=_at_most(200)),
            storable_text,
        ],
    )
    description = TextAreaField(
        _l("Description"),
        filters=[_strip],
        description=_l("Optional: specification, delivery place, anything suppliers need to price it."),
        validators=[Length(max=5000, message=_at_most(5000)), storable_text],
    )
    unit = StringField(
        _l("Unit"),
        filters=[_strip],
        description=_l("What one unit is: “panel”, “MWh”, “laptop”."),
        validators=[
            DataRequired(_l("Say what one unit is.")),
            Length(max=40, message=_at_most(40)),
            storable_text,
        ],
    )
    currency = SelectField(_l("Currency"), validators=[InputRequired(_l("Choose a currency."))])
    min_volume = WholeNumberField(
        _l("Minimum volume"),
        what="number of units",
        description=_l("All or nothing: below this many pledged units the pool fails and nobody pays."),
    )
    deadline = UTCDateTimeLocalField(
        _l("Deadline (UTC)"),
        description=_l("Date and time in UTC, when the pool closes and the best bid is awarded."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        codes = current_app.config["CURRENCIES"]
        self.currency.choices = list(codes)
        if not self.currency.data:
            self.currency.data = codes[0]


class PledgeForm(FlaskForm):
    quantity = WholeNumberField(_l("Quantity"), what="number of units", description=_l("How many units you want."))
    max_unit_price = PriceField(
        _l("Maximum unit price"),
        description=_l(
            "The most you will pay per unit, e.g. 7.50. Everyone pays the same clearing price, never more than this."
        ),
    )
    confirm = HiddenField()


class CommentForm(FlaskForm):
    body = TextAreaField(
        _l("Your comment"),
        id="comment-body",
        filters=[_strip],
        description=_lazy(lambda: _("Plain text, up to %(count)s characters.", count=format_number(MAX_COMMENT))),
        validators=[
            DataRequired(_l("Write something first.")),
            Length(max=MAX_COMMENT, message=_at_most(MAX_COMMENT)),
            storable_text,
        ],
        render_kw={"maxlength": MAX_COMMENT, "rows": 4},
    )


class ReviewForm(FlaskForm):
    rating = RadioField(
        _l("Rating"),
        id="review-rating",
        choices=[
            SelectChoice(value, label)
            for value, label in (
                ("5", _l("5 – excellent")),
                ("4", _l("4 – good")),
                ("3", _l("3 – fair")),
                ("2", _l("2 – poor")),
                ("1", _l("1 – bad")),
            )
        ],
        validators=[InputRequired(_l("Choose a rating from 1 to 5."))],
    )
    body = TextAreaField(
        _l("Your review"),
        id="review-body",
        filters=[_strip],
        description=_lazy(
            lambda: _(
                "How did the delivery go? Plain text, up to %(count)s characters.", count=format_number(MAX_REVIEW)
            )
        ),
        validators=[Length(max=MAX_REVIEW, message=_at_most(MAX_REVIEW)), storable_text],
        render_kw={"maxlength": MAX_REVIEW, "rows": 4},
    )


# ---------------------------------------------------------------- the bid's tier editor


@dataclass
class TierRow:
    """One row of the tier editor as typed, and the messages for its two inputs."""

    min_volume: str = ""
    unit_price: str = ""
    errors: dict[str, list[str]] = field(default_factory=dict)

    @property
    def blank(self) -> bool:
        return not self.min_volume.strip() and not self.unit_price.strip()


@dataclass
class BidForm:
    """The tier editor: rows ``tier-N-min_volume`` / ``tier-N-unit_price`` and ``capacity``.

    Blank rows are ignored. ``tiers`` (service-ready dicts) and ``row_of``
    (tier index -> row index, to put the service's ``tiers.1.unit_price``
    message on the right input) are filled by :meth:`validate`.
    """

    rows: list[TierRow]
    capacity: str = ""
    capacity_errors: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    tiers: list[dict] = field(default_factory=list)
    capacity_value: int | None = None
    row_of: list[int] = field(default_factory=list)

    @classmethod
    def blank_form(cls, rows: int = MIN_TIER_ROWS) -> BidForm:
        return cls(rows=[TierRow() for _row in range(_row_count(rows))])

    @classmethod
    def from_bid(cls, bid, rows: int = MIN_TIER_ROWS) -> BidForm:
        """Pre-filled with a supplier's current bid."""
        filled = [TierRow(str(t.min_volume), format_amount(t.unit_price).replace(",", "")) for t in bid.tiers]
        extra = max(_row_count(rows), len(filled) + 1) - len(filled)
        return cls(
            rows=filled + [TierRow() for _row in range(min(extra, MAX_TIERS - len(filled)))], capacity=str(bid.capacity)
        )

    @classmethod
    def from_formdata(cls, formdata) -> BidForm:
        indexes = set()
        for key in formdata:
            match = re.fullmatch(r"tier-([0-9]{1,2})-(min_volume|unit_price)", key)
            if match:
                indexes.add(int(match.group(1)))
        count = _row_count(max(indexes, default=-1) + 1)
        rows = [
            TierRow(formdata.get(f"tier-{i}-min_volume", "")[:40], formdata.get(f"tier-{i}-unit_price", "")[:40])
            for i in range(count)
        ]
        return cls(rows=rows, capacity=formdata.get("capacity", "")[:40])

    def validate(self) -> bool:
        self.tiers, self.row_of = [], []
        for index, row in enumerate(self.rows):
            if row.blank:
                continue
            volume = price = None
            try:
                volume = parse_whole(row.min_volume, what="number of units")
            except ValueError as exc:
                row.errors.setdefault("min_volume", []).append(str(exc))
            try:
                price = parse_price(row.unit_price)
            except ValueError as exc:
                row.errors.setdefault("unit_price", []).append(str(exc))
            if volume is not None and price is not None:
                self.tiers.append({"min_volume": volume, "unit_price": price})
                self.row_of.append(index)
        if not any(not row.blank for row in self.rows):
            self.errors.append(_("Enter at least one tier: a minimum volume and its unit price."))
        try:
            self.capacity_value = parse_whole(self.capacity, what="number of units")
        except ValueError as exc:
            self.capacity_errors.append(str(exc))
        return not self.has_errors

    @property
    def has_errors(self) -> bool:
        return bool(self.errors or self.capacity_errors or any(row.errors for row in self.rows))

    def add_service_errors(self, errors: dict[str, list[str]], message: str) -> None:
        """Map ``ValidationFailed.errors`` (``tiers.1.unit_price``, ``capacity``) onto the inputs."""
        placed = False
        for key, messages in errors.items():
            parts = key.split(".")
            if len(parts) == 3 and parts[0] == "tiers" and parts[1].isdigit() and int(parts[1]) < len(self.row_of):
                row = self.rows[self.row_of[int(parts[1])]]
                row.errors.setdefault(parts[2], []).extend(_sentence(m) for m in messages)
                placed = True
            elif key == "capacity":
                self.capacity_errors.extend(_sentence(m) for m in messages)
                placed = True
            else:
                self.errors.extend(_sentence(m) for m in messages)
                placed = True
        if not placed:
            self.errors.append(message)


def _row_count(rows: int) -> int:
    return min(MAX_TIERS, max(MIN_TIER_ROWS, rows))


def _sentence(message: str) -> str:
    """The services' terse messages ("must not be higher …") as a sentence."""
    message = message.replace("min_volume", "minimum volume").replace("unit_price", "unit price")
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")
