"""Browser forms for the lending pages: borrow, lend, repay.

Amounts are typed in major units ("1,000.00", ``money.parse_user_amount``);
rates in percent a year with up to two decimals ("7.25" -> 725 basis points,
:func:`parse_rate_bps`). The bounds are those of the API schemas
(``lending/schemas.py``), so both doors accept the same input.
"""

from __future__ import annotations

import re

from flask import current_app
from flask_wtf import FlaskForm
from wtforms import SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from ..money import MAX_AMOUNT, format_amount, parse_user_amount
from ..pools.forms import storable_text
from .schemas import GRADES, MAX_RATE_BPS, MAX_REQUEST, MIN_PART, MIN_REQUEST

TERMS = (3, 6, 9, 12, 18, 24, 36, 48, 60)  # the common terms offered; the API accepts any 3..60
DEFAULT_TERM = 12
MAX_PURPOSE = 500

# "7", "7.5", "7.25", ".5", optionally followed by "%"; checked before int() sees it.
_RATE = re.compile(r"(?P<whole>[0-9]{0,6})(?:\.(?P<cents>[0-9]{1,2}))?")
_ZERO = re.compile(r"0+(?:\.0*)?|\.0+")


def parse_rate_bps(text: str | None, *, allow_zero: bool = False) -> int:
    """``"7.25"`` (percent a year) -> ``725`` basis points; ValueError with a sentence otherwise.

    At most two decimals; more than 0 (or 0 with ``allow_zero``) and at most 100 %.
    """
    text = (text or "").strip().removesuffix("%").strip()
    if not text:
        raise ValueError("Enter a rate in percent a year, for example 7.25.")
    if len(text) > 10:
        raise ValueError("Enter the rate as a number of percent, for example 7.25.")
    match = _RATE.fullmatch(text)
    if match is None or not (match.group("whole") or match.group("cents")):
        if re.fullmatch(r"[0-9]*\.[0-9]{3,}", text):
            raise ValueError("Use at most two decimals, for example 7.25.")
        raise ValueError("Enter the rate as a number of percent, for example 7.25.")
    bps = int(match.group("whole") or "0") * 100 + int((match.group("cents") or "0").ljust(2, "0"))
    if bps == 0 and not allow_zero:
        raise ValueError("The rate must be more than 0 %.")
    if bps > MAX_RATE_BPS:
        raise ValueError("The rate may be at most 100 %.")
    return bps


def bps_text(bps: int) -> str:
    """``725`` -> ``"7.25"``: a rate as typed in the forms (percent, two decimals)."""
    sign = "-" if bps < 0 else ""
    whole, cents = divmod(abs(int(bps)), 100)
    return f"{sign}{whole}.{cents:02d}"


def amount_text(amount: int) -> str:
    """``123456`` -> ``"1,234.56"``: an amount as the forms show it."""
    return format_amount(amount)


def parse_optional_amount(text: str | None, *, what: str) -> int | None:
    """Blank -> None, ``"0"`` -> 0, otherwise :func:`money.parse_user_amount`."""
    text = (text or "").strip()
    if not text:
        return None
    if _ZERO.fullmatch(text):
        return 0
    return parse_user_amount(text, what=what, example="2,500.00")


class AmountField(StringField):
    """An amount in major units (``1,000.00``); ``minor_units`` once validated."""

    minor_units: int | None = None

    def __init__(self, *args, low: int = 1, high: int = MAX_AMOUNT, what: str = "amount", optional=False, **kwargs):
        kwargs.setdefault("render_kw", {"inputmode": "decimal", "autocomplete": "off", "maxlength": 40})
        super().__init__(*args, **kwargs)
        self.low, self.high, self.what, self.optional = low, high, what, optional

    def pre_validate(self, form) -> None:
        self.minor_units = None
        try:
            if self.optional:
                self.minor_units = parse_optional_amount(self.data, what=self.what)
                return
            amount = parse_user_amount(self.data, what=self.what, example="1,000.00")
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc
        if amount < self.low:
            raise ValidationError(f"The {self.what} must be at least {format_amount(self.low)}.")
        if amount > self.high:
            raise ValidationError(f"The {self.what} may be at most {format_amount(self.high)}.")
        self.minor_units = amount


class RateField(StringField):
    """A rate in percent a year (``7.25``); ``bps`` once validated."""

    bps: int | None = None

    def __init__(self, *args, allow_zero: bool = False, **kwargs):
        kwargs.setdefault("render_kw", {"inputmode": "decimal", "autocomplete": "off", "maxlength": 10})
        super().__init__(*args, **kwargs)
        self.allow_zero = allow_zero

    def pre_validate(self, form) -> None:
        self.bps = None
        try:
            self.bps = parse_rate_bps(self.data, allow_zero=self.allow_zero)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc


class CheckboxesField(SelectMultipleField):
    """A list of checkboxes (no choice ticked: the empty list)."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()

    def pre_validate(self, form) -> None:
        known = {str(value) for value, _ in self.choices}
        if any(str(value) not in known for value in self.data or ()):
            raise ValidationError("Choose from the listed options.")


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def _currency_choices(field: SelectField) -> None:
    codes = current_app.config["CURRENCIES"]
    field.choices = list(codes)
    if not field.data:
        field.data = codes[0]


def _term_choices() -> list[tuple[str, str]]:
    return [
        (
            str(months),
            f"{months} months" + (f" ({months // 12} year{'s' if months > 12 else ''})" if months % 12 == 0 else ""),
        )
        for months in TERMS
    ]


class BorrowForm(FlaskForm):
    amount = AmountField(
        "Amount",
        low=MIN_REQUEST,
        high=MAX_REQUEST,
        description=f"How much you want to borrow: {format_amount(MIN_REQUEST)} to {format_amount(MAX_REQUEST)}.",
    )
    currency = SelectField("Currency", validators=[InputRequired("Choose a currency.")])
    term_months = SelectField(
        "Term", description="Months to repay it in, one installment a month.", validators=[InputRequired()]
    )
    max_rate = RateField(
        "Maximum interest rate (% a year)",
        description="The most interest you will pay, e.g. 7.25. Each lender lends at its own rate, never above this.",
    )
    purpose = TextAreaField(
        "Purpose",
        filters=[_strip],
        description="What the loan is for; lenders and other members can read it.",
        validators=[Length(max=MAX_PURPOSE, message=f"Use at most {MAX_PURPOSE} characters."), storable_text],
        render_kw={"maxlength": MAX_PURPOSE, "rows": 3},
    )
    monthly_income = AmountField(
        "Monthly income (optional)",
        what="monthly income",
        optional=True,
        description="Net income a month. Used only for your risk grade; leave empty if you prefer.",
    )
    monthly_debt = AmountField(
        "Other monthly debt payments (optional)",
        what="monthly debt",
        optional=True,
        description="What other loans and cards cost you a month, outside this marketplace.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _currency_choices(self.currency)
        self.term_months.choices = _term_choices()
        if not self.term_months.data:
            self.term_months.data = str(DEFAULT_TERM)


class OfferForm(FlaskForm):
    amount = AmountField(
        "Amount to lend",
        description="Held from your wallet now; lent out part by part as loans match.",
    )
    currency = SelectField("Currency", validators=[InputRequired("Choose a currency.")])
    min_rate = RateField(
        "Minimum interest rate (% a year)",
        allow_zero=True,
        description="You lend only to requests that accept at least this rate, e.g. 6.50.",
    )
    max_part = AmountField(
        "Most per loan",
        what="amount per loan",
        low=MIN_PART,
        description=f"Spread the risk: at most this much goes into any one loan (at least {format_amount(MIN_PART)}).",
    )
    terms = CheckboxesField("Terms you fund", description="Leave all unticked to fund every term.")
    grades = CheckboxesField(
        "Risk grades you fund", description="A is the lowest risk, E the highest. None ticked: all."
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _currency_choices(self.currency)
        self.terms.choices = [(str(months), f"{months} months") for months in TERMS]
        self.grades.choices = [(grade, grade) for grade in GRADES]

    @property
    def term_values(self) -> list[int]:
        return sorted({int(value) for value in self.terms.data or ()})

    @property
    def grade_values(self) -> list[str]:
        return sorted(set(self.grades.data or ()))


class RepayForm(FlaskForm):
    amount = AmountField("Amount to pay", description="Paid from your wallet: the oldest installment first.")
