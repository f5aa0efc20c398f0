"""Loan matching: which lending offers fund a loan request, how much each, at what rate. Pure.

The rule (shared/API.md "Lending"): a request is filled from the cheapest
offers first (``min_rate_bps`` ascending, then oldest: lower ``seq``, then lower
id), each offer putting at most ``max_part`` into any one request (counting what
it already put in), each part at its own offer's ``min_rate_bps`` (pay-as-bid).
Only offers with ``min_rate_bps <= request.max_rate_bps``, whose ``terms``
contain the request's ``term_months`` and whose ``grades`` contain its grade
(empty = all) take part, and never an offer of the request's own borrower. A
part is ``min(max_part - already, offer remaining, request need)``.

Speed (``match_book``): the offers are sorted once; for every (term, grade)
the requests ask for there is one list of the offers eligible for it, in that
order, linked so that an exhausted offer is unlinked the first time a request
walks past it. A request walks its list from the head and stops at the first
offer dearer than its ``max_rate_bps`` or when it is funded. Amounts are ``int``
minor units; no float.
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from operator import attrgetter


@dataclass(frozen=True, slots=True)
class BookOffer:
    """An open lending offer; ``terms``/``grades`` empty means any."""

    id: int
    lender_id: int
    remaining: int
    min_rate_bps: int
    max_part: int
    terms: frozenset[int]
    grades: frozenset[str]
    seq: int


@dataclass(frozen=True, slots=True)
class BookRequest:
    """An open loan request; ``need`` is what is still unfunded."""

    id: int
    borrower_id: int
    need: int
    term_months: int
    max_rate_bps: int
    grade: str
    seq: int


@dataclass(frozen=True, slots=True)
class Fill:
    """A loan part: ``amount`` from ``offer_id`` into ``request_id`` at ``rate_bps`` (the offer's rate)."""

    request_id: int
    offer_id: int
    lender_id: int
    amount: int
    rate_bps: int


price_time = attrgetter("min_rate_bps", "seq", "id")  # the order offers fill in: cheapest, oldest, lowest id


def _fill_maker():
    """A ``Fill`` constructor about twice as fast as the frozen ``__init__`` (which calls
    ``object.__setattr__`` per field): a bare instance whose slots are set directly.
    The same object as ``Fill(...)``; ``match_book`` makes hundreds of thousands of them.
    """
    fields = ("request_id", "offer_id", "lender_id", "amount", "rate_bps")
    set_request, set_offer, set_lender, set_amount, set_rate = (getattr(Fill, name).__set__ for name in fields)
    new = object.__new__

    def make(request_id: int, offer_id: int, lender_id: int, amount: int, rate_bps: int) -> Fill:
        fill = new(Fill)
        set_request(fill, request_id)
        set_offer(fill, offer_id)
        set_lender(fill, lender_id)
        set_amount(fill, amount)
        set_rate(fill, rate_bps)
        return fill

    return make


_new_fill = _fill_maker()


def eligible(offer: BookOffer, request: BookRequest) -> bool:
    """Whether the offer may fund the request at all (rate, term, grade, not the borrower's own).

    Capacity (``remaining``, ``max_part``) is not looked at here.
    """
    return (
        offer.lender_id != request.borrower_id
        and offer.min_rate_bps <= request.max_rate_bps
        and (not offer.terms or request.term_months in offer.terms)
        and (not offer.grades or request.grade in offer.grades)
    )


def _fill(request: BookRequest, offer: BookOffer, amount: int) -> Fill:
    return Fill(request.id, offer.id, offer.lender_id, amount, offer.min_rate_bps)


def match_request(
    request: BookRequest, offers: Iterable[BookOffer], already: Mapping[int, int] | None = None
) -> list[Fill]:
    """Fund ``request`` from ``offers``; ``already`` maps offer id -> amount it has in this request.

    Fills come in price-time order, at most one per offer; their sum is at most ``request.need``.
    """
    already = already or {}
    need, fills = request.need, []
    for offer in sorted((o for o in offers if eligible(o, request)), key=price_time):
        if need <= 0:
            break
        amount = min(offer.max_part - already.get(offer.id, 0), offer.remaining, need)
        if amount > 0:
            fills.append(_fill(request, offer, amount))
            need -= amount
    return fills


def match_offer(
    offer: BookOffer, requests: Iterable[BookRequest], already: Mapping[int, int] | None = None
) -> list[Fill]:
    """Let a new (or re-opened) offer fund open requests, oldest first (``seq``, then id).

    ``already`` maps request id -> amount this offer already has in that request.
    """
    already = already or {}
    left, fills = offer.remaining, []
    for request in sorted((r for r in requests if eligible(offer, r)), key=lambda r: (r.seq, r.id)):
        if left <= 0:
            break
        amount = min(offer.max_part - already.get(request.id, 0), left, request.need)
        if amount > 0:
            fills.append(_fill(request, offer, amount))
            left -= amount
    return fills


def _price_time_sorted(offers: list[BookOffer]) -> list[BookOffer]:
    """``sorted(offers, key=price_time)``, by one int key when rates, seqs and ids are >= 0 (faster)."""
    if not offers or min(min(o.min_rate_bps, o.seq, o.id) for o in offers) < 0:
        return sorted(offers, key=price_time)
    seq_span, id_span = max(o.seq for o in offers) + 1, max(o.id for o in offers) + 1
    return sorted(offers, key=lambda o: (o.min_rate_bps * seq_span + o.seq) * id_span + o.id)


class _Book:
    """The offers as arrays, with one linked price-time list per (term, grade) asked for."""

    def __init__(self, offers: Sequence[BookOffer]):
        live = _price_time_sorted([o for o in offers if o.remaining > 0 and o.max_part > 0])
        self.ids = [o.id for o in live]
        self.remaining = [o.remaining for o in live]
        self.rates = [o.min_rate_bps for o in live]
        self.lenders = [o.lender_id for o in live]
        self.max_parts = [o.max_part for o in live]
        self.patterns: defaultdict[tuple[frozenset[int], frozenset[str]], list[int]] = defaultdict(list)
        for i, o in enumerate(live):
            self.patterns[o.terms, o.grades].append(i)
        self.lines: dict[tuple[int, str], tuple[list[int], list[int]]] = {}

    def line(self, term: int, grade: str) -> tuple[list[int], list[int]]:
        """``(positions, links)`` for requests of this term and grade, built on first use.

        ``positions[1..m]`` index the arrays in price-time order (the eligible filter
        patterns' runs merged); ``links[j]`` is the slot after slot j (slot 0 is the
        head, m + 1 the end).
        """
        key = (term, grade)
        if key not in self.lines:
            merged: list[int] = []
            for (terms, grades), members in self.patterns.items():
                if (not terms or term in terms) and (not grades or grade in grades):
                    merged.extend(members)
            merged.sort()  # sorted runs: Timsort merges them
            positions = [-1]
            positions.extend(merged)
            self.lines[key] = positions, list(range(1, len(positions) + 1))
        return self.lines[key]

    def fund(self, request: BookRequest) -> list[Fill]:
        """Walk the request's line from the head: skip the borrower's own offers, unlink exhausted ones."""
        positions, links = self.line(request.term_months, request.grade)
        remaining, rates, lenders, max_parts = self.remaining, self.rates, self.lenders, self.max_parts
        end, need, max_rate, borrower = len(positions), request.need, request.max_rate_bps, request.borrower_id
        ids, request_id, new_fill, fills = self.ids, request.id, _new_fill, []
        previous, slot = 0, links[0]
        while need and slot < end:
            i = positions[slot]
            if rates[i] > max_rate:
                break
            left = remaining[i]
            if left and lenders[i] != borrower:
                amount = max_parts[i]
                if amount > left:
                    amount = left
                if amount > need:
                    amount = need
                fills.append(new_fill(request_id, ids[i], lenders[i], amount, rates[i]))
                need -= amount
                remaining[i] = left = left - amount
            if left:
                previous, slot = slot, links[slot]
            else:  # exhausted (now or by an earlier request): unlink for good
                slot = links[previous] = links[slot]
        return fills


@contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector (restoring its state after).

    ``match_book`` allocates up to a million small acyclic objects; each
    automatic collection would walk the whole book again and find nothing,
    which costs as much as the matching itself. Reference counting still frees
    everything as usual.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def match_book(requests: Sequence[BookRequest], offers: Sequence[BookOffer]) -> list[Fill]:
    """Requests arrive one by one in ``seq`` order (then id), each matched against the book as it is then.

    Equals calling ``match_request`` for each in turn with the offers' ``remaining``
    reduced by the earlier fills.
    """
    with _gc_paused():
        book = _Book(offers)
        fills: list[Fill] = []
        for request in sorted(requests, key=lambda r: (r.seq, r.id)):
            if request.need > 0:
                fills.extend(book.fund(request))
        return fills
