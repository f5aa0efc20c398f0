"""Benchmarks of the pure lending engines (targets: match_book <= 2 s, loan_schedule <= 1 s).

(a) ``match_book``: 10,000 loan requests against 100,000 lending offers.
(b) ``loan_schedule``: one loan of 1,000 parts over 60 months.

Run by ``make bench``; prints the figures and asserts only that the results are
sound, never the time. Needs no app and no database.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict

import pytest

from marketplace.lending.amortization import loan_schedule
from marketplace.lending.matching import BookOffer, BookRequest, eligible, match_book

OFFERS = 100_000
REQUESTS = 10_000
PARTS = 1_000
MONTHS = 60
TERMS = (3, 6, 12, 24, 36, 48, 60)
GRADES = ("A", "B", "C", "D", "E")
MEMBERS = 20_000
SEED = 20270101


@pytest.fixture(autouse=True)
def _clean_database():
    """Overrides the suite's autouse database fixture: the engines need no app and no database."""
    yield


def build_book(rng: random.Random) -> tuple[list[BookRequest], list[BookOffer]]:
    offers = []
    for i in range(1, OFFERS + 1):
        terms = frozenset(rng.sample(TERMS, rng.randint(1, 4))) if rng.randrange(10) < 3 else frozenset()
        grades = frozenset(rng.sample(GRADES, rng.randint(1, 3))) if rng.randrange(10) < 2 else frozenset()
        offers.append(
            BookOffer(
                id=i,
                lender_id=rng.randint(1, MEMBERS),
                remaining=rng.randint(10_000, 1_000_000),
                min_rate_bps=rng.randint(300, 2500),
                max_part=rng.randint(1_000, 50_000),
                terms=terms,
                grades=grades,
                seq=rng.randint(1, 10**9),
            )
        )
    requests = [
        BookRequest(
            id=i,
            borrower_id=rng.randint(1, MEMBERS),
            need=rng.randint(10_000, 2_000_000),
            term_months=rng.choice(TERMS),
            max_rate_bps=rng.randint(500, 3000),
            grade=rng.choice(GRADES),
            seq=i,
        )
        for i in range(1, REQUESTS + 1)
    ]
    return requests, offers


def test_match_book_bench():
    requests, offers = build_book(random.Random(SEED))

    timings, cpu = [], []
    for _ in range(3):
        started, started_cpu = time.perf_counter(), time.process_time()
        fills = match_book(requests, offers)
        timings.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)

    by_request, by_offer, pairs = defaultdict(int), defaultdict(int), set()
    offer_of = {o.id: o for o in offers}
    request_of = {r.id: r for r in requests}
    for f in fills:
        offer, request = offer_of[f.offer_id], request_of[f.request_id]
        assert f.amount > 0 and f.amount <= offer.max_part and f.rate_bps == offer.min_rate_bps
        assert eligible(offer, request) and f.lender_id == offer.lender_id
        assert (f.request_id, f.offer_id) not in pairs
        pairs.add((f.request_id, f.offer_id))
        by_request[f.request_id] += f.amount
        by_offer[f.offer_id] += f.amount
    assert all(total <= request_of[rid].need for rid, total in by_request.items())
    assert all(total <= offer_of[oid].remaining for oid, total in by_offer.items())

    funded = sum(by_request[r.id] == r.need for r in requests)
    print(
        f"\nmatch_book: {REQUESTS} requests x {OFFERS} offers: {min(timings):.3f} s, "
        f"CPU {min(cpu):.3f} s (target <= 2 s); "
        f"{len(fills)} fills, {funded} requests fully funded, {len(by_request)} funded at least in part"
    )
    assert funded > 0


def test_loan_schedule_bench():
    rng = random.Random(SEED)
    parts = [(rng.randint(1_000, 50_000), rng.randint(300, 2500)) for _ in range(PARTS)]

    timings = []
    for _ in range(3):
        started = time.perf_counter()
        schedules, rows = loan_schedule(parts, MONTHS)
        timings.append(time.perf_counter() - started)

    print(f"\nloan_schedule: {PARTS} parts x {MONTHS} months: {min(timings):.3f} s (target <= 1 s)")
    assert len(schedules) == PARTS and len(rows) == MONTHS
    assert sum(r.principal for r in rows) == sum(p for p, _ in parts)
    assert rows[-1].balance == 0 and all(len(s) == MONTHS for s in schedules)
