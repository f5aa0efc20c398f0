"""amortization.py: hand-checked schedules, dates, rates of return, payment allocation, and properties."""

from __future__ import annotations

import ast
import math
from datetime import date, timedelta
from decimal import Decimal, localcontext
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from marketplace.lending import amortization
from marketplace.lending.amortization import (
    Allocation,
    PartDue,
    Row,
    accrued_interest,
    allocate_payment,
    apr_bps,
    due_date,
    due_dates,
    loan_schedule,
    monthly_interest,
    monthly_irr,
    monthly_payment,
    monthly_rate,
    part_schedule,
    sum_schedules,
    weighted_rate,
    xirr,
)
from marketplace.money import round_half_up


@pytest.fixture(autouse=True)
def _clean_database():
    """Overrides the suite's autouse database fixture: the engine needs no app and no database."""
    yield


def rows(schedule: list[Row]) -> list[tuple[int, int, int, int, int]]:
    return [(r.number, r.principal, r.interest, r.total, r.balance) for r in schedule]


# --- hand-checked schedules ---------------------------------------------------------------------


def test_twelve_months_at_twelve_percent():
    # r = 0.01; M = 1000 / (1 - 1.01^-12) = 8884.8789 -> 8885; interest 1000.00, 921.15 -> 921, 841.51 -> 842 ...
    assert monthly_payment(100000, 1200, 12) == 8885
    assert rows(part_schedule(100000, 1200, 12)) == [
        (1, 7885, 1000, 8885, 92115),
        (2, 7964, 921, 8885, 84151),
        (3, 8043, 842, 8885, 76108),
        (4, 8124, 761, 8885, 67984),
        (5, 8205, 680, 8885, 59779),
        (6, 8287, 598, 8885, 51492),
        (7, 8370, 515, 8885, 43122),
        (8, 8454, 431, 8885, 34668),
        (9, 8538, 347, 8885, 26130),
        (10, 8624, 261, 8885, 17506),
        (11, 8710, 175, 8885, 8796),
        (12, 8796, 88, 8884, 0),  # last row takes the balance: 8796 + round(87.96)
    ]


def test_three_months_at_six_percent():
    # r = 0.005; M = 50 / (1 - 1.005^-3) = 3366.72 -> 3367; interest 50, 33.415 -> 33, 16.745 -> 17.
    assert rows(part_schedule(10000, 600, 3)) == [
        (1, 3317, 50, 3367, 6683),
        (2, 3334, 33, 3367, 3349),
        (3, 3349, 17, 3366, 0),
    ]


def test_zero_rate():
    assert monthly_payment(100000, 0, 3) == 33333
    assert rows(part_schedule(100000, 0, 3)) == [
        (1, 33333, 0, 33333, 66667),
        (2, 33333, 0, 33333, 33334),
        (3, 33334, 0, 33334, 0),
    ]
    assert monthly_payment(5, 0, 2) == 3  # 2.5 rounds half up


def test_sixty_months_first_and_last_rows():
    # r = 799 / 120000; interest 1 = 6658.33 -> 6658; M = 20271.9... -> 20272; interest 60 = 20105 * r = 133.87 -> 134.
    schedule = part_schedule(1000000, 799, 60)
    assert monthly_payment(1000000, 799, 60) == 20272
    assert rows(schedule[:2]) == [(1, 13614, 6658, 20272, 986386), (2, 13704, 6568, 20272, 972682)]
    assert rows(schedule[-2:]) == [(59, 20005, 267, 20272, 20105), (60, 20105, 134, 20239, 0)]


def test_twenty_four_months_first_and_last_rows():
    schedule = part_schedule(250000, 1999, 24)
    assert rows(schedule[:1]) == [(1, 8558, 4165, 12723, 241442)]  # 250000 * 1999 / 120000 = 4164.58
    assert rows(schedule[-1:]) == [(24, 12508, 208, 12716, 0)]  # 12508 * 1999 / 120000 = 208.37


def test_small_part_is_paid_off_early():
    schedule = part_schedule(7305, 9281, 60)
    assert monthly_payment(7305, 9281, 60) == 572
    assert rows(schedule[-3:]) == [(58, 493, 79, 572, 529), (59, 529, 41, 570, 0), (60, 0, 0, 0, 0)]
    assert rows(part_schedule(2, 0, 3)) == [(1, 1, 0, 1, 1), (2, 1, 0, 1, 0), (3, 0, 0, 0, 0)]


def test_one_month_and_zero_principal():
    assert rows(part_schedule(100000, 1200, 1)) == [(1, 100000, 1000, 101000, 0)]
    assert rows(part_schedule(0, 1200, 3)) == [(1, 0, 0, 0, 0), (2, 0, 0, 0, 0), (3, 0, 0, 0, 0)]


def test_bad_arguments():
    for args in ((-1, 100, 12), (100, -1, 12), (100, 100, 0)):
        with pytest.raises(ValueError):
            part_schedule(*args)


def test_monthly_rate():
    assert monthly_rate(1200) == Decimal("0.01")
    assert monthly_rate(0) == 0
    assert str(monthly_rate(100))[:12] == "0.0008333333"


def test_interest_is_exact_at_half_cents():
    # 166500 * 40 / 120000 = 55.5 exactly: half up gives 56. A Decimal r rounded to 40 digits misses it.
    assert monthly_interest(166500, 40) == 56
    with localcontext() as ctx:
        ctx.prec = 40
        assert round_half_up(166500 * (Decimal(40) / 10000 / 12)) == 55
    assert monthly_interest(150, 1200) == 2  # 1.5


@settings(max_examples=500, deadline=None)
@given(st.integers(0, 10**12), st.integers(0, 10000))
def test_integer_interest_equals_exact_and_decimal_formula(balance, rate_bps):
    expected = math.floor(Fraction(balance * rate_bps, 120000) + Fraction(1, 2))
    assert monthly_interest(balance, rate_bps) == expected
    with localcontext() as ctx:  # the integers divided once: a terminating half stays exact
        ctx.prec = 50
        assert round_half_up(Decimal(balance * rate_bps) / 120000) == expected
        if Fraction(balance * rate_bps, 120000) % 1 != Fraction(1, 2):
            assert round_half_up(balance * monthly_rate(rate_bps)) == expected


def exact_payment(principal: int, rate_bps: int, months: int) -> Fraction:
    if rate_bps == 0:
        return Fraction(principal, months)
    r = Fraction(rate_bps, 120000)
    return principal * r / (1 - (1 + r) ** -months)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 10**9), st.integers(0, 10000), st.integers(1, 600))
def test_payment_equals_the_decimal_formula(principal, rate_bps, months):
    exact = exact_payment(principal, rate_bps, months)
    assert monthly_payment(principal, rate_bps, months) == math.floor(exact + Fraction(1, 2))
    assume(exact % 1 != Fraction(1, 2))  # an exact half cent is where 40 digits may round the wrong way
    with localcontext() as ctx:
        ctx.prec = 40
        r = Decimal(rate_bps) / 10000 / 12
        decimal_m = principal * r / (1 - (1 + r) ** -months) if rate_bps else Decimal(principal) / months
        assert monthly_payment(principal, rate_bps, months) == round_half_up(decimal_m)


# --- schedule properties ------------------------------------------------------------------------


def check_part(schedule: list[Row], principal: int, rate_bps: int, months: int) -> None:
    payment = monthly_payment(principal, rate_bps, months)
    assert [r.number for r in schedule] == list(range(1, months + 1))
    assert sum(r.principal for r in schedule) == principal
    assert schedule[-1].balance == 0
    before = principal
    for row in schedule:
        assert row.total == row.principal + row.interest
        assert row.interest == monthly_interest(before, rate_bps) >= 0
        assert row.principal >= 0 and 0 <= row.balance == before - row.principal <= before
        if row.number < months and row.total != payment:  # only when the balance ran out early
            assert row.balance == 0 and row.principal == before
        before = row.balance


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 10**8), st.integers(0, 10000), st.integers(1, 600))
def test_part_schedule_properties(principal, rate_bps, months):
    check_part(part_schedule(principal, rate_bps, months), principal, rate_bps, months)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 10**4), st.integers(0, 10000), st.sampled_from([3, 6, 12, 24, 36, 48, 60]))
def test_small_part_schedule_properties(principal, rate_bps, months):
    check_part(part_schedule(principal, rate_bps, months), principal, rate_bps, months)


@settings(max_examples=200, deadline=None)
@given(st.integers(10**5, 10**9), st.integers(0, 10000), st.integers(1, 60))
def test_no_early_payoff_for_parts_of_1000_or_more(principal, rate_bps, months):
    payment = monthly_payment(principal, rate_bps, months)
    assert all(r.total == payment for r in part_schedule(principal, rate_bps, months)[:-1])


parts_strategy = st.lists(st.tuples(st.integers(1, 10**6), st.integers(0, 10000)), min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(parts_strategy, st.integers(1, 60))
def test_loan_rows_are_the_sums_of_part_rows(parts, months):
    schedules, loan = loan_schedule(parts, months)
    assert [rows(s) for s in schedules] == [rows(part_schedule(p, r, months)) for p, r in parts]
    for k, row in enumerate(loan):
        assert row.number == k + 1
        for field in ("principal", "interest", "total", "balance"):
            assert getattr(row, field) == sum(getattr(s[k], field) for s in schedules)
    assert sum(r.principal for r in loan) == sum(p for p, _ in parts)
    assert loan[-1].balance == 0


def test_loan_schedule_reuses_equal_parts_but_returns_separate_lists():
    schedules, loan = loan_schedule([(100000, 1200), (100000, 1200)], 12)
    assert schedules[0] == schedules[1] and schedules[0] is not schedules[1]
    assert loan[0] == Row(1, 15770, 2000, 17770, 184230)


def test_sum_schedules_edges():
    assert sum_schedules([]) == []
    with pytest.raises(ValueError):
        sum_schedules([part_schedule(100, 0, 2), part_schedule(100, 0, 3)])


def test_weighted_rate():
    assert weighted_rate([(100, 500), (300, 1000)]) == 875
    assert weighted_rate([(1, 1), (1, 2)]) == 2  # 1.5 rounds half up
    assert weighted_rate([(2, 1), (1, 2)]) == 1  # 1.33
    assert weighted_rate([(5000, 799)]) == 799
    with pytest.raises(ValueError):
        weighted_rate([])


# --- due dates ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "k", "expected"),
    [
        (date(2027, 1, 31), 1, date(2027, 2, 28)),
        (date(2028, 1, 31), 1, date(2028, 2, 29)),  # leap year
        (date(2028, 2, 29), 12, date(2029, 2, 28)),
        (date(2028, 2, 29), 48, date(2032, 2, 29)),
        (date(2027, 8, 31), 1, date(2027, 9, 30)),
        (date(2027, 12, 15), 1, date(2028, 1, 15)),
        (date(2027, 1, 31), 2, date(2027, 3, 31)),  # counted from the start, not from Feb 28
        (date(2027, 5, 10), 0, date(2027, 5, 10)),
        (date(2027, 3, 31), -1, date(2027, 2, 28)),
        (date(2027, 1, 15), 60, date(2032, 1, 15)),
    ],
)
def test_due_date(start, k, expected):
    assert due_date(start, k) == expected


def test_due_dates():
    assert due_dates(date(2027, 1, 31), 4) == [
        date(2027, 2, 28),
        date(2027, 3, 31),
        date(2027, 4, 30),
        date(2027, 5, 31),
    ]
    assert due_dates(date(2027, 1, 1), 0) == []


# --- rates of return ----------------------------------------------------------------------------


def test_monthly_irr_hand_cases():
    assert monthly_irr([100, -110]) == Decimal("0.1")
    assert monthly_irr([-100, 110]) == Decimal("0.1")  # either sign convention
    assert abs(monthly_irr([100, 0, -121]) - Decimal("0.1")) < Decimal("1e-15")
    assert monthly_irr([1000, -500, -500]) == 0 and str(monthly_irr([1000, -500, -500])) == "0"
    with localcontext() as ctx:  # 1000 = 600 v + 600 v^2
        ctx.prec = 40
        v = ((1 + Decimal(4) * 1000 / 600).sqrt() - 1) / 2
        assert abs(monthly_irr([1000, -600, -600]) - (1 / v - 1)) < Decimal("1e-15")
    assert abs(monthly_irr([100, -50]) - Decimal("-0.5")) < Decimal("1e-15")
    with pytest.raises(ValueError):
        monthly_irr([100, 10])
    with pytest.raises(ValueError):
        monthly_irr([0, 0])


def test_apr_of_the_hand_checked_schedule():
    payments = [r.total for r in part_schedule(100000, 1200, 12)]
    assert apr_bps(100000, payments) == 1200
    assert apr_bps(99000, payments) == 1391  # a 1 % fee deducted from the disbursement
    assert apr_bps(100000, [100000]) == 0


@pytest.mark.parametrize("rate_bps", [1, 99, 300, 499, 799, 1200, 1999, 2500, 4999, 7777, 10000])
@pytest.mark.parametrize("months", [3, 12, 60])
def test_apr_equals_the_rate_with_one_part_and_no_fee(rate_bps, months):
    principal = 1_000_000
    assert apr_bps(principal, [r.total for r in part_schedule(principal, rate_bps, months)]) == rate_bps


@settings(max_examples=60, deadline=None)
@given(st.integers(1_000_000, 10**9), st.integers(0, 10000), st.integers(1, 60))
def test_apr_equals_the_rate_for_parts_of_10000_or_more(principal, rate_bps, months):
    # Rounding moves the IRR by at most ~(months / 2) cents of present value: below half a bps from 10,000.00.
    assert apr_bps(principal, [r.total for r in part_schedule(principal, rate_bps, months)]) == rate_bps


def test_apr_of_small_parts_can_differ_by_rounding():
    assert apr_bps(61038, [r.total for r in part_schedule(61038, 3900, 3)]) == 3901
    assert apr_bps(100, [r.total for r in part_schedule(100, 1200, 12)]) != 1200


def test_xirr_hand_cases():
    assert abs(xirr([(date(2027, 1, 1), -1000), (date(2028, 1, 1), 1100)]) - Decimal("0.10")) < Decimal("1e-9")
    assert abs(xirr([(date(2027, 1, 1), 1000), (date(2028, 1, 1), -1100)]) - Decimal("0.10")) < Decimal("1e-9")
    # 366 days in 2028: 1.1 ** (365 / 366) - 1
    assert abs(xirr([(date(2028, 1, 1), -1000), (date(2029, 1, 1), 1100)]) - Decimal("0.0997135859341")) < Decimal(
        "1e-10"
    )
    # 181 days: 1.05 ** (365 / 181) - 1
    assert abs(xirr([(date(2027, 1, 1), -1000), (date(2027, 7, 1), 1050)]) - Decimal("0.1033919267131")) < Decimal(
        "1e-10"
    )
    # -1000 + 600 v + 600 v^2 with v = 1 / (1 + x): x = 0.1306623862918 (2028 is a leap year: 365 + 365 days)
    flows = [(date(2027, 1, 1), -1000), (date(2028, 1, 1), 600), (date(2028, 12, 31), 600)]
    assert abs(xirr(flows) - Decimal("0.1306623862918")) < Decimal("1e-10")
    assert xirr(list(reversed(flows))) == xirr(flows)  # the order given does not matter
    assert abs(xirr([(date(2027, 1, 1), -1000), (date(2028, 1, 1), 500)]) - Decimal("-0.5")) < Decimal("1e-9")


def test_xirr_none_and_zero():
    assert xirr([]) is None
    assert xirr([(date(2027, 1, 1), -1000)]) is None
    assert xirr([(date(2027, 1, 1), 1000), (date(2028, 1, 1), 1100)]) is None
    assert xirr([(date(2027, 1, 1), -1000), (date(2028, 1, 1), 0)]) is None
    assert xirr([(date(2027, 1, 1), -1000), (date(2027, 6, 1), 400), (date(2028, 1, 1), 600)]) == 0


def test_xirr_of_monthly_flows_is_close_to_the_compounded_rate():
    start = date(2027, 1, 1)
    schedule = part_schedule(1_000_000, 1200, 12)
    flows = [(start, -1_000_000)] + [(due_date(start, r.number), r.total) for r in schedule]
    # 1 % a month compounds to 12.68 % a year; months of 28..31 days move it a little
    assert abs(xirr(flows) - Decimal("0.1268")) < Decimal("0.003")


# --- accrued interest ---------------------------------------------------------------------------


def test_accrued_interest():
    start, end = date(2027, 1, 31), date(2027, 2, 28)  # 28 days, r = 1 %
    assert accrued_interest(100000, 1200, start, end, date(2027, 2, 14)) == 500
    assert accrued_interest(100000, 1200, start, end, start) == 0
    assert accrued_interest(100000, 1200, start, end, date(2027, 1, 1)) == 0  # before the period
    assert accrued_interest(100000, 1200, start, end, end) == 1000 == monthly_interest(100000, 1200)
    assert accrued_interest(100000, 1200, start, end, date(2027, 3, 15)) == 1000  # after: clamped
    # 12345 * 999 / 120000 * 7 / 30 = 23.98 -> 24
    assert accrued_interest(12345, 999, date(2027, 3, 1), date(2027, 3, 31), date(2027, 3, 8)) == 24
    assert accrued_interest(0, 1200, start, end, date(2027, 2, 14)) == 0
    with pytest.raises(ValueError):
        accrued_interest(100, 1200, end, start, end)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**9), st.integers(0, 10000), st.integers(1, 31), st.integers(-5, 40))
def test_accrued_interest_properties(balance, rate_bps, period_days, elapsed):
    start = date(2027, 1, 1)
    end, on = start + timedelta(days=period_days), start + timedelta(days=elapsed)
    value = accrued_interest(balance, rate_bps, start, end, on)
    clamped = min(max(elapsed, 0), period_days)
    assert value == math.floor(Fraction(balance * rate_bps * clamped, 120000 * period_days) + Fraction(1, 2))
    assert 0 <= value <= monthly_interest(balance, rate_bps)
    assert accrued_interest(balance, rate_bps, start, end, end) == monthly_interest(balance, rate_bps)


# --- payment allocation -------------------------------------------------------------------------

DUES = [
    PartDue(part_id=1, number=1, interest_owed=100, principal_owed=900),
    PartDue(part_id=2, number=1, interest_owed=50, principal_owed=450),
    PartDue(part_id=3, number=1, interest_owed=1, principal_owed=9),
    PartDue(part_id=1, number=2, interest_owed=90, principal_owed=910),
    PartDue(part_id=2, number=2, interest_owed=45, principal_owed=455),
    PartDue(part_id=3, number=2, interest_owed=1, principal_owed=9),
]


def test_partial_interest_is_split_by_largest_remainder():
    # 100 of 151 owed: 66.23, 33.11, 0.66 -> floors 66, 33, 0; the cent left goes to the largest remainder (part 3)
    assert allocate_payment(100, DUES) == [Allocation(1, 1, 66, 0), Allocation(2, 1, 33, 0), Allocation(3, 1, 1, 0)]


def test_interest_before_principal():
    # 200: all 151 of interest, then 49 of principal by 900 : 450 : 9 -> 32.45, 16.23, 0.32 -> 33, 16, 0
    assert allocate_payment(200, DUES) == [Allocation(1, 1, 100, 33), Allocation(2, 1, 50, 16), Allocation(3, 1, 1, 0)]


def test_oldest_installment_first():
    # installment 1 owes 1510; 1610 pays it and 100 of installment 2's 136 interest: 66.18, 33.09, 0.74
    result = allocate_payment(1610, list(reversed(DUES)))  # order given does not matter
    assert result == [
        Allocation(1, 1, 100, 900),
        Allocation(2, 1, 50, 450),
        Allocation(3, 1, 1, 9),
        Allocation(1, 2, 66, 0),
        Allocation(2, 2, 33, 0),
        Allocation(3, 2, 1, 0),
    ]
    everything = allocate_payment(3020, DUES)
    assert [(a.part_id, a.number, a.interest, a.principal) for a in everything] == [
        (d.part_id, d.number, d.interest_owed, d.principal_owed) for d in DUES
    ]


def test_parts_owed_nothing_get_nothing():
    dues = [PartDue(7, 1, 0, 0), PartDue(8, 1, 10, 0), PartDue(9, 1, 0, 5)]
    assert allocate_payment(12, dues) == [Allocation(8, 1, 10, 0), Allocation(9, 1, 0, 2)]


def test_allocation_rejects_bad_amounts():
    for amount in (0, -1, 3021):
        with pytest.raises(ValueError):
            allocate_payment(amount, DUES)
    with pytest.raises(ValueError):
        allocate_payment(1, [])
    with pytest.raises(ValueError):
        allocate_payment(1, [PartDue(1, 1, 5, 5), PartDue(1, 1, 5, 5)])
    with pytest.raises(ValueError):
        allocate_payment(1, [PartDue(1, 1, -5, 10)])


@st.composite
def dues_and_amount(draw):
    parts = draw(st.lists(st.integers(1, 50), min_size=1, max_size=5, unique=True))
    numbers = draw(st.lists(st.integers(1, 60), min_size=1, max_size=4, unique=True))
    dues = [PartDue(p, n, draw(st.integers(0, 5000)), draw(st.integers(0, 50000))) for p in parts for n in numbers]
    total = sum(d.interest_owed + d.principal_owed for d in dues)
    assume(total > 0)
    return dues, draw(st.integers(1, total))


@settings(max_examples=300, deadline=None)
@given(dues_and_amount())
def test_allocation_properties(case):
    dues, amount = case
    result = allocate_payment(amount, dues)
    assert sum(a.interest + a.principal for a in result) == amount
    assert [(a.number, a.part_id) for a in result] == sorted((a.number, a.part_id) for a in result)
    assert all(a.interest > 0 or a.principal > 0 for a in result)
    paid = {(a.part_id, a.number): a for a in result}
    owed = {(d.part_id, d.number): d for d in dues}
    for key, a in paid.items():
        assert 0 <= a.interest <= owed[key].interest_owed and 0 <= a.principal <= owed[key].principal_owed
    numbers = sorted({d.number for d in dues})
    for i, number in enumerate(numbers):
        group = [d for d in dues if d.number == number]
        got = [paid.get((d.part_id, number)) for d in group]
        interest = sum(a.interest for a in got if a)
        principal = sum(a.principal for a in got if a)
        earlier_full = all(
            paid.get((d.part_id, d.number)) == Allocation(d.part_id, d.number, d.interest_owed, d.principal_owed)
            or d.interest_owed + d.principal_owed == 0
            for d in dues
            if d.number in numbers[:i]
        )
        if interest or principal:
            assert earlier_full  # an installment is touched only once every earlier one is fully paid
        if principal:
            assert interest == sum(d.interest_owed for d in group)  # interest before principal
        if interest and interest < sum(d.interest_owed for d in group):  # a partial split is pro rata, to the cent
            weights = [d.interest_owed for d in sorted(group, key=lambda d: d.part_id)]
            shares = [
                (paid.get((d.part_id, number)) or Allocation(0, 0, 0, 0)).interest
                for d in sorted(group, key=lambda d: d.part_id)
            ]
            assert shares == largest_remainder_reference(interest, weights)


def largest_remainder_reference(total: int, weights: list[int]) -> list[int]:
    """Floors of the exact shares, then one cent each to the largest remainders (ties: earlier)."""
    exact = [Fraction(total * w, sum(weights)) for w in weights]
    shares = [math.floor(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - shares[i]), i))
    for i in order[: total - sum(shares)]:
        shares[i] += 1
    return shares


# --- purity -------------------------------------------------------------------------------------


def test_engine_imports_only_stdlib_and_money_and_uses_no_float():
    tree = ast.parse(Path(amortization.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
    assert imported <= {
        "__future__",
        "calendar",
        "collections.abc",
        "dataclasses",
        "datetime",
        "decimal",
        "functools",
    } | {"marketplace.money"}
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, float)]
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == "float"]
