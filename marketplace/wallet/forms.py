"""Browser forms for the wallet: amounts typed in major units ("12.34")."""

from __future__ import annotations

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, Optional, Regexp, ValidationError

from ..i18n import format_money, localized_input
from ..money import MAX_AMOUNT, parse_user_amount

# Digits with an optional sign, thousands commas and a decimal part. Checked
# before Decimal sees the text, so "1e999999999" cannot build a huge number.
_MAX_LENGTH = 40


_EXAMPLE = "12.34"  # in the typed format, the same in every language


def _refusal(message: str) -> str:
    """``parse_user_amount``'s English sentence (money.py is pure) -> the same sentence in the reader's language."""
    if message.startswith("Enter the "):
        return _("Enter the amount as a number, for example %(example)s.", example=_EXAMPLE)
    if message.startswith("Enter "):
        return _("Enter an amount, for example %(example)s.", example=_EXAMPLE)
    if message.startswith("Use at most two decimal places"):
        return _("Use at most two decimal places (whole cents), for example %(example)s.", example=_EXAMPLE)
    if message.endswith("must be more than zero."):
        return _("The amount must be more than zero.")
    if " is too large: " in message:
        return _("The amount is too large: at most %(max)s.", max=format_money(MAX_AMOUNT))
    return message


class AmountField(StringField):
    """Text such as ``12.34`` (or ``12,34`` in es/fi/it) in the form; ``minor_units`` (an int) once validated."""

    minor_units: int | None = None

    def pre_validate(self, form) -> None:
        self.minor_units = None
        try:
            self.minor_units = parse_user_amount(localized_input(self.data), example=_EXAMPLE)
        except ValueError as exc:
            raise ValidationError(_refusal(str(exc))) from exc


class _MoneyForm(FlaskForm):
    amount = AmountField(
        _l("Amount"),
        description=_l("In the currency's main unit, with up to two decimals: 12.34"),
        render_kw={"inputmode": "decimal", "autocomplete": "off", "maxlength": _MAX_LENGTH},
    )
    currency = SelectField(_l("Currency"), validators=[InputRequired(_l("Choose a currency."))])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        codes = current_app.config["CURRENCIES"]
        self.currency.choices = [SelectChoice(code) for code in codes]
        if not self.currency.data:
            self.currency.data = codes[0]


NEW_CARD = "new"


class DepositForm(_MoneyForm):
    """Pay money in through the payments provider.

    With Stripe the deposit page offers the member's saved cards and a new
    card: Stripe.js turns the new card into a token (``card_token``) in the
    browser, so card numbers never reach this server.
    """

    payment_method = StringField(
        _l("Pay with"),
        validators=[
            Optional(),
            Length(max=120),
            Regexp(r"^(new|(pm|card|src)_[A-Za-z0-9_]+)$", message=_l("Choose a card.")),
        ],
    )
    card_token = HiddenField(validators=[Optional(), Length(max=120), Regexp(r"^tok_[A-Za-z0-9_]+$")])
    page = HiddenField()  # "deposit" when sent from the deposit page (errors are shown there)


class WithdrawalForm(_MoneyForm):
    """Pay money out: refunded to the member's cards first, the rest paid out by an operator."""


class ActionForm(FlaskForm):
    """A button that POSTs (CSRF only)."""
