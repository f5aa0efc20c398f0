"""money.py: exact rounding, fees, cent splits and amount text, by example and by property."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketplace.money import MAX_AMOUNT, fee, format_amount, largest_remainder, parse_amount, round_half_up


@pytest.fixture(autouse=True)
def _clean_database():
    """Overrides the suite's autouse database fixture: money is pure and needs no app."""
    yield


# ---------------------------------------------------------------- round_half_up


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.5", 1),
        ("1.5", 2),
        ("2.5", 3),  # half up, not half to even (which gives 2)
        ("2.4999999999", 2),
        ("2.5000000001", 3),
        ("-0.5", -1),  # halves go away from zero
        ("-2.5", -3),
        ("-2.4", -2),
        ("0", 0),
        ("7", 7),
    ],
)
def test_round_half_up_examples(value, expected):
    assert round_half_up(Decimal(value)) == expected


def test_round_half_up_takes_ints():
    assert round_half_up(41) == 41
    assert isinstance(round_half_up(Decimal("1.5")), int)


@given(st.integers(-(10**15), 10**15), st.integers(1, 10**6))
def test_round_half_up_is_the_nearest_int_with_halves_away_from_zero(numerator, denominator):
    exact = Fraction(numerator, denominator)
    rounded = round_half_up(Decimal(numerator) / Decimal(denominator))
    assert abs(rounded - exact) <= Fraction(1, 2)
    if abs(rounded - exact) == Fraction(1, 2):
        assert abs(rounded) > abs(exact)


# ---------------------------------------------------------------- fee


@pytest.mark.parametrize(
    ("amount", "bps", "expected"),
    [
        (10_000, 100, 100),  # 1 % of 100.00
        (50, 100, 1),  # 0.5 -> 1
        (150, 100, 2),  # 1.5 -> 2
        (250, 100, 3),  # 2.5 -> 3 (banker's rounding would give 2)
        (149, 100, 1),  # 1.49 -> 1
        (151, 100, 2),
        (49, 100, 0),  # 0.49 -> 0
        (1, 5_000, 1),  # 0.5 -> 1
        (3, 5_000, 2),  # 1.5 -> 2
        (12_345, 250, 309),  # 308.625 -> 309
        (12_345, 0, 0),
        (0, 100, 0),
        (MAX_AMOUNT, 100, 10**10),
    ],
)
def test_fee_examples(amount, bps, expected):
    assert fee(amount, bps) == expected


@given(st.integers(0, MAX_AMOUNT), st.integers(0, 10_000))
def test_fee_is_amount_times_bps_rounded_half_up(amount, bps):
    # For amount, bps >= 0: round_half_up(a*b/10000) = floor((2ab + 10000) / 20000), all in ints.
    assert fee(amount, bps) == (2 * amount * bps + 10_000) // 20_000
    assert 0 <= fee(amount, bps) <= amount


# ---------------------------------------------------------------- largest_remainder


@pytest.mark.parametrize(
    ("total", "weights", "expected"),
    [
        (100, [1, 1, 1], [34, 33, 33]),  # the cent left over goes to the earliest tie
        (100, [1, 1, 1, 1], [25, 25, 25, 25]),
        (10, [3, 3, 4], [3, 3, 4]),
        (1, [1, 1], [1, 0]),
        (7, [0, 5, 0], [0, 7, 0]),
        (99, [10, 20, 30], [17, 33, 49]),  # 16.5, 33, 49.5: the two .5s tie, earlier first
        (-100, [1, 1, 1], [-34, -33, -33]),
        (0, [5, 7], [0, 0]),
    ],
)
def test_largest_remainder_examples(total, weights, expected):
    assert largest_remainder(total, weights) == expected


@pytest.mark.parametrize("weights", [[], [0, 0], [1, -1], [-2, 5]])
def test_largest_remainder_refuses_bad_weights(weights):
    with pytest.raises(ValueError):
        largest_remainder(100, weights)


weights_lists = st.lists(st.integers(0, 10**9), min_size=1, max_size=30).filter(lambda w: sum(w) > 0)


@given(st.integers(-(10**12), 10**12), weights_lists)
def test_largest_remainder_shares_add_up_and_stay_within_one_cent(total, weights):
    shares = largest_remainder(total, weights)
    assert len(shares) == len(weights)
    assert sum(shares) == total
    weight_sum = sum(weights)
    for share, weight in zip(shares, weights, strict=True):
        exact = Fraction(total * weight, weight_sum)
        assert abs(share - exact) < 1
        if weight == 0:
            assert share == 0


@given(st.integers(0, 10**12), weights_lists)
def test_largest_remainder_gives_the_extra_cents_to_the_largest_remainders(total, weights):
    shares = largest_remainder(total, weights)
    weight_sum = sum(weights)
    floors = [total * w // weight_sum for w in weights]
    remainders = [total * w % weight_sum for w in weights]
    extra = [share - floor for share, floor in zip(shares, floors, strict=True)]
    assert set(extra) <= {0, 1}
    got = [r for r, e in zip(remainders, extra, strict=True) if e]
    missed = [r for r, e in zip(remainders, extra, strict=True) if not e]
    if got and missed:
        assert min(got) >= max(missed)


@given(st.integers(0, 10**12), weights_lists)
def test_largest_remainder_mirrors_negative_totals(total, weights):
    assert largest_remainder(-total, weights) == [-s for s in largest_remainder(total, weights)]


# ---------------------------------------------------------------- amount text


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [(123_456, "EUR", "1,234.56 EUR"), (5, "", "0.05"), (-5, "GBP", "-0.05 GBP"), (100, "", "1.00")],
)
def test_format_amount_examples(amount, currency, text):
    assert format_amount(amount, currency) == text


@given(st.integers(-MAX_AMOUNT, MAX_AMOUNT))
def test_parse_amount_reads_what_format_amount_writes(amount):
    assert parse_amount(format_amount(amount)) == amount


@pytest.mark.parametrize("text", ["1.234", "0.001", "abc", "NaN", "Infinity"])
def test_parse_amount_refuses_fractions_of_a_cent_and_non_numbers(text):
    with pytest.raises((ValueError, ArithmeticError)):
        parse_amount(text)
