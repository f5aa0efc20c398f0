"""Read models for the busiest pool reads: ``GET /api/v1/pools/{id}`` and the pool page.

A pool as those two show it is the pool row, its organizer's name, its
pledged volume and pledge count, and the bids that price it with their tiers.
Loaded through the ORM that took six to eleven statements per request (the
pool, its organizer, the pledge totals, the bids, their suppliers, their
tiers, some of them three times over); here it is one plain select, the
``UNION ALL`` of

- the pool joined to its organizer and to its pledge totals (and, for the
  page, the number of comments on it);
- the pricing bids (``active``, ``won``, ``lost``) joined to their tiers.

The rows become small frozen values (:class:`PoolRow`, :func:`engine.Bid`),
never ORM objects: nothing here can be changed and flushed by accident, and
nothing is lazily loaded behind a template's back. Everything here is public
pool data (what anyone may see on the pool page); whatever is private to a
member (their pledges, their bid, their wallet) stays with the services.

The rows are plain tuples (on PostgreSQL straight from the driver, see
marketplace/reads.py) and the exact input of everything presented from
them: the snapshot, the API's body, the page's summary are each made once
per distinct rows and kept in a small per-process memo (marketplace/memo.py)
keyed by those rows, so any change to the pool is a new input, never a stale
answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import BigInteger, bindparam, cast, func, literal, literal_column, null, select, type_coerce, union_all

from ..accounts.models import Member
from ..conversation.models import Comment
from ..errors import NotFound
from ..extensions import db
from ..memo import Memo
from ..reads import fetch, read_connection
from . import engine
from .models import COUNTED_PLEDGES, TOTAL_SHARDS, Bid, BidTier, Pledge, Pool, PoolPledgeTotal

PRICING_BIDS = ("active", "won", "lost")  # replaced and void bids never price a pool


@dataclass(frozen=True, slots=True)
class Organizer:
    id: int
    display_name: str


@dataclass(frozen=True, slots=True)
class PoolRow:
    """The pool's columns (the names of :class:`models.Pool`), read-only, with its pledge totals."""

    id: int
    title: str
    description: str
    unit: str
    currency: str
    min_volume: int
    deadline: datetime
    status: str
    organizer_id: int
    created_at: datetime
    closed_at: datetime | None
    delivered_at: datetime | None
    cancelled_at: datetime | None
    winning_bid_id: int | None
    award_supplier_id: int | None
    award_unit_price: int | None
    award_volume: int | None
    award_total: int | None
    award_fee: int | None
    organizer: Organizer
    volume: int  # pledged units (withdrawn pledges excluded)
    pledge_count: int

    award = property(Pool.award.fget)  # the same dict as Pool.award (None before an award)


@dataclass(frozen=True, slots=True)
class PoolSnapshot:
    pool: PoolRow
    bids: tuple[engine.Bid, ...]  # the bids that price the pool, tiers by rising min_volume
    comment_count: int | None = None  # only when asked for (the page)


# Core tables, not the mapped classes: a select of mapped attributes goes through the ORM's
# execution and loading machinery even for plain rows, which costs more than the query.
_pools, _members, _pledges = Pool.__table__, Member.__table__, Pledge.__table__
_bids, _tiers, _comments = Bid.__table__, BidTier.__table__, Comment.__table__
_totals = PoolPledgeTotal.__table__
_POOL_FIELDS = (
    "id",
    "title",
    "description",
    "unit",
    "currency",
    "min_volume",
    "deadline",
    "status",
    "organizer_id",
    "created_at",
    "closed_at",
    "delivered_at",
    "cancelled_at",
    "winning_bid_id",
    "award_supplier_id",
    "award_unit_price",
    "award_volume",
    "award_total",
    "award_fee",
)


def _one_of(column, values):
    """``column IN ('a', 'b')`` with one bound parameter per value (a fixed statement, cached as such)."""
    return column.in_([literal(value) for value in values])


def _typed_null(column):
    return type_coerce(null(), column.type)


def totals_select():
    """Pool id, pledged volume and pledge count per pool, from the totals the database keeps
    (models.PoolPledgeTotal): a fixed number of rows per pool, however many pledges it has."""
    return select(
        _totals.c.pool_id,
        cast(func.sum(_totals.c.volume), BigInteger).label("volume"),
        cast(func.sum(_totals.c.pledges), BigInteger).label("pledge_count"),
    ).group_by(_totals.c.pool_id)


def total_problems() -> list[str]:
    """Every pool whose kept totals differ from its pledges (``flask ledger-check``), as sentences."""
    kept, shards = {}, {}
    for pool_id, volume, count, rows in db.session.execute(totals_select().add_columns(func.count())):
        kept[pool_id], shards[pool_id] = (int(volume), int(count)), rows
    summed = db.session.execute(
        select(_pledges.c.pool_id, func.sum(_pledges.c.quantity), func.count(_pledges.c.id))
        .where(_pledges.c.status.in_(COUNTED_PLEDGES))
        .group_by(_pledges.c.pool_id)
    )
    pledged = {row[0]: (int(row[1]), int(row[2])) for row in summed}
    problems = []
    for pool_id in db.session.execute(select(_pools.c.id).order_by(_pools.c.id)).scalars():
        have, want = kept.get(pool_id, (0, 0)), pledged.get(pool_id, (0, 0))
        if have != want:
            problems.append(
                f"pool {pool_id}: kept totals {have[0]} units in {have[1]} pledges "
                f"!= its pledges' {want[0]} units in {want[1]} pledges"
            )
        if shards.get(pool_id, 0) != TOTAL_SHARDS:
            problems.append(f"pool {pool_id}: {shards.get(pool_id, 0)} totals rows, not {TOTAL_SHARDS}")
    return problems


def snapshot_statement(with_comment_count: bool = False, caller=None):
    """One round trip: the pool's row (part 0), then one row per tier of each pricing bid (part 1).

    ``caller``, a select of one id column (the API's live-token check), adds
    its row first (part -1, the id as ``c0``) when it finds one: the caller and
    the pool in the same round trip (:func:`caller_and_rows`).

    ``UNION ALL`` of two selects of the same columns, each filling its own and
    leaving the other's NULL, so the pool's columns are not repeated per tier.
    """
    pool_id = bindparam("pool_id")
    totals = totals_select().where(_totals.c.pool_id == pool_id).subquery("totals")
    pool_columns = [_pools.c[name] for name in _POOL_FIELDS]
    pool_values = [
        *pool_columns,
        _members.c.display_name,
        func.coalesce(totals.c.volume, 0),
        func.coalesce(totals.c.pledge_count, 0),
    ]
    if with_comment_count:
        pool_values.append(
            select(func.count(_comments.c.id))
            .where(_comments.c.target_type == "pool", _comments.c.target_id == _pools.c.id)
            .scalar_subquery()
        )
    bid_columns = [_bids.c.id, _bids.c.capacity, _bids.c.created_at, _tiers.c.min_volume, _tiers.c.unit_price]
    pool_names = [f"c{i}" for i in range(len(pool_values))]
    bid_names = ["bid_id", "capacity", "placed_at", "min_volume", "price"]
    pool_part = (
        select(
            literal(0).label("part"),
            *(value.label(name) for value, name in zip(pool_values, pool_names, strict=True)),
            *(_typed_null(column).label(name) for column, name in zip(bid_columns, bid_names, strict=True)),
        )
        .select_from(_pools)
        .join(_members, _members.c.id == _pools.c.organizer_id)
        .outerjoin(totals, totals.c.pool_id == _pools.c.id)
        .where(_pools.c.id == pool_id)
    )
    fillers = [_typed_null(column) for column in pool_columns]
    fillers += [_typed_null(_members.c.display_name), null(), null()] + ([null()] if with_comment_count else [])
    bids_part = (
        select(
            literal(1).label("part"),
            *(filler.label(name) for filler, name in zip(fillers, pool_names, strict=True)),
            *(column.label(name) for column, name in zip(bid_columns, bid_names, strict=True)),
        )
        .select_from(_bids)
        .outerjoin(_tiers, _tiers.c.bid_id == _bids.c.id)
        .where(_bids.c.pool_id == pool_id, _one_of(_bids.c.status, PRICING_BIDS))
    )
    parts = [pool_part, bids_part]
    if caller is not None:
        found = caller.subquery("caller")
        parts.append(
            select(
                literal(-1).label("part"),
                type_coerce(found.c[0], _pools.c.id.type).label(pool_names[0]),
                *(filler.label(name) for filler, name in zip(fillers[1:], pool_names[1:], strict=True)),
                *(_typed_null(column).label(name) for column, name in zip(bid_columns, bid_names, strict=True)),
            ).select_from(found)
        )
    return union_all(*parts).order_by(literal_column("part"), literal_column("bid_id"), literal_column("min_volume"))


_SNAPSHOT = snapshot_statement(with_comment_count=False)
_SNAPSHOT_WITH_COMMENTS = snapshot_statement(with_comment_count=True)


def _bids_from(rows) -> tuple[engine.Bid, ...]:
    """Engine bids from ``(bid_id, capacity, placed_at, min_volume, price)`` rows ordered by bid, then volume."""
    bids: list[engine.Bid] = []
    current_id, tiers, capacity, placed_at = None, [], 0, None
    for bid_id, bid_capacity, created_at, min_volume, unit_price in rows:
        if bid_id != current_id:
            if current_id is not None:
                bids.append(engine.Bid(current_id, tuple(tiers), capacity, placed_at))
            current_id, tiers, capacity, placed_at = bid_id, [], bid_capacity, created_at
        if min_volume is not None:  # a bid always has tiers; the outer join keeps one that had none counted
            tiers.append(engine.Tier(min_volume, unit_price))
    if current_id is not None:
        bids.append(engine.Bid(current_id, tuple(tiers), capacity, placed_at))
    return tuple(bids)


def snapshot_rows(pool_id: int, *, with_comment_count: bool = False) -> tuple[tuple, ...]:
    """The snapshot statement's rows as plain tuples (404 ``not_found`` if there is no such pool).

    On PostgreSQL a prepared statement straight on the driver (reads.fetch),
    in autocommit when the request has no transaction open yet
    (reads.read_connection). The rows are the exact input of everything
    presented from them, and so the memos' key.
    """
    with read_connection() as connection:
        return rows_on(connection, pool_id, with_comment_count=with_comment_count)


def rows_on(connection, pool_id: int, *, with_comment_count: bool = False) -> tuple[tuple, ...]:
    """:func:`snapshot_rows` on a connection the caller holds (reads.read_connection)."""
    statement = _SNAPSHOT_WITH_COMMENTS if with_comment_count else _SNAPSHOT
    rows = fetch(
        connection, statement, {"pool_id": pool_id}, "pools.snapshot_page" if with_comment_count else "pools.snapshot"
    )
    if not rows or rows[0][0] != 0:
        raise NotFound(f"No pool {pool_id}.")
    return rows


def caller_and_rows(connection, statement, params: dict) -> tuple[int | None, tuple[tuple, ...]]:
    """A :func:`snapshot_statement` with a ``caller``, run: (the caller's id or None, the pool's rows or ())."""
    rows = fetch(connection, statement, params, "pools.snapshot_caller")
    if rows and rows[0][0] == -1:
        return rows[0][1], rows[1:]
    return None, rows


def _utc(value):
    return value.astimezone(UTC) if isinstance(value, datetime) else value


# Snapshots by pool, each kept with the exact rows it was built from (a value object: safe to share).
_SNAPSHOTS = Memo(512)


def pool_snapshot(pool_id: int, *, with_comment_count: bool = False) -> PoolSnapshot:
    """The pool, its totals and its pricing bids, in one statement (404 ``not_found`` if there is no such pool)."""
    return snapshot_of(snapshot_rows(pool_id, with_comment_count=with_comment_count), with_comment_count)


def snapshot_of(rows: tuple[tuple, ...], with_comment_count: bool = False) -> PoolSnapshot:
    """The snapshot of :func:`snapshot_rows`' rows (built once for the same rows)."""
    key = (rows[0][1], with_comment_count)
    snapshot = _SNAPSHOTS.get(key, rows)
    if snapshot is None:
        snapshot = _SNAPSHOTS.put(key, rows, snapshot_from_rows(rows, with_comment_count))
    return snapshot


def snapshot_from_rows(rows: tuple[tuple, ...], with_comment_count: bool = False) -> PoolSnapshot:
    head = rows[0]  # part, the pool's fields, display_name, volume, pledge_count[, comment_count], 5 NULLs
    fields = len(_POOL_FIELDS)
    columns = dict(zip(_POOL_FIELDS, map(_utc, head[1 : fields + 1]), strict=True))
    display_name, volume, pledge_count = head[fields + 1 : fields + 4]
    pool = PoolRow(
        **columns,
        organizer=Organizer(columns["organizer_id"], display_name),
        volume=int(volume),
        pledge_count=int(pledge_count),
    )
    return PoolSnapshot(
        pool=pool,
        bids=_bids_from(tuple(map(_utc, row[-5:])) for row in rows[1:]),  # part 1: bid_id, capacity, placed_at, …
        comment_count=int(head[fields + 4]) if with_comment_count else None,
    )


# ---------------------------------------------------------------- presenting


def pool_dict(pool, volume: int, pledge_count: int, bids) -> dict:
    """A pool as the API shows it (PoolOut): ``pool`` is a models.Pool or a PoolRow."""
    return {
        "id": pool.id,
        "title": pool.title,
        "description": pool.description,
        "unit": pool.unit,
        "currency": pool.currency,
        "min_volume": pool.min_volume,
        "deadline": pool.deadline,
        "status": pool.status,
        "organizer_id": pool.organizer_id,
        "volume": volume,
        "pledge_count": pledge_count,
        "best_unit_price": engine.best_unit_price(bids, volume),
        "bid_count": len(bids),
        "award": pool.award,
        "created_at": pool.created_at,
        "closed_at": pool.closed_at,
        "delivered_at": pool.delivered_at,
    }


def present(snapshot: PoolSnapshot) -> dict:
    pool = snapshot.pool
    return pool_dict(pool, pool.volume, pool.pledge_count, snapshot.bids)


def insight(snapshot: PoolSnapshot) -> dict:
    """The pool page's numbers (services.pool_insight's): the API's dict, progress, next break, curve."""
    pool, bids = snapshot.pool, snapshot.bids
    data = present(snapshot)
    volume = pool.volume
    data["next_break"] = engine.next_price_break(bids, volume)
    data["curve"] = engine.price_curve(bids)
    data["progress_pct"] = min(100, (volume * 100) // pool.min_volume) if pool.min_volume else 0
    data["units_to_min"] = max(0, pool.min_volume - volume)
    return data


# ---------------------------------------------------------------- the viewer's own


def own_pledges(pool_id: int, member_id: int) -> list[Pledge]:
    """``member_id``'s own pledges in the pool, oldest first (pass the viewer's own id: nobody else's)."""
    return list(
        db.session.execute(
            select(Pledge).where(Pledge.pool_id == pool_id, Pledge.member_id == member_id).order_by(Pledge.id)
        ).scalars()
    )
