"""Money arithmetic, exact. Pure: no Flask, no database.

Every amount in this code base is an ``int`` count of minor units (cents);
rates are ``int`` basis points a year. Intermediates that are not whole use
``Decimal`` and are rounded with ROUND_HALF_UP. No float anywhere.
"""

from __future__ import annotations

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
