"""matching.py: hand-made books, and properties against a cent-by-cent brute force."""

from __future__ import annotations

import ast
import gc
import random
from pathlib import Path

import pytest

from marketplace.lending import matching
from marketplace.lending.matching import (
    BookOffer,
    BookRequest,
    Fill,
    eligible,
    match_book,
    match_offer,
    match_request,
)


@pytest.fixture(autouse=True)
def _clean_database():
    """Overrides the suite's autouse database fixture: the engine needs no app and no database."""
    yield


def offer(oid, remaining, rate, max_part=10**9, seq=None, lender=None, terms=(), grades=()):
    return BookOffer(
        id=oid,
        lender_id=lender if lender is not None else 100 + oid,
        remaining=remaining,
        min_rate_bps=rate,
        max_part=max_part,
        terms=frozenset(terms),
        grades=frozenset(grades),
        seq=seq if seq is not None else oid,
    )


def request(rid, need, max_rate=10000, term=12, grade="B", borrower=1, seq=None):
    return BookRequest(rid, borrower, need, term, max_rate, grade, seq if seq is not None else rid)


def summary(fills):
    return [(f.request_id, f.offer_id, f.amount, f.rate_bps) for f in fills]


# --- hand-made cases ----------------------------------------------------------------------------


def test_cheapest_first_then_oldest_each_at_its_own_rate():
    offers = [
        offer(1, 5000, 900, seq=5),
        offer(2, 5000, 700, seq=9),
        offer(3, 5000, 700, seq=2),
        offer(4, 5000, 800, seq=1),
    ]
    fills = match_request(request(10, 12000), offers)
    assert summary(fills) == [(10, 3, 5000, 700), (10, 2, 5000, 700), (10, 4, 2000, 800)]
    assert fills[0] == Fill(request_id=10, offer_id=3, lender_id=103, amount=5000, rate_bps=700)


def test_same_rate_and_seq_falls_back_to_id():
    offers = [offer(7, 100, 500, seq=1), offer(4, 100, 500, seq=1)]
    assert summary(match_request(request(1, 150), offers)) == [(1, 4, 100, 500), (1, 7, 50, 500)]


def test_max_part_caps_each_offer_counting_what_it_already_has():
    offers = [offer(1, 100000, 500, max_part=3000), offer(2, 100000, 600, max_part=4000)]
    assert summary(match_request(request(1, 10000), offers)) == [(1, 1, 3000, 500), (1, 2, 4000, 600)]
    already = {1: 2500, 2: 4000}
    assert summary(match_request(request(1, 10000), offers, already)) == [(1, 1, 500, 500)]
    assert match_request(request(1, 10000), offers, {1: 3000, 2: 5000}) == []


def test_rate_limit_is_inclusive():
    offers = [offer(1, 1000, 1000), offer(2, 1000, 1001)]
    assert summary(match_request(request(1, 5000, max_rate=1000), offers)) == [(1, 1, 1000, 1000)]


def test_terms_and_grades_filters():
    offers = [
        offer(1, 1000, 100, terms=[6, 24]),
        offer(2, 1000, 200, grades=["A"]),
        offer(3, 1000, 300, terms=[12], grades=["B", "C"]),
        offer(4, 1000, 400),
    ]
    assert [f.offer_id for f in match_request(request(1, 10000, term=12, grade="B"), offers)] == [3, 4]
    assert [f.offer_id for f in match_request(request(1, 10000, term=24, grade="A"), offers)] == [1, 2, 4]
    assert [f.offer_id for f in match_request(request(1, 10000, term=6, grade="C"), offers)] == [1, 4]


def test_no_lender_funds_its_own_request():
    offers = [offer(1, 1000, 100, lender=1), offer(2, 1000, 200, lender=2)]
    assert summary(match_request(request(1, 5000, borrower=1), offers)) == [(1, 2, 1000, 200)]
    assert not eligible(offers[0], request(1, 5000, borrower=1))
    assert eligible(offers[0], request(1, 5000, borrower=3))


def test_stops_when_funded_and_skips_empty_offers():
    offers = [offer(1, 0, 100), offer(2, 700, 200), offer(3, 1000, 300), offer(4, 1000, 400)]
    assert summary(match_request(request(1, 1200), offers)) == [(1, 2, 700, 200), (1, 3, 500, 300)]
    assert match_request(request(1, 0), offers) == []
    assert match_request(request(1, 100), []) == []


def test_eligible_ignores_capacity():
    assert eligible(offer(1, 0, 100, max_part=0), request(1, 100))


def test_match_offer_funds_the_oldest_requests_first():
    requests = [
        request(1, 5000, seq=3),
        request(2, 8000, seq=1),
        request(3, 2000, seq=2, max_rate=400),  # too cheap for this offer
        request(4, 9000, seq=4, term=6),
        request(5, 9000, seq=5, borrower=201),  # the lender's own request
        request(6, 9000, seq=6),
    ]
    new = offer(1, 12000, 500, max_part=6000, lender=201, terms=[12])
    assert summary(match_offer(new, requests)) == [(2, 1, 6000, 500), (1, 1, 5000, 500), (6, 1, 1000, 500)]
    assert summary(match_offer(new, requests, {2: 6000, 1: 1000})) == [(1, 1, 5000, 500), (6, 1, 6000, 500)]
    assert match_offer(offer(2, 0, 500), requests) == []


def test_match_book_updates_the_book_between_requests():
    offers = [offer(1, 5000, 500, max_part=3000), offer(2, 5000, 600)]
    requests = [request(2, 4000, seq=2), request(1, 4000, seq=1), request(3, 4000, seq=3)]
    assert summary(match_book(requests, offers)) == [
        (1, 1, 3000, 500),
        (1, 2, 1000, 600),
        (2, 1, 2000, 500),
        (2, 2, 2000, 600),
        (3, 2, 2000, 600),
    ]


def test_match_book_leaves_the_garbage_collector_as_it_found_it():
    match_book([request(1, 100)], [offer(1, 100, 100)])
    assert gc.isenabled()
    gc.disable()
    try:
        match_book([request(1, 100)], [offer(1, 100, 100)])
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_match_book_sorts_offers_with_negative_keys_too():
    offers = [offer(-1, 100, 500, seq=-5), offer(2, 100, 500, seq=-6), offer(3, 100, 400, seq=7)]
    assert [f.offer_id for f in match_book([request(1, 300)], offers)] == [3, 2, -1]


# --- properties against a brute force -----------------------------------------------------------

TERMS = (3, 6, 12)
GRADES = ("A", "B", "C")


def brute_force(request, offers, already=None):
    """Cent by cent: each cent goes to the cheapest-then-oldest eligible offer with room left."""
    already = dict(already or {})
    remaining = {o.id: o.remaining for o in offers}
    taken: dict[int, int] = {}
    order: list[int] = []
    by_id = {o.id: o for o in offers}
    for _ in range(max(request.need, 0)):
        room = [
            o
            for o in offers
            if o.lender_id != request.borrower_id
            and o.min_rate_bps <= request.max_rate_bps
            and (not o.terms or request.term_months in o.terms)
            and (not o.grades or request.grade in o.grades)
            and remaining[o.id] > 0
            and already.get(o.id, 0) + taken.get(o.id, 0) < o.max_part
        ]
        if not room:
            break
        best = min(room, key=lambda o: (o.min_rate_bps, o.seq, o.id))
        if best.id not in taken:
            order.append(best.id)
        taken[best.id] = taken.get(best.id, 0) + 1
        remaining[best.id] -= 1
    return [Fill(request.id, oid, by_id[oid].lender_id, taken[oid], by_id[oid].min_rate_bps) for oid in order]


def random_offers(rng, count):
    return [
        BookOffer(
            id=i,
            lender_id=rng.randint(1, 6),
            remaining=rng.choice([0, rng.randint(1, 40), rng.randint(1, 120)]),
            min_rate_bps=rng.randint(1, 5) * 100,
            max_part=rng.randint(0, 50),
            terms=frozenset(rng.sample(TERMS, rng.randint(1, 2))) if rng.randrange(10) < 3 else frozenset(),
            grades=frozenset(rng.sample(GRADES, rng.randint(1, 2))) if rng.randrange(10) < 3 else frozenset(),
            seq=rng.randint(1, 4),  # few distinct seqs: ties fall back to the id
        )
        for i in rng.sample(range(1, 100), count)
    ]


def random_request(rng, rid):
    return BookRequest(
        id=rid,
        borrower_id=rng.randint(1, 6),
        need=rng.randint(0, 200),
        term_months=rng.choice(TERMS),
        max_rate_bps=rng.randint(0, 6) * 100,
        grade=rng.choice(GRADES),
        seq=rng.randint(1, 5),
    )


@pytest.mark.parametrize("seed", range(200))
def test_match_request_equals_brute_force(seed):
    rng = random.Random(seed)
    offers = random_offers(rng, rng.randint(0, 10))
    req = random_request(rng, 1)
    already = {o.id: rng.randint(0, 30) for o in offers if rng.randrange(10) < 3}
    fills = match_request(req, offers, already)
    assert fills == brute_force(req, offers, already)
    assert match_request(req, list(reversed(offers)), already) == fills  # the order given does not matter
    assert sum(f.amount for f in fills) <= req.need
    by_id = {o.id: o for o in offers}
    for f in fills:
        o = by_id[f.offer_id]
        assert eligible(o, req) and f.lender_id == o.lender_id != req.borrower_id
        assert 0 < f.amount <= min(o.remaining, o.max_part - already.get(o.id, 0))
        assert f.rate_bps == o.min_rate_bps <= req.max_rate_bps


def sequential(requests, offers):
    """``match_request`` again and again, the offers' remaining reduced after each request."""
    book = {o.id: o for o in offers}
    fills = []
    for req in sorted(requests, key=lambda r: (r.seq, r.id)):
        got = match_request(req, book.values())
        for f in got:
            o = book[f.offer_id]
            book[o.id] = BookOffer(
                o.id, o.lender_id, o.remaining - f.amount, o.min_rate_bps, o.max_part, o.terms, o.grades, o.seq
            )
        fills.extend(got)
    return fills


@pytest.mark.parametrize("seed", range(200))
def test_match_book_equals_sequential_match_request(seed):
    rng = random.Random(1000 + seed)
    offers = random_offers(rng, rng.randint(0, 14))
    requests = [random_request(rng, rid) for rid in rng.sample(range(1, 50), rng.randint(0, 8))]
    fills = match_book(requests, offers)
    assert fills == sequential(requests, offers)
    spent: dict[int, int] = {}
    for f in fills:
        spent[f.offer_id] = spent.get(f.offer_id, 0) + f.amount
    assert all(spent[o.id] <= o.remaining for o in offers if o.id in spent)


@pytest.mark.parametrize("seed", range(20))
def test_match_book_equals_sequential_match_request_on_bigger_books(seed):
    rng = random.Random(3000 + seed)
    offers = [o for _ in range(4) for o in random_offers(rng, 60)]
    offers = [BookOffer(i, *vars_of(o)[1:]) for i, o in enumerate(offers, start=1)]
    requests = [random_request(rng, rid) for rid in range(1, 61)]
    assert match_book(requests, offers) == sequential(requests, offers)


def vars_of(o: BookOffer) -> tuple:
    return (o.id, o.lender_id, o.remaining, o.min_rate_bps, o.max_part, o.terms, o.grades, o.seq)


@pytest.mark.parametrize("seed", range(100))
def test_match_offer_agrees_with_one_offer_brute_force(seed):
    rng = random.Random(5000 + seed)
    new = random_offers(rng, 1)[0]
    requests = [random_request(rng, rid) for rid in rng.sample(range(1, 50), rng.randint(0, 8))]
    already = {r.id: rng.randint(0, 30) for r in requests if rng.randrange(10) < 3}
    fills = match_offer(new, requests, already)
    # the same offer seen from each request in turn, oldest first, with what is left of it
    left, expected = new.remaining, []
    for req in sorted(requests, key=lambda r: (r.seq, r.id)):
        alone = BookOffer(new.id, new.lender_id, left, new.min_rate_bps, new.max_part, new.terms, new.grades, new.seq)
        got = brute_force(req, [alone], {new.id: already.get(req.id, 0)})
        expected.extend(got)
        left -= sum(f.amount for f in got)
    assert fills == expected


# --- purity -------------------------------------------------------------------------------------


def test_engine_imports_only_stdlib_and_uses_no_float():
    tree = ast.parse(Path(matching.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
    assert imported <= {"__future__", "collections", "collections.abc", "contextlib", "dataclasses", "gc", "operator"}
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, float)]
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == "float"]
