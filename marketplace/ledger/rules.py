"""Pure ledger rules: what makes a set of postings a valid journal entry, and
how a valid entry changes the balances it touches.

No Flask, no database: the service layer (``services.post_entry`` and
``batch.post_entries``) calls these on the rows it has locked, and the
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


class UnbalancedEntry(ValueError):  # noqa: N818 - named for the rule it breaks
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


@dataclass
class Balance:
    """A locked account as the rules see it; ``balance`` is in the normal direction."""

    code: str
    currency: str
    kind: str
    normal_side: str
    balance: int
    held: int

    @property
    def available(self) -> int:
        return self.balance - self.held


class Overdrawn(ValueError):  # noqa: N818 - named for the rule it breaks
    """An entry would take a wallet's available balance below zero."""

    def __init__(self, account_id: int, available: int):
        super().__init__(f"account {account_id}: available balance is {available}")
        self.account_id = account_id
        self.available = available


def entry_lines(balances: dict[int, Balance], postings: list[tuple[int, int]]) -> list[Line]:
    """``(account id, signed amount)`` pairs as Lines, each in its account's currency."""
    return [Line(balances[account_id].code, balances[account_id].currency, amount) for account_id, amount in postings]


def apply_entry(balances: dict[int, Balance], postings: list[tuple[int, int]]) -> list[int]:
    """Apply one balanced entry to ``balances`` in place; return each posting's balance after.

    Raises Overdrawn, changing nothing, if the entry takes any wallet's
    available balance (``balance - held``) below zero. The check is on the
    entry's net change per account, so an entry that moves money through a
    wallet and back leaves it alone.
    """
    deltas: dict[int, int] = {}
    for account_id, amount in postings:
        deltas[account_id] = deltas.get(account_id, 0) + normal_delta(balances[account_id].normal_side, amount)
    for account_id, delta in deltas.items():
        account = balances[account_id]
        if delta < 0 and account.kind == "wallet" and account.balance + delta - account.held < 0:
            raise Overdrawn(account_id, account.balance - account.held)
    after = []
    for account_id, amount in postings:
        account = balances[account_id]
        account.balance += normal_delta(account.normal_side, amount)
        after.append(account.balance)
    return after
