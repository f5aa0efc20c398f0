"""Buying-pool clearing: which supplier bid wins a pool, at what price, for whom. Pure.

The rule (shared/API.md "Buying pools", worked example in shared/DESIGN.md):
order the active pledges by ``max_unit_price`` descending, then oldest first.
For each bid take the longest prefix of that order whose total quantity V has
``V >= pool.min_volume``, ``V >= first tier min_volume``, ``V <= capacity`` and
``price(V) <= max_unit_price`` of the prefix's last pledge. The award goes to
the lowest ``price(V)``, then the larger V, then the earlier bid; the winner's
prefix is ``filled``, every other pledge ``released``.

Speed: the prefix volumes ``V_k`` rise strictly with k and the last pledge's
max price falls with k, so inside one tier's volume segment the valid k form
a contiguous range found with two bisections: a bid costs O(tiers * log n)
after one sort of the pledges. Amounts are ``int`` minor units; no float.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from itertools import accumulate

from marketplace.texts import N_, Money, Msg, N_plural

FILLED = "filled"
RELEASED = "released"


@dataclass(frozen=True)
class Tier:
    """All-units price break: from ``min_volume`` units on, every unit costs ``unit_price``."""

    min_volume: int
    unit_price: int


@dataclass(frozen=True)
class Bid:
    """``tiers``: min_volume strictly increasing, unit_price non-increasing (validated elsewhere)."""

    id: int
    tiers: tuple[Tier, ...]
    capacity: int
    placed_at: datetime


@dataclass(frozen=True)
class Pledge:
    id: int
    quantity: int
    max_unit_price: int
    placed_at: datetime


@dataclass(frozen=True)
class BidOutcome:
    bid_id: int
    cleared: bool
    volume: int | None
    unit_price: int | None
    members_served: int
    total: int | None
    winner: bool
    reason: str | None
    explanation: str
    # The explanation as a translatable text (``str(message) == explanation``); for a bid that could not
    # clear, ``message.params["why"]`` is the sentence after "Could not clear: ".
    message: Msg | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ClearingResult:
    awarded: bool
    winning_bid_id: int | None
    unit_price: int | None
    volume: int | None
    total: int | None
    outcomes: tuple[BidOutcome, ...]
    fates: dict[int, str]
    clearing_order: tuple[int, ...]


def clearing_order(pledges: Sequence[Pledge]) -> list[Pledge]:
    """Highest ``max_unit_price`` first, then oldest ``(placed_at, id)``."""
    return sorted(pledges, key=lambda p: (-p.max_unit_price, p.placed_at, p.id))


def price_at(tiers: Sequence[Tier], volume: int) -> int | None:
    """Unit price of the highest tier with ``min_volume <= volume``; None below the first tier."""
    index = bisect_right(tiers, volume, key=lambda t: t.min_volume)
    return tiers[index - 1].unit_price if index else None


class _PledgeLine:
    """The pledges in clearing order, as the arrays the bisections need."""

    def __init__(self, pledges: Sequence[Pledge]):
        ordered = clearing_order(pledges)
        if any(p.quantity < 1 for p in ordered):
            raise ValueError("pledge quantities must be positive")
        self.ids = tuple(p.id for p in ordered)
        # volumes[j] is V of the prefix of the first j + 1 pledges (strictly increasing);
        # neg_prices[j] is minus the max price of pledge j (non-decreasing, so bisectable).
        self.volumes = list(accumulate(p.quantity for p in ordered))
        self.neg_prices = [-p.max_unit_price for p in ordered]
        self.total = self.volumes[-1] if self.volumes else 0

    def longest_valid_prefix(self, bid: Bid, lower: int) -> int:
        """Number of pledges in the bid's longest valid prefix, 0 if none."""
        tiers = bid.tiers
        for i in range(len(tiers) - 1, -1, -1):
            seg_lo = max(tiers[i].min_volume, lower)
            seg_hi = bid.capacity if i == len(tiers) - 1 else min(tiers[i + 1].min_volume - 1, bid.capacity)
            if seg_lo > seg_hi:
                continue
            first = bisect_left(self.volumes, seg_lo)
            last = bisect_right(self.volumes, seg_hi) - 1
            affordable = bisect_right(self.neg_prices, -tiers[i].unit_price) - 1
            best = min(last, affordable)
            if best >= first:
                return best + 1
        return 0


def _cleared(bid: Bid, volume: int, unit_price: int, served: int) -> BidOutcome:
    total = volume * unit_price
    message = Msg.plural_of(
        N_plural(
            "Cleared %(volume)s units at %(price)s for %(num)d pledge, total %(total)s.",
            "Cleared %(volume)s units at %(price)s for %(num)d pledges, total %(total)s.",
        ),
        served,
        volume=volume,
        price=Money(unit_price),
        total=Money(total),
    )
    return BidOutcome(
        bid_id=bid.id,
        cleared=True,
        volume=volume,
        unit_price=unit_price,
        members_served=served,
        total=total,
        winner=False,
        reason=None,
        explanation=str(message),
        message=message,
    )


def _not_cleared(bid: Bid, reason: str, why: Msg) -> BidOutcome:
    message = Msg(N_("Could not clear: %(why)s."), why=why)
    return BidOutcome(
        bid_id=bid.id,
        cleared=False,
        volume=None,
        unit_price=None,
        members_served=0,
        total=None,
        winner=False,
        reason=reason,
        explanation=str(message),
        message=message,
    )


def _failure(bid: Bid, min_volume: int, line: _PledgeLine) -> BidOutcome:
    """The first condition of the rule that rules the bid out, as a slug and a sentence."""
    first_tier = bid.tiers[0].min_volume
    lower = max(min_volume, first_tier)
    if not line.volumes:
        return _not_cleared(bid, "no_pledges", Msg(N_("no pledges")))
    if line.total < min_volume:
        return _not_cleared(
            bid,
            "below_min_volume",
            Msg(
                N_("only %(total)s units pledged, below the pool minimum of %(minimum)s"),
                total=line.total,
                minimum=min_volume,
            ),
        )
    if line.total < first_tier:
        return _not_cleared(
            bid,
            "below_first_tier",
            Msg(
                N_("only %(total)s units pledged, below the bid's first tier of %(first_tier)s"),
                total=line.total,
                first_tier=first_tier,
            ),
        )
    if lower > bid.capacity:
        return _not_cleared(
            bid,
            "over_capacity",
            Msg(N_("capacity %(capacity)s is below the %(needed)s units needed"), capacity=bid.capacity, needed=lower),
        )
    k = bisect_left(line.volumes, lower)
    smallest = line.volumes[k]
    if smallest > bid.capacity:
        return _not_cleared(
            bid,
            "over_capacity",
            Msg(
                N_(
                    "the smallest volume of whole pledges reaching %(needed)s units is %(smallest)s, "
                    "above capacity %(capacity)s"
                ),
                needed=lower,
                smallest=smallest,
                capacity=bid.capacity,
            ),
        )
    price, accepted = price_at(bid.tiers, smallest), -line.neg_prices[k]
    return _not_cleared(
        bid,
        "price_too_high",
        Msg(
            N_(
                "at every volume it can serve its price is above what the last pledge in line accepts "
                "(at %(volume)s units: %(price)s against %(accepted)s)"
            ),
            volume=smallest,
            price=Money(price),
            accepted=Money(accepted),
        ),
    )


def _outcome(bid: Bid, min_volume: int, line: _PledgeLine) -> BidOutcome:
    if not bid.tiers:
        raise ValueError(f"bid {bid.id} has no tiers")
    lower = max(min_volume, bid.tiers[0].min_volume)
    served = line.longest_valid_prefix(bid, lower)
    if not served:
        return _failure(bid, min_volume, line)
    volume = line.volumes[served - 1]
    return _cleared(bid, volume, price_at(bid.tiers, volume), served)


def clear(min_volume: int, pledges: Sequence[Pledge], bids: Sequence[Bid]) -> ClearingResult:
    """Clear a pool: one outcome per bid (in the given order), the award, each pledge's fate."""
    line = _PledgeLine(pledges)
    outcomes = [_outcome(bid, min_volume, line) for bid in bids]
    candidates = [
        (o.unit_price, -o.volume, b.placed_at, b.id, i)
        for i, (b, o) in enumerate(zip(bids, outcomes, strict=True))
        if o.cleared
    ]
    fates = dict.fromkeys(line.ids, RELEASED)
    if not candidates:
        return ClearingResult(False, None, None, None, None, tuple(outcomes), fates, line.ids)
    index = min(candidates)[-1]
    won = outcomes[index] = replace(outcomes[index], winner=True)
    for pledge_id in line.ids[: won.members_served]:
        fates[pledge_id] = FILLED
    return ClearingResult(
        awarded=True,
        winning_bid_id=won.bid_id,
        unit_price=won.unit_price,
        volume=won.volume,
        total=won.total,
        outcomes=tuple(outcomes),
        fates=fates,
        clearing_order=line.ids,
    )


def best_unit_price(bids: Sequence[Bid], volume: int) -> int | None:
    """Lowest price any bid offers at ``volume`` (first tier <= volume <= capacity); None if none."""
    if volume <= 0:
        return None
    prices = [price_at(b.tiers, volume) for b in bids if b.tiers and b.tiers[0].min_volume <= volume <= b.capacity]
    return min(prices) if prices else None


def _tier_starts(bids: Sequence[Bid]) -> list[int]:
    return sorted({t.min_volume for b in bids for t in b.tiers})


def next_price_break(bids: Sequence[Bid], volume: int) -> tuple[int, int] | None:
    """``(units still needed, unit price there)`` at the next volume where the best price drops.

    The best price can only drop where some tier starts (a bid leaving past its
    capacity only raises it), so only tier starts above ``volume`` are tried.
    """
    current = best_unit_price(bids, volume)
    for start in _tier_starts(bids):
        if start <= volume:
            continue
        price = best_unit_price(bids, start)
        if price is not None and (current is None or price < current):
            return start - volume, price
    return None


def price_curve(bids: Sequence[Bid], max_volume: int | None = None) -> list[tuple[int, int]]:
    """Step points ``(volume, best unit price)`` wherever the best price changes.

    From the lowest first tier up to the largest capacity (or ``max_volume``).
    Each step holds until the next point; where no bid serves a volume (a gap
    between one bid's capacity and another's first tier) no point is emitted,
    so a chart should end its last step at the largest capacity.
    """
    upper = max_volume if max_volume is not None else max((b.capacity for b in bids), default=0)
    events = sorted(set(_tier_starts(bids)) | {b.capacity + 1 for b in bids})
    points: list[tuple[int, int]] = []
    for volume in events:
        if volume > upper:
            break
        price = best_unit_price(bids, volume)
        if price is not None and (not points or points[-1][1] != price):
            points.append((volume, price))
    return points
