"""Benchmark: clearing 100,000 pledges against 50 five-tier bids (target <= 1 s, pure Python).

Run by ``make bench``; prints the figures and asserts only that the result is sound, never the time.
Needs no app and no database.
"""

from __future__ import annotations

import random
import time
import tracemalloc
from datetime import UTC, datetime, timedelta

import pytest

from marketplace.pools.engine import Bid, Pledge, Tier, clear

PLEDGES = 100_000
BIDS = 50
TIERS = 5
POOL_MIN_VOLUME = 200_000
SEED = 20270101
T0 = datetime(2027, 1, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _clean_database():
    """Overrides the suite's autouse database fixture: the engine needs no app and no database."""
    yield


def build_pool(rng: random.Random) -> tuple[list[Pledge], list[Bid]]:
    pledges = [
        Pledge(i, rng.randint(1, 20), rng.randint(500, 1500), T0 + timedelta(seconds=rng.randint(0, 30 * 86400)))
        for i in range(1, PLEDGES + 1)
    ]
    bids = []
    for i in range(1, BIDS + 1):
        volume, price, tiers = rng.randint(50_000, 300_000), rng.randint(1000, 1400), []
        for _ in range(TIERS):
            tiers.append(Tier(volume, price))
            volume += rng.randint(50_000, 200_000)
            price -= rng.randint(0, 100)
        capacity = rng.randint(300_000, 1_200_000)
        bids.append(Bid(i, tuple(tiers), capacity, T0 + timedelta(minutes=rng.randint(0, 30 * 1440))))
    return pledges, bids


def test_clearing_engine_bench():
    pledges, bids = build_pool(random.Random(SEED))

    timings = []
    for _ in range(3):
        started = time.perf_counter()
        result = clear(POOL_MIN_VOLUME, pledges, bids)
        timings.append(time.perf_counter() - started)

    tracemalloc.start()
    try:
        clear(POOL_MIN_VOLUME, pledges, bids)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    print(
        f"\nengine: {PLEDGES} pledges x {BIDS} bids: {min(timings):.3f} s, peak {peak / 2**20:.1f} MB (target <= 1 s)"
    )
    cleared = sum(o.cleared for o in result.outcomes)
    print(
        f"engine: {cleared} of {BIDS} bids could clear; winner bid {result.winning_bid_id} "
        f"at {result.unit_price} for {result.volume} units"
    )

    assert len(result.fates) == PLEDGES and len(result.outcomes) == BIDS
    assert result.awarded
    filled = sum(q.quantity for q in pledges if result.fates[q.id] == "filled")
    assert filled == result.volume
