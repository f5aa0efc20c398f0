"""Browser forms for the wallet: amounts typed in major units ("12.34")."""

from __future__ import annotations

from flask import current_app
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, ValidationError

from ..money import parse_user_amount

# Digits with an optional sign, thousands commas and a decimal part. Checked
# before Decimal sees the text, so "1e999999999" cannot build a huge number.
_MAX_LENGTH = 40


class AmountField(StringField):
    """Text such as ``12.34`` in the form; ``minor_units`` (an int) once validated."""

    minor_units: int | None = None

    def pre_validate(self, form) -> None:
        self.minor_units = None
        try:
            self.minor_units = parse_user_amount(self.data)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc


class _MoneyForm(FlaskForm):
    amount = AmountField(
        "Amount",
        description="In the currency's main unit, with up to two decimals: 12.34",
        render_kw={"inputmode": "decimal", "autocomplete": "off", "maxlength": _MAX_LENGTH},
    )
    currency = SelectField("Currency", validators=[InputRequired("Choose a currency.")])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        codes = current_app.config["CURRENCIES"]
        self.currency.choices = [SelectChoice(code) for code in codes]
        if not self.currency.data:
            self.currency.data = codes[0]


class DepositForm(_MoneyForm):
    """Pay money in through the payments provider."""


class WithdrawalForm(_MoneyForm):
    """Pay money out to the member's bank."""
