"""The buying-pool clearing engine: worked example, hand-made cases, properties against a brute force."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.pools import engine
from marketplace.pools.engine import (
    Bid,
    Pledge,
    Tier,
    best_unit_price,
    clear,
    clearing_order,
    next_price_break,
    price_at,
    price_curve,
)

T0 = datetime(2027, 1, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _clean_database():
    """Overrides the suite's autouse database fixture: the engine needs no app and no database."""
    yield


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def bid(bid_id: int, tiers: list[tuple[int, int]], capacity: int, minute: int = 0) -> Bid:
    return Bid(bid_id, tuple(Tier(v, p) for v, p in tiers), capacity, at(minute))


def pledge(pledge_id: int, quantity: int, max_price: int, minute: int = 0) -> Pledge:
    return Pledge(pledge_id, quantity, max_price, at(minute))


# --- the worked example of shared/DESIGN.md -------------------------------------------------------


def worked_example():
    pledges = [  # given out of order on purpose
        pledge(4, 50, 600, minute=1),  # D
        pledge(2, 40, 800, minute=2),  # B
        pledge(1, 50, 900, minute=3),  # A
        pledge(3, 30, 750, minute=4),  # C
    ]
    x = bid(10, [(50, 900), (100, 800), (150, 700)], capacity=500, minute=0)
    y = bid(11, [(100, 750)], capacity=200, minute=5)
    return pledges, [x, y]


def test_worked_example():
    pledges, bids = worked_example()
    result = clear(100, pledges, bids)

    assert result.clearing_order == (1, 2, 3, 4)
    x, y = result.outcomes
    assert (x.bid_id, x.cleared, x.reason, x.winner, x.volume, x.unit_price) == (
        10,
        False,
        "price_too_high",
        False,
        None,
        None,
    )
    assert x.members_served == 0 and x.total is None
    assert x.explanation.startswith("Could not clear: ")
    assert (y.bid_id, y.cleared, y.volume, y.unit_price, y.members_served, y.total, y.winner, y.reason) == (
        11,
        True,
        120,
        750,
        3,
        90000,
        True,
        None,
    )
    assert y.explanation.startswith("Cleared 120 units at 7.50")
    assert (result.awarded, result.winning_bid_id, result.unit_price, result.volume, result.total) == (
        True,
        11,
        750,
        120,
        90000,
    )
    assert result.fates == {1: "filled", 2: "filled", 3: "filled", 4: "released"}


def test_outcomes_follow_the_order_bids_were_given():
    pledges, bids = worked_example()
    result = clear(100, pledges, list(reversed(bids)))
    assert [o.bid_id for o in result.outcomes] == [11, 10]
    assert result.winning_bid_id == 11


# --- hand-made cases ----------------------------------------------------------------------------


def test_price_at():
    tiers = (Tier(50, 900), Tier(100, 800), Tier(150, 700))
    assert price_at(tiers, 0) is None
    assert price_at(tiers, 49) is None
    assert price_at(tiers, 50) == 900
    assert price_at(tiers, 99) == 900
    assert price_at(tiers, 100) == 800
    assert price_at(tiers, 149) == 800
    assert price_at(tiers, 150) == 700
    assert price_at(tiers, 10**9) == 700
    assert price_at((), 10) is None


def test_clearing_order_is_price_descending_then_oldest_then_id():
    pledges = [pledge(5, 1, 700, 3), pledge(3, 1, 800, 9), pledge(4, 1, 700, 1), pledge(2, 1, 700, 1)]
    assert [p.id for p in clearing_order(pledges)] == [3, 2, 4, 5]


def test_no_bids_releases_everything():
    result = clear(10, [pledge(1, 20, 500), pledge(2, 5, 400)], [])
    assert not result.awarded
    assert (result.winning_bid_id, result.unit_price, result.volume, result.total) == (None, None, None, None)
    assert result.outcomes == ()
    assert result.fates == {1: "released", 2: "released"}
    assert result.clearing_order == (1, 2)


def test_no_pledges():
    result = clear(10, [], [bid(1, [(10, 500)], 100)])
    assert not result.awarded
    assert result.fates == {} and result.clearing_order == ()
    (outcome,) = result.outcomes
    assert (outcome.cleared, outcome.reason, outcome.members_served) == (False, "no_pledges", 0)


def test_single_pledge_bigger_than_capacity():
    result = clear(10, [pledge(1, 300, 1000)], [bid(7, [(10, 500)], capacity=200)])
    assert not result.awarded
    assert result.outcomes[0].reason == "over_capacity"
    assert result.fates == {1: "released"}


def test_capacity_below_the_lower_bound_is_over_capacity():
    result = clear(100, [pledge(1, 150, 1000)], [bid(7, [(50, 500)], capacity=80)])
    assert result.outcomes[0].reason == "over_capacity"


def test_a_smaller_prefix_fits_when_the_whole_line_is_over_capacity():
    pledges = [pledge(1, 60, 900), pledge(2, 60, 800), pledge(3, 60, 700)]
    result = clear(50, pledges, [bid(7, [(50, 600)], capacity=130)])
    assert (result.volume, result.unit_price, result.total) == (120, 600, 72000)
    assert result.fates == {1: "filled", 2: "filled", 3: "released"}


def test_tier_exactly_at_min_volume_clears_at_exact_max_price():
    pledges = [pledge(1, 60, 500), pledge(2, 40, 500, minute=1)]
    result = clear(100, pledges, [bid(3, [(100, 500)], capacity=100)])
    assert result.awarded
    assert (result.volume, result.unit_price, result.total) == (100, 500, 50000)
    assert result.outcomes[0].members_served == 2
    assert result.fates == {1: "filled", 2: "filled"}


def test_one_unit_short_and_one_cent_too_dear():
    pledges = [pledge(1, 60, 500), pledge(2, 39, 500)]
    assert clear(100, pledges, [bid(3, [(100, 500)], 1000)]).outcomes[0].reason == "below_min_volume"
    assert clear(50, pledges, [bid(3, [(100, 500)], 1000)]).outcomes[0].reason == "below_first_tier"
    assert clear(50, pledges, [bid(3, [(50, 501)], 1000)]).outcomes[0].reason == "price_too_high"


def test_longest_prefix_may_use_a_lower_tier_than_a_shorter_one():
    # k=1: V=100 at 800 (ok, 900); k=2: V=200 at 700 > 650; k=3: V=300 at 600 <= 600 -> longest.
    pledges = [pledge(1, 100, 900), pledge(2, 100, 650), pledge(3, 100, 600)]
    result = clear(100, pledges, [bid(5, [(100, 800), (200, 700), (300, 600)], 1000)])
    assert (result.volume, result.unit_price, result.outcomes[0].members_served) == (300, 600, 3)


def test_award_prefers_lower_price_then_larger_volume():
    pledges = [pledge(1, 100, 1000), pledge(2, 100, 1000), pledge(3, 100, 1000)]
    cheap_small = bid(1, [(100, 700)], capacity=100)
    dear_big = bid(2, [(100, 800)], capacity=300)
    same_price_bigger = bid(3, [(100, 700)], capacity=250, minute=5)
    result = clear(100, pledges, [dear_big, cheap_small, same_price_bigger])
    assert result.winning_bid_id == 3
    assert (result.unit_price, result.volume) == (700, 200)
    assert [o.winner for o in result.outcomes] == [False, False, True]
    assert result.fates == {1: "filled", 2: "filled", 3: "released"}


def test_tie_on_price_and_volume_goes_to_the_earlier_bid():
    pledges = [pledge(1, 100, 1000)]
    later = bid(1, [(100, 700)], 500, minute=10)
    earlier = bid(2, [(100, 700)], 500, minute=3)
    assert clear(100, pledges, [later, earlier]).winning_bid_id == 2
    same_time_high_id = bid(9, [(100, 700)], 500, minute=3)
    same_time_low_id = bid(4, [(100, 700)], 500, minute=3)
    assert clear(100, pledges, [same_time_high_id, same_time_low_id]).winning_bid_id == 4


def test_tie_on_max_price_fills_the_older_pledge():
    pledges = [pledge(1, 50, 700, minute=9), pledge(2, 50, 700, minute=2), pledge(3, 50, 700, minute=2)]
    result = clear(50, pledges, [bid(1, [(50, 700)], capacity=100)])
    assert result.clearing_order == (2, 3, 1)
    assert result.fates == {2: "filled", 3: "filled", 1: "released"}


def test_best_unit_price():
    bids = [bid(1, [(50, 900), (100, 800)], capacity=150), bid(2, [(120, 850), (200, 600)], capacity=400)]
    assert best_unit_price(bids, 0) is None
    assert best_unit_price(bids, 49) is None
    assert best_unit_price(bids, 50) == 900
    assert best_unit_price(bids, 100) == 800
    assert best_unit_price(bids, 120) == 800
    assert best_unit_price(bids, 151) == 850  # bid 1 is past its capacity
    assert best_unit_price(bids, 200) == 600
    assert best_unit_price(bids, 400) == 600
    assert best_unit_price(bids, 401) is None
    assert best_unit_price([], 100) is None


def test_next_price_break():
    bids = [bid(1, [(50, 900), (100, 800)], capacity=150), bid(2, [(120, 850), (200, 600)], capacity=400)]
    assert next_price_break(bids, 0) == (50, 900)  # nothing offered yet: the first offer is a break
    assert next_price_break(bids, 30) == (20, 900)
    assert next_price_break(bids, 50) == (50, 800)
    assert next_price_break(bids, 99) == (1, 800)
    assert next_price_break(bids, 100) == (100, 600)  # 120 at 850 is not lower than 800
    assert next_price_break(bids, 160) == (40, 600)  # at 160 the best is 850
    assert next_price_break(bids, 200) is None
    assert next_price_break(bids, 500) is None
    assert next_price_break([], 10) is None


def test_next_price_break_skips_a_tier_beyond_capacity():
    bids = [bid(1, [(10, 900), (500, 100)], capacity=300), bid(2, [(10, 950), (200, 700)], capacity=1000)]
    assert next_price_break(bids, 50) == (150, 700)
    assert next_price_break(bids, 250) is None  # bid 1's 500-unit tier is beyond its capacity


def test_price_curve():
    bids = [bid(1, [(50, 900), (100, 800)], capacity=150), bid(2, [(120, 850), (200, 600)], capacity=400)]
    assert price_curve(bids) == [(50, 900), (100, 800), (151, 850), (200, 600)]
    assert price_curve(bids, max_volume=160) == [(50, 900), (100, 800), (151, 850)]
    assert price_curve(bids, max_volume=99) == [(50, 900)]
    assert price_curve([]) == []


def test_price_curve_skips_gaps_and_repeats():
    bids = [bid(1, [(10, 500)], capacity=100), bid(2, [(200, 500), (300, 400)], capacity=400)]
    assert price_curve(bids) == [(10, 500), (300, 400)]


def test_engine_imports_only_stdlib_and_money_and_uses_no_float():
    tree = ast.parse(Path(engine.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
    assert imported <= {"__future__", "bisect", "collections.abc", "dataclasses", "datetime", "itertools"} | {
        "marketplace.money",
        "marketplace.texts",  # pure too (tests/unit/test_texts.py): the explanations as translatable texts
    }
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, float)]
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == "float"]
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Div)]


# --- properties against a brute force -----------------------------------------------------------


def brute_price(tiers, volume):
    applicable = [t for t in tiers if t.min_volume <= volume]
    return max(applicable, key=lambda t: t.min_volume).unit_price if applicable else None


def brute_force(min_volume, pledges, bids):
    """The rule of shared/API.md, word for word: every prefix of the order for every bid."""
    order = sorted(pledges, key=lambda p: (-p.max_unit_price, p.placed_at, p.id))
    per_bid = {}
    for b in bids:
        best = None
        for k in range(1, len(order) + 1):
            volume = sum(p.quantity for p in order[:k])
            price = brute_price(b.tiers, volume)
            if (
                volume >= min_volume
                and volume >= b.tiers[0].min_volume
                and volume <= b.capacity
                and price is not None
                and price <= order[k - 1].max_unit_price
            ):
                best = (k, volume, price)
        per_bid[b.id] = best
    cleared = [(per_bid[b.id][2], -per_bid[b.id][1], b.placed_at, b.id) for b in bids if per_bid[b.id]]
    winner = min(cleared)[3] if cleared else None
    filled = {p.id for p in order[: per_bid[winner][0]]} if winner is not None else set()
    fates = {p.id: "filled" if p.id in filled else "released" for p in pledges}
    return order, per_bid, winner, fates


def brute_reason(min_volume, pledges, b):
    total = sum(p.quantity for p in pledges)
    lower = max(min_volume, b.tiers[0].min_volume)
    order = sorted(pledges, key=lambda p: (-p.max_unit_price, p.placed_at, p.id))
    volumes = [sum(p.quantity for p in order[:k]) for k in range(1, len(order) + 1)]
    if not pledges:
        return "no_pledges"
    if total < min_volume:
        return "below_min_volume"
    if total < b.tiers[0].min_volume:
        return "below_first_tier"
    if not any(lower <= v <= b.capacity for v in volumes):
        return "over_capacity"
    return "price_too_high"


MINUTES = st.integers(0, 3)  # few distinct times, so ties are common


@st.composite
def tiers_strategy(draw):
    volumes = sorted(draw(st.sets(st.integers(1, 120), min_size=1, max_size=4)))
    prices = sorted(draw(st.lists(st.integers(1, 20), min_size=len(volumes), max_size=len(volumes))), reverse=True)
    return tuple(Tier(v, p) for v, p in zip(volumes, prices, strict=True))


@st.composite
def pledges_strategy(draw, max_size=8):
    ids = draw(st.lists(st.integers(1, 1000), unique=True, max_size=max_size))
    return [Pledge(i, draw(st.integers(1, 40)), draw(st.integers(1, 20)), at(draw(MINUTES))) for i in ids]


@st.composite
def bids_strategy(draw, max_size=5):
    ids = draw(st.lists(st.integers(1, 1000), unique=True, max_size=max_size))
    return [Bid(i, draw(tiers_strategy()), draw(st.integers(1, 250)), at(draw(MINUTES))) for i in ids]


pools = st.tuples(st.integers(1, 120), pledges_strategy(), bids_strategy())


@settings(max_examples=400, deadline=None)
@given(pools)
def test_equals_brute_force(pool):
    min_volume, pledges, bids = pool
    result = clear(min_volume, pledges, bids)
    order, per_bid, winner, fates = brute_force(min_volume, pledges, bids)

    assert result.clearing_order == tuple(p.id for p in order)
    assert result.fates == fates
    assert result.awarded == (winner is not None)
    assert result.winning_bid_id == winner
    for b, outcome in zip(bids, result.outcomes, strict=True):
        expected = per_bid[b.id]
        assert outcome.bid_id == b.id
        assert outcome.cleared == (expected is not None)
        assert outcome.winner == (b.id == winner)
        if expected:
            k, volume, price = expected
            assert (outcome.members_served, outcome.volume, outcome.unit_price) == (k, volume, price)
            assert outcome.total == volume * price and outcome.reason is None
        else:
            assert (outcome.members_served, outcome.volume, outcome.unit_price, outcome.total) == (0, None, None, None)
            assert outcome.reason == brute_reason(min_volume, pledges, b)
    if winner is not None:
        _, volume, price = per_bid[winner]
        assert (result.volume, result.unit_price, result.total) == (volume, price, volume * price)


@settings(max_examples=300, deadline=None)
@given(pools)
def test_award_invariants(pool):
    min_volume, pledges, bids = pool
    result = clear(min_volume, pledges, bids)
    by_id = {p.id: p for p in pledges}
    filled = [pid for pid in result.clearing_order if result.fates[pid] == "filled"]
    assert set(result.fates) == set(by_id)
    assert all(isinstance(v, int) for o in result.outcomes for v in (o.volume, o.unit_price, o.total) if v is not None)

    if not result.awarded:
        assert set(result.fates.values()) <= {"released"}
        assert not any(o.cleared or o.winner for o in result.outcomes)
        assert (result.winning_bid_id, result.unit_price, result.volume, result.total) == (None, None, None, None)
        return

    # the filled set is a prefix of the clearing order
    assert filled == list(result.clearing_order[: len(filled)])
    winning_bid = next(b for b in bids if b.id == result.winning_bid_id)
    assert all(by_id[pid].max_unit_price >= result.unit_price for pid in filled)
    assert sum(by_id[pid].quantity for pid in filled) == result.volume
    assert min_volume <= result.volume <= winning_bid.capacity
    assert result.volume >= winning_bid.tiers[0].min_volume
    assert result.unit_price == price_at(winning_bid.tiers, result.volume)
    assert result.total == result.volume * result.unit_price
    # the winner is the minimum by (price, -volume, bid time, id) among the cleared bids
    times = {b.id: (b.placed_at, b.id) for b in bids}
    cleared = [o for o in result.outcomes if o.cleared]
    best = min(cleared, key=lambda o: (o.unit_price, -o.volume, times[o.bid_id]))
    assert best.bid_id == result.winning_bid_id
    assert [o.bid_id for o in result.outcomes if o.winner] == [result.winning_bid_id]


def brute_best(bids, volume):
    prices = [
        brute_price(b.tiers, volume) for b in bids if volume > 0 and b.tiers[0].min_volume <= volume <= b.capacity
    ]
    return min(prices) if prices else None


@settings(max_examples=200, deadline=None)
@given(bids_strategy(), st.integers(0, 260))
def test_best_price_and_next_break_against_a_scan(bids, volume):
    assert best_unit_price(bids, volume) == brute_best(bids, volume)
    current = brute_best(bids, volume)
    expected = None
    for v in range(volume + 1, 300):
        price = brute_best(bids, v)
        if price is not None and (current is None or price < current):
            expected = (v - volume, price)
            break
    assert next_price_break(bids, volume) == expected


@settings(max_examples=200, deadline=None)
@given(bids_strategy(), st.one_of(st.none(), st.integers(1, 260)))
def test_price_curve_against_a_scan(bids, max_volume):
    upper = max_volume if max_volume is not None else max((b.capacity for b in bids), default=0)
    expected, last = [], None
    for v in range(1, upper + 1):
        price = brute_best(bids, v)
        if price is not None and price != last:
            expected.append((v, price))
            last = price
    assert price_curve(bids, max_volume) == expected
