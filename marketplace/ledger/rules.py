"""Pure ledger rules: what makes a set of postings a valid journal entry.

No Flask, no database: the service layer calls these before writing, and the
hypothesis model in the tests uses them too.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from ..money import MAX_AMOUNT


@dataclass(frozen=True)
class Line:
    """One posting to be made: account code, currency, signed amount (> 0 debit)."""

    account: str
    currency: str
    amount: int


class UnbalancedEntry(ValueError):
    pass


def check_balanced(lines: list[Line]) -> None:
    """Raise UnbalancedEntry unless ``lines`` form a valid journal entry."""
    if len(lines) < 2:
        raise UnbalancedEntry("a journal entry needs at least two postings")
    totals: dict[str, int] = defaultdict(int)
    for line in lines:
        if not isinstance(line.amount, int) or isinstance(line.amount, bool):
            raise UnbalancedEntry(f"posting amount must be an int, got {type(line.amount).__name__}")
        if line.amount == 0:
            raise UnbalancedEntry("a posting amount may not be zero")
        if abs(line.amount) > MAX_AMOUNT * 1000:
            raise UnbalancedEntry("posting amount out of range")
        totals[line.currency] += line.amount
    unbalanced = {cur: total for cur, total in totals.items() if total != 0}
    if unbalanced:
        raise UnbalancedEntry(f"postings do not sum to zero: {unbalanced}")


def normal_delta(normal_side: str, amount: int) -> int:
    """How a signed posting changes a balance kept in the normal direction."""
    return amount if normal_side == "debit" else -amount


def transfer_lines(debit_code: str, credit_code: str, currency: str, amount: int) -> list[Line]:
    """Two postings moving ``amount`` from the credited account to the debited one."""
    return [Line(debit_code, currency, amount), Line(credit_code, currency, -amount)]
