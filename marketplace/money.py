"""Money arithmetic, exact. Pure: no Flask, no database.

Every amount in this code base is an ``int`` count of minor units (cents);
rates are ``int`` basis points a year. Intermediates that are not whole use
``Decimal`` and are rounded with ROUND_HALF_UP. No float anywhere.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal

MAX_AMOUNT = 10**12
MINOR_DIGITS = 2


def round_half_up(value: Decimal | int) -> int:
    """Round a Decimal to the nearest int, halves away from zero."""
    return int(Decimal(value).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def fee(amount: int, fee_bps: int) -> int:
    """``round_half_up(amount * fee_bps / 10000)``."""
    return round_half_up(Decimal(amount) * Decimal(fee_bps) / Decimal(10000))


def format_amount(amount: int, currency: str = "") -> str:
    """``123456, "EUR"`` -> ``"1,234.56 EUR"`` (for pages and messages)."""
    sign = "-" if amount < 0 else ""
    whole, cents = divmod(abs(int(amount)), 10**MINOR_DIGITS)
    text = f"{sign}{whole:,}.{cents:0{MINOR_DIGITS}d}"
    return f"{text} {currency}".strip()


def parse_amount(text: str) -> int:
    """``"12.34"`` -> ``1234``; raises ValueError for more than two decimals."""
    value = Decimal(str(text).strip().replace(",", ""))
    if not value.is_finite():
        raise ValueError("not a number")
    cents = value * (10**MINOR_DIGITS)
    if cents != cents.to_integral_value():
        raise ValueError("at most two decimal places")
    return int(cents)


def largest_remainder(total: int, weights: list[int]) -> list[int]:
    """Split ``total`` in proportion to ``weights`` so the parts add up exactly.

    Each share is floored, then the cents left over go one each to the largest
    remainders (ties: the earlier index). Weights must be >= 0 with a positive sum.
    """
    weight_sum = sum(weights)
    if weight_sum <= 0:
        raise ValueError("weights must have a positive sum")
    if any(w < 0 for w in weights):
        raise ValueError("weights must be non-negative")
    sign = -1 if total < 0 else 1
    magnitude = abs(total)
    shares = [magnitude * w // weight_sum for w in weights]
    remainders = [magnitude * w % weight_sum for w in weights]
    left = magnitude - sum(shares)
    order = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in order[:left]:
        shares[i] += 1
    return [sign * s for s in shares]


_USER_AMOUNT = re.compile(r"[+-]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)")
_USER_AMOUNT_MAX_LENGTH = 40


_GROUPS_ONLY = re.compile(r"[+-]?[0-9]{1,3}(?:[. \u00a0\u202f][0-9]{3})+")
_GROUP_MARKS = re.compile(r"[. \u00a0\u202f']")


def normalize_decimal_comma(text: str) -> str:
    """What a reader of a decimal-comma language types -> the dot-decimal text the parsers read.

    ``"1.234,56"``, ``"1 234,56"``, ``"1234,56"`` -> ``"1234.56"``; ``"1.234"`` -> ``"1234"`` (dots
    between groups of three digits are thousands marks: money never has three decimals);
    ``"7.25"`` stays as typed (a dot with one or two digits after it can only be a decimal point).
    """
    text = (text or "").strip()
    if "," in text:
        return _GROUP_MARKS.sub("", text).replace(",", ".")
    if _GROUPS_ONLY.fullmatch(text):
        return _GROUP_MARKS.sub("", text)
    return text


def parse_user_amount(text: str | None, *, what: str = "amount", example: str = "12.34") -> int:
    """What a person typed (``"1,234.50"``) -> minor units, > 0 and <= 10^12.

    Raises ValueError with a sentence to show next to the field. The shape is
    checked before parsing, so input like ``1e999999999`` never reaches Decimal.
    """
    text = (text or "").strip()
    article = "an" if what[:1].lower() in "aeiou" else "a"
    if not text:
        raise ValueError(f"Enter {article} {what}, for example {example}.")
    if len(text) > _USER_AMOUNT_MAX_LENGTH or not _USER_AMOUNT.fullmatch(text):
        raise ValueError(f"Enter the {what} as a number, for example {example}.")
    try:
        amount = parse_amount(text)
    except (ValueError, ArithmeticError) as exc:
        raise ValueError(f"Use at most two decimal places (whole cents), for example {example}.") from exc
    if amount <= 0:
        raise ValueError(f"The {what} must be more than zero.")
    if amount > MAX_AMOUNT:
        raise ValueError(f"The {what} is too large: at most {format_amount(MAX_AMOUNT)}.")
    return amount
