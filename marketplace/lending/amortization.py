"""Loan schedules, due dates, rates of return and payment allocation. Pure.

The rule (shared/DESIGN.md "Money arithmetic (exact)"): monthly rate
``r = rate_bps / 10000 / 12``; each loan part is its own annuity
``M = round_half_up(P * r / (1 - (1 + r) ** -n))`` (``r = 0``: ``round_half_up(P / n)``);
row k has ``interest_k = round_half_up(B_{k-1} * r)``, ``principal_k = M - interest_k``,
``B_k = B_{k-1} - principal_k``; the last row takes ``principal_n = B_{n-1}``. The
loan's row k is the sum of its parts' rows k.

Exactness: with ``r = a / 120000`` (``a = rate_bps``) every quantity above is a
ratio of integers, so it is computed with integers and rounded half up exactly:
``M = round_half_up(P * a * (120000 + a) ** n / (120000 * ((120000 + a) ** n - 120000 ** n)))``
and ``interest = (2 * B * a + 120000) // 240000``. This equals the Decimal formula
except where the exact value is a half cent, which a Decimal ``r`` rounded to 40
digits can miss (``B = 166500`` at 40 bps: exactly 55.5, so 56; ``B * r`` in Decimal gives 55).

Guard: ``principal_k`` is clamped to ``max(0, min(M - interest_k, B_{k-1}))``. The
lower bound never binds (``M >= round(P * r) >= interest_k``); the upper one binds
only for small parts, where rounding pays the balance off early: 7305 at 9281 bps
over 60 months is paid off by row 59 (570, not M = 572) and row 60 is 0; 350 over
600 months at 0 % has M = 1 and rows 351-600 are 0. So every row but the last has
``total == M`` unless the balance ran out; it never rises, never goes below 0 and
ends at exactly 0.

Amounts are ``int`` minor units, rates ``int`` basis points a year; no float.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, localcontext
from functools import lru_cache

from marketplace.money import largest_remainder, round_half_up

MONTHS_A_YEAR = 12
BPS = 10000
RATE_DENOMINATOR = BPS * MONTHS_A_YEAR  # r = rate_bps / 120000
PRECISION = 50


@dataclass(frozen=True, slots=True)
class Row:
    """One installment; ``balance`` is the principal still owed after it."""

    number: int
    principal: int
    interest: int
    total: int
    balance: int


def _div_half_up(numerator: int, denominator: int) -> int:
    """``round_half_up(numerator / denominator)`` exactly, halves away from zero (denominator > 0)."""
    if numerator >= 0:
        return (2 * numerator + denominator) // (2 * denominator)
    return -((-2 * numerator + denominator) // (2 * denominator))


def monthly_rate(rate_bps: int) -> Decimal:
    """``rate_bps / 10000 / 12`` as a Decimal (50 significant digits)."""
    with localcontext() as ctx:
        ctx.prec = PRECISION
        return Decimal(rate_bps) / BPS / MONTHS_A_YEAR


def monthly_interest(balance: int, rate_bps: int) -> int:
    """``round_half_up(balance * r)``, exact."""
    return _div_half_up(balance * rate_bps, RATE_DENOMINATOR)


@lru_cache(maxsize=4096)
def _growth(rate_bps: int, months: int) -> tuple[int, int]:
    """``((120000 + a) ** n, 120000 ** n)``: the annuity factor as two integers."""
    return (RATE_DENOMINATOR + rate_bps) ** months, RATE_DENOMINATOR**months


def monthly_payment(principal: int, rate_bps: int, months: int) -> int:
    """The annuity M of one part, rounded half up (exact)."""
    if principal < 0 or rate_bps < 0 or months < 1:
        raise ValueError("need principal >= 0, rate_bps >= 0 and months >= 1")
    if rate_bps == 0:
        return _div_half_up(principal, months)
    grown, base = _growth(rate_bps, months)
    return _div_half_up(principal * rate_bps * grown, RATE_DENOMINATOR * (grown - base))


def part_schedule(principal: int, rate_bps: int, months: int) -> list[Row]:
    """The schedule of one part: ``months`` rows, principal summing to ``principal``."""
    payment = monthly_payment(principal, rate_bps, months)
    twice_rate, half, whole = 2 * rate_bps, RATE_DENOMINATOR, 2 * RATE_DENOMINATOR
    balance, rows = principal, []
    for number in range(1, months + 1):
        interest = (twice_rate * balance + half) // whole  # balance >= 0: _div_half_up inlined
        if number < months:
            paid = payment - interest
            paid = balance if paid > balance else (paid if paid > 0 else 0)
        else:
            paid = balance
        balance -= paid
        rows.append(Row(number, paid, interest, paid + interest, balance))
    return rows


def sum_schedules(schedules: Sequence[Sequence[Row]]) -> list[Row]:
    """Row k of the result is the field-by-field sum of every schedule's row k."""
    if not schedules:
        return []
    months = len(schedules[0])
    if any(len(s) != months for s in schedules):
        raise ValueError("schedules must have the same number of rows")
    principal, interest, balance = [0] * months, [0] * months, [0] * months
    for schedule in schedules:
        for k, row in enumerate(schedule):
            principal[k] += row.principal
            interest[k] += row.interest
            balance[k] += row.balance
    return [Row(k + 1, principal[k], interest[k], principal[k] + interest[k], balance[k]) for k in range(months)]


def loan_schedule(parts: Sequence[tuple[int, int]], months: int) -> tuple[list[list[Row]], list[Row]]:
    """``parts`` are ``(principal, rate_bps)``: (each part's schedule, the loan's rows)."""
    cache: dict[tuple[int, int], list[Row]] = {}
    schedules = []
    for principal, rate_bps in parts:
        key = (principal, rate_bps)
        if key not in cache:
            cache[key] = part_schedule(principal, rate_bps, months)
        schedules.append(list(cache[key]))  # rows are frozen; only the list is copied
    return schedules, sum_schedules(schedules)


def weighted_rate(parts: Sequence[tuple[int, int]]) -> int:
    """Amount-weighted mean of the parts' rates, rounded half up."""
    total = sum(p for p, _ in parts)
    if total <= 0:
        raise ValueError("parts must have a positive total")
    return _div_half_up(sum(p * rate for p, rate in parts), total)


def due_date(start: date, k: int) -> date:
    """``k`` months after ``start``, same day, or the month's last day when that day does not exist."""
    years, month0 = divmod(start.month - 1 + k, MONTHS_A_YEAR)
    year, month = start.year + years, month0 + 1
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


def due_dates(start: date, months: int) -> list[date]:
    return [due_date(start, k) for k in range(1, months + 1)]


def _bisect(value, lo: Decimal, hi: Decimal, tolerance: Decimal) -> Decimal:
    """A root of ``value`` in [lo, hi], where ``value(lo)`` and ``value(hi)`` differ in sign."""
    lo_sign = value(lo) > 0
    for _ in range(400):
        if hi - lo <= tolerance:
            break
        mid = (lo + hi) / 2
        at_mid = value(mid)
        if at_mid == 0:
            return mid
        if (at_mid > 0) == lo_sign:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _bracket(value, points: Sequence[Decimal]) -> tuple[Decimal, Decimal] | None:
    """The first pair of neighbouring ``points`` where ``value`` changes sign (or hits 0)."""
    previous, previous_value = None, None
    for point in points:
        current = value(point)
        if current == 0:
            return point, point
        if previous is not None and (current > 0) != (previous_value > 0):
            return previous, point
        previous, previous_value = point, current
    return None


_MONTHLY_GRID = tuple(Decimal(x) for x in ("-0.999999", "-0.99", "-0.9", "-0.5", "0", "0.1", "1", "10", "1000"))


def monthly_irr(flows: Sequence[int]) -> Decimal:
    """The monthly rate r with ``sum(flows[k] / (1 + r) ** k) == 0``, to 1e-15 (either sign convention).

    ``flows[k]`` is the net flow at month k. 0 exactly when the flows sum to 0.
    Raises ValueError without a sign change or without a root in (-0.999999, 1000].
    """
    if not any(f > 0 for f in flows) or not any(f < 0 for f in flows):
        raise ValueError("the flows need a sign change")
    if sum(flows) == 0:
        return Decimal(0)
    with localcontext() as ctx:
        ctx.prec = PRECISION
        backwards = [Decimal(f) for f in reversed(flows)]

        def npv(rate: Decimal) -> Decimal:
            discount, acc = 1 / (1 + rate), Decimal(0)
            for flow in backwards:  # Horner: f0 + v * (f1 + v * (f2 + ...))
                acc = acc * discount + flow
            return acc

        bracket = _bracket(npv, _MONTHLY_GRID)
        if bracket is None:
            raise ValueError("no monthly rate in (-0.999999, 1000] gives these flows")
        return +_bisect(npv, *bracket, tolerance=Decimal("1e-20"))


def apr_bps(net_disbursed: int, payments: Sequence[int]) -> int:
    """``round_half_up(12 * monthly IRR * 10000)`` of +net_disbursed at month 0, -payments[k-1] at month k."""
    return round_half_up(monthly_irr([net_disbursed, *(-p for p in payments)]) * RATE_DENOMINATOR)


def accrued_interest(balance: int, rate_bps: int, period_start: date, period_end: date, on: date) -> int:
    """``round_half_up(balance * r * elapsed / period_days)``, elapsed clamped to the period."""
    period_days = (period_end - period_start).days
    if period_days <= 0:
        raise ValueError("period_end must be after period_start")
    elapsed = min(max((on - period_start).days, 0), period_days)
    return _div_half_up(balance * rate_bps * elapsed, RATE_DENOMINATOR * period_days)


_XIRR_GRID = tuple(Decimal(x) for x in ("-0.9999", "-0.99", "-0.9", "-0.5", "0", "0.5", "1", "3", "10", "30", "100"))


def xirr(flows: Sequence[tuple[date, int]]) -> Decimal | None:
    """Annual x with ``sum(amount / (1 + x) ** (days / 365)) == 0``, to 1e-12; None if there is none.

    ``days`` counts from the earliest flow (the root does not depend on that
    choice). None for fewer than 2 flows, no sign change, or no root in
    [-0.9999, 100]; with several roots the lowest bracketed one. 0 exactly when the flows sum to 0.
    """
    if len(flows) < 2 or not any(a > 0 for _, a in flows) or not any(a < 0 for _, a in flows):
        return None
    if sum(a for _, a in flows) == 0:
        return Decimal(0)
    first = min(d for d, _ in flows)
    by_day: dict[int, int] = {}
    for day, amount in flows:
        by_day[(day - first).days] = by_day.get((day - first).days, 0) + amount
    with localcontext() as ctx:
        ctx.prec = 40
        terms = [(days, Decimal(amount)) for days, amount in sorted(by_day.items()) if amount]

        def npv(rate: Decimal) -> Decimal:
            daily = (-(1 + rate).ln() / 365).exp()  # (1 + x) ** (-1 / 365): days become integer powers
            total, factor, previous = Decimal(0), Decimal(1), 0
            for days, amount in terms:  # ascending days: each factor from the one before
                factor *= daily ** (days - previous)
                total, previous = total + amount * factor, days
            return total

        bracket = _bracket(npv, _XIRR_GRID)
        if bracket is None:
            return None
        return _bisect(npv, *bracket, tolerance=Decimal("1e-14")).quantize(Decimal("1e-12"))


@dataclass(frozen=True, slots=True)
class PartDue:
    """What part ``part_id`` is still owed on installment ``number``."""

    part_id: int
    number: int
    interest_owed: int
    principal_owed: int


@dataclass(frozen=True, slots=True)
class Allocation:
    part_id: int
    number: int
    interest: int
    principal: int


def _split(amount: int, owed: list[int]) -> list[int]:
    """``amount`` (<= sum(owed)) pro rata to ``owed`` by largest remainder: no share exceeds its owed."""
    return largest_remainder(amount, owed) if amount else [0] * len(owed)


def allocate_payment(amount: int, dues: Sequence[PartDue]) -> list[Allocation]:
    """Share a payment: oldest installment first, interest before principal, parts pro rata to the cent.

    An installment is touched only once every earlier one is fully paid. Raises
    ValueError when ``amount <= 0`` or exceeds everything owed.
    """
    if any(d.interest_owed < 0 or d.principal_owed < 0 for d in dues):
        raise ValueError("amounts owed must be >= 0")
    if len({(d.part_id, d.number) for d in dues}) != len(dues):
        raise ValueError("one due per part and installment")
    owed = sum(d.interest_owed + d.principal_owed for d in dues)
    if amount <= 0 or amount > owed:
        raise ValueError(f"the amount must be more than 0 and at most {owed}")
    ordered = sorted(dues, key=lambda d: (d.number, d.part_id))
    groups: dict[int, list[PartDue]] = {}
    for due in ordered:
        groups.setdefault(due.number, []).append(due)
    left, result = amount, []
    for number, group in groups.items():
        interest_owed = [d.interest_owed for d in group]
        interest = _split(min(left, sum(interest_owed)), interest_owed)
        left -= sum(interest)
        principal_owed = [d.principal_owed for d in group]
        principal = _split(min(left, sum(principal_owed)), principal_owed)
        left -= sum(principal)
        for due, paid_interest, paid_principal in zip(group, interest, principal, strict=True):
            if paid_interest or paid_principal:
                result.append(Allocation(due.part_id, number, paid_interest, paid_principal))
        if left == 0:
            break
    return result
