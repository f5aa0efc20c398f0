"""Browser forms for the lending pages: borrow, lend, repay.

Amounts are typed in major units ("1,000.00", ``money.parse_user_amount``);
rates in percent a year with up to two decimals ("7.25" -> 725 basis points,
:func:`parse_rate_bps`). The bounds are those of the API schemas
(``lending/schemas.py``), so both doors accept the same input. What people
type is read the same way in every language; labels, hints and messages are
translated (``_l`` at class level, ``_`` at request time).
"""

from __future__ import annotations

import re

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_wtf import FlaskForm
from wtforms import SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from ..i18n import current_locale, format_bps, format_money, localized_input
from ..money import MAX_AMOUNT, format_amount, parse_user_amount
from ..pools.forms import storable_text
from .schemas import GRADES, MAX_RATE_BPS, MAX_REQUEST, MIN_PART, MIN_REQUEST

TERMS = (3, 6, 9, 12, 18, 24, 36, 48, 60)  # the common terms offered; the API accepts any 3..60
DEFAULT_TERM = 12
MAX_PURPOSE = 500
RATE_EXAMPLE = "7.25"  # examples are in the typed format, the same in every language

# "7", "7.5", "7.25", ".5", optionally followed by "%"; checked before int() sees it.
_RATE = re.compile(r"(?P<whole>[0-9]{0,6})(?:\.(?P<cents>[0-9]{1,2}))?")
_ZERO = re.compile(r"0+(?:\.0*)?|\.0+")

# What an amount field says when its input is refused, one sentence per reason (``%`` placeholders:
# ``example``, ``max``, ``low``, ``high``). Reasons a field cannot reach are left out.
AMOUNT_MESSAGES = {
    "empty": _l("Enter an amount, for example %(example)s."),
    "number": _l("Enter the amount as a number, for example %(example)s."),
    "positive": _l("The amount must be more than zero."),
    "too_large": _l("The amount is too large: at most %(max)s."),
    "low": _l("The amount must be at least %(low)s."),
    "high": _l("The amount may be at most %(high)s."),
}
PART_MESSAGES = {
    "empty": _l("Enter an amount per loan, for example %(example)s."),
    "number": _l("Enter the amount per loan as a number, for example %(example)s."),
    "positive": _l("The amount per loan must be more than zero."),
    "too_large": _l("The amount per loan is too large: at most %(max)s."),
    "low": _l("The amount per loan must be at least %(low)s."),
    "high": _l("The amount per loan may be at most %(high)s."),
}
INCOME_MESSAGES = {
    "number": _l("Enter the monthly income as a number, for example %(example)s."),
    "positive": _l("The monthly income must be more than zero."),
    "too_large": _l("The monthly income is too large: at most %(max)s."),
}
DEBT_MESSAGES = {
    "number": _l("Enter the monthly debt as a number, for example %(example)s."),
    "positive": _l("The monthly debt must be more than zero."),
    "too_large": _l("The monthly debt is too large: at most %(max)s."),
}
CENTS_MESSAGE = _l("Use at most two decimal places (whole cents), for example %(example)s.")


def parse_rate_bps(text: str | None, *, allow_zero: bool = False) -> int:
    """``"7.25"`` (percent a year) -> ``725`` basis points; ValueError with a sentence otherwise.

    At most two decimals; more than 0 (or 0 with ``allow_zero``) and at most 100 %.
    """
    text = (localized_input(text) or "").strip().removesuffix("%").strip()
    if not text:
        raise ValueError(_("Enter a rate in percent a year, for example %(example)s.", example=RATE_EXAMPLE))
    not_a_number = _("Enter the rate as a number of percent, for example %(example)s.", example=RATE_EXAMPLE)
    if len(text) > 10:
        raise ValueError(not_a_number)
    match = _RATE.fullmatch(text)
    if match is None or not (match.group("whole") or match.group("cents")):
        if re.fullmatch(r"[0-9]*\.[0-9]{3,}", text):
            raise ValueError(_("Use at most two decimals, for example %(example)s.", example=RATE_EXAMPLE))
        raise ValueError(not_a_number)
    bps = int(match.group("whole") or "0") * 100 + int((match.group("cents") or "0").ljust(2, "0"))
    if bps == 0 and not allow_zero:
        raise ValueError(_("The rate must be more than 0 %."))
    if bps > MAX_RATE_BPS:
        raise ValueError(_("The rate may be at most 100 %."))
    return bps


def bps_text(bps: int) -> str:
    """``725`` -> ``"7.25"``: a rate as typed in the forms (percent, two decimals)."""
    sign = "-" if bps < 0 else ""
    whole, cents = divmod(abs(int(bps)), 100)
    return f"{sign}{whole}.{cents:02d}"


def percent_text(bps) -> str:
    """``725`` -> ``"7.25 %"`` (English, as always) or the locale's ``"7,25 %"``; None -> ``"—"``.

    Negative rates get a real minus sign.
    """
    if bps is None:
        return "—"
    sign = "\u2212" if int(bps) < 0 else ""
    if current_locale() == "en":
        return sign + bps_text(abs(int(bps))) + " %"
    return sign + format_bps(abs(int(bps)))


def amount_text(amount: int) -> str:
    """``123456`` -> ``"1,234.56"``: an amount as the forms show it (and read it back)."""
    return format_amount(amount)


def parse_optional_amount(text: str | None, *, what: str) -> int | None:
    """Blank -> None, ``"0"`` -> 0, otherwise :func:`money.parse_user_amount`."""
    text = (localized_input(text) or "").strip()
    if not text:
        return None
    if _ZERO.fullmatch(text):
        return 0
    return parse_user_amount(text, what=what, example="2,500.00")


def _refusal_reason(message: str) -> str | None:
    """Which of ``parse_user_amount``'s checks refused the input, read from its English sentence
    (money.py is pure and untranslated); None for a sentence it does not know, which is then shown as is."""
    if message.startswith("Enter the "):
        return "number"
    if message.startswith("Enter "):
        return "empty"
    if message.startswith("Use at most two decimal places"):
        return "cents"
    if message.endswith("must be more than zero."):
        return "positive"
    if " is too large: " in message:
        return "too_large"
    return None


class AmountField(StringField):
    """An amount in major units (``1,000.00``); ``minor_units`` once validated."""

    minor_units: int | None = None

    def __init__(
        self, *args, low: int = 1, high: int = MAX_AMOUNT, what: str = "amount", messages=None, optional=False, **kwargs
    ):
        kwargs.setdefault("render_kw", {"inputmode": "decimal", "autocomplete": "off", "maxlength": 40})
        super().__init__(*args, **kwargs)
        self.low, self.high, self.what, self.optional = low, high, what, optional
        self.messages = messages or AMOUNT_MESSAGES

    def _message(self, reason: str, **values) -> str:
        message = CENTS_MESSAGE if reason == "cents" else self.messages.get(reason) or AMOUNT_MESSAGES[reason]
        return str(message) % values

    def pre_validate(self, form) -> None:
        self.minor_units = None
        example = "2,500.00" if self.optional else "1,000.00"
        try:
            if self.optional:
                self.minor_units = parse_optional_amount(self.data, what=self.what)
                return
            amount = parse_user_amount(localized_input(self.data), what=self.what, example=example)
        except ValueError as exc:
            reason = _refusal_reason(str(exc))
            if reason is None:
                raise ValidationError(str(exc)) from exc
            raise ValidationError(self._message(reason, example=example, max=format_money(MAX_AMOUNT))) from exc
        if amount < self.low:
            raise ValidationError(self._message("low", low=format_money(self.low)))
        if amount > self.high:
            raise ValidationError(self._message("high", high=format_money(self.high)))
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
        known = {str(value) for value, _label in self.choices}
        if any(str(value) not in known for value in self.data or ()):
            raise ValidationError(_("Choose from the listed options."))


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def _currency_choices(field: SelectField) -> None:
    codes = current_app.config["CURRENCIES"]
    field.choices = list(codes)
    if not field.data:
        field.data = codes[0]


def months_text(months: int) -> str:
    """``12`` -> ``"12 months"``."""
    return ngettext("%(num)d month", "%(num)d months", months)


def _term_choices() -> list[tuple[str, str]]:
    choices = []
    for months in TERMS:
        label = months_text(months)
        if months % 12 == 0:
            years = ngettext("%(num)d year", "%(num)d years", months // 12)
            label = _("%(months)s (%(years)s)", months=label, years=years)
        choices.append((str(months), label))
    return choices


class BorrowForm(FlaskForm):
    amount = AmountField(_l("Amount"), low=MIN_REQUEST, high=MAX_REQUEST)
    currency = SelectField(_l("Currency"), validators=[InputRequired(_l("Choose a currency."))])
    term_months = SelectField(
        _l("Term"), description=_l("Months to repay it in, one installment a month."), validators=[InputRequired()]
    )
    max_rate = RateField(
        _l("Maximum interest rate (% a year)"),
        description=_l(
            "The most interest you will pay, e.g. 7.25. Each lender lends at its own rate, never above this."
        ),
    )
    purpose = TextAreaField(
        _l("Purpose"),
        filters=[_strip],
        description=_l("What the loan is for; lenders and other members can read it."),
        validators=[Length(max=MAX_PURPOSE, message=_l("Use at most %(max)d characters.")), storable_text],
        render_kw={"maxlength": MAX_PURPOSE, "rows": 3},
    )
    monthly_income = AmountField(
        _l("Monthly income (optional)"),
        what="monthly income",
        messages=INCOME_MESSAGES,
        optional=True,
        description=_l("Net income a month. Used only for your risk grade; leave empty if you prefer."),
    )
    monthly_debt = AmountField(
        _l("Other monthly debt payments (optional)"),
        what="monthly debt",
        messages=DEBT_MESSAGES,
        optional=True,
        description=_l("What other loans and cards cost you a month, outside this marketplace."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.amount.description = _(
            "How much you want to borrow: %(low)s to %(high)s.",
            low=format_money(MIN_REQUEST),
            high=format_money(MAX_REQUEST),
        )
        _currency_choices(self.currency)
        self.term_months.choices = _term_choices()
        if not self.term_months.data:
            self.term_months.data = str(DEFAULT_TERM)


class OfferForm(FlaskForm):
    amount = AmountField(
        _l("Amount to lend"),
        description=_l("Held from your wallet now; lent out part by part as loans match."),
    )
    currency = SelectField(_l("Currency"), validators=[InputRequired(_l("Choose a currency."))])
    min_rate = RateField(
        _l("Minimum interest rate (% a year)"),
        allow_zero=True,
        description=_l("You lend only to requests that accept at least this rate, e.g. 6.50."),
    )
    max_part = AmountField(_l("Most per loan"), what="amount per loan", messages=PART_MESSAGES, low=MIN_PART)
    terms = CheckboxesField(_l("Terms you fund"), description=_l("Leave all unticked to fund every term."))
    grades = CheckboxesField(
        _l("Risk grades you fund"), description=_l("A is the lowest risk, E the highest. None ticked: all.")
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_part.description = _(
            "Spread the risk: at most this much goes into any one loan (at least %(low)s).",
            low=format_money(MIN_PART),
        )
        _currency_choices(self.currency)
        self.terms.choices = [(str(months), months_text(months)) for months in TERMS]
        self.grades.choices = [(grade, grade) for grade in GRADES]

    @property
    def term_values(self) -> list[int]:
        return sorted({int(value) for value in self.terms.data or ()})

    @property
    def grade_values(self) -> list[str]:
        return sorted(set(self.grades.data or ()))


class RepayForm(FlaskForm):
    amount = AmountField(_l("Amount to pay"), description=_l("Paid from your wallet: the oldest installment first."))
