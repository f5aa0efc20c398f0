"""Buying pools: create, pledge with holds, bid, close (clear + settle), deliver, cancel.

Lock order everywhere: pool row, then pledge/hold rows, then balance rows
(the ledger locks those in ascending id order). Pledges and withdrawals take
the pool row FOR SHARE, so they run side by side but never across a close,
which takes it FOR UPDATE.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta
from typing import NamedTuple

from flask import current_app
from sqlalchemy import String, bindparam, func, insert, or_, select

from ..bulk import bulk_update
from ..clock import now
from ..db import attach_loaded, transaction
from ..errors import Forbidden, InvalidState, NotFound, NotVerified, PoolNotOpen, ValidationFailed
from ..extensions import db
from ..ledger import services as ledger
from ..ledger.batch import NewEntry, post_entries
from ..ledger.models import Account
from ..ledger.settlement import settle_holds
from ..money import MAX_AMOUNT, fee
from ..notifications.services import notify, notify_many
from ..operators.services import record_audit
from ..payments import authorizations
from ..texts import N_, Money, Msg, N_plural, by_status
from . import engine, queries
from .models import Bid, BidTier, Pledge, Pool, PoolPledgeTotal

# Refusals that name a status: one whole sentence per status, so each language can make the words agree.
_NOT_OPEN = {
    "awarded": N_("Pool %(id)s is awarded, not open."),
    "failed": N_("Pool %(id)s is failed, not open."),
    "cancelled": N_("Pool %(id)s is cancelled, not open."),
    "delivered": N_("Pool %(id)s is delivered, not open."),
}
_ALREADY_CLOSED = {
    "awarded": N_("Pool %(id)s is already awarded."),
    "failed": N_("Pool %(id)s is already failed."),
    "cancelled": N_("Pool %(id)s is already cancelled."),
    "delivered": N_("Pool %(id)s is already delivered."),
}
_NOT_DELIVERABLE = {
    "open": N_("Only an awarded pool can be delivered; this one is open."),
    "failed": N_("Only an awarded pool can be delivered; this one is failed."),
    "cancelled": N_("Only an awarded pool can be delivered; this one is cancelled."),
    "delivered": N_("Only an awarded pool can be delivered; this one is delivered."),
}
_NOT_CANCELLABLE = {
    "awarded": N_("A awarded pool cannot be cancelled."),
    "failed": N_("A failed pool cannot be cancelled."),
    "cancelled": N_("A cancelled pool cannot be cancelled."),
    "delivered": N_("A delivered pool cannot be cancelled."),
}
_PLEDGE_DONE = {
    "withdrawn": N_("The pledge is already withdrawn."),
    "filled": N_("The pledge is already filled."),
    "released": N_("The pledge is already released."),
}

# ---------------------------------------------------------------- reading


def get_pool(pool_id: int) -> Pool:
    pool = db.session.get(Pool, pool_id)
    if pool is None:
        raise NotFound(Msg(N_("No pool %(id)s."), id=pool_id))
    return pool


def _lock_pool(pool_id: int, *, share: bool = False) -> Pool:
    pool = db.session.execute(
        select(Pool).where(Pool.id == pool_id).with_for_update(read=share, of=Pool),
        execution_options={"populate_existing": True},
    ).scalar_one_or_none()
    if pool is None:
        raise NotFound(Msg(N_("No pool %(id)s."), id=pool_id))
    return pool


def _ensure_open(pool: Pool) -> None:
    if pool.status != "open":
        raise PoolNotOpen(by_status(_NOT_OPEN, pool.status, f"Pool {pool.id} is {pool.status}, not open.", id=pool.id))
    if now() >= pool.deadline:
        raise PoolNotOpen(Msg(N_("Pool %(id)s passed its deadline and is waiting to be closed."), id=pool.id))


def list_pools(*, status: str | None = None, q: str | None = None, closing_soon: bool = False, offset=0, limit=50):
    query = select(Pool)
    if status == "closed":
        query = query.where(Pool.status != "open")
    elif status:
        query = query.where(Pool.status == status)
    if q:
        like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(or_(Pool.title.ilike(like, escape="\\"), Pool.description.ilike(like, escape="\\")))
    total = db.session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    if closing_soon or status == "open":
        query = query.order_by(Pool.deadline.asc(), Pool.id.asc())
    else:
        query = query.order_by(Pool.id.desc())
    pools = list(db.session.execute(query.offset(offset).limit(limit)).scalars())
    return pools, total


def pool_stats(pool_ids: list[int]) -> dict[int, dict]:
    """Pledged volume and pledge count per pool (withdrawn pledges excluded)."""
    stats = {pid: {"volume": 0, "pledge_count": 0} for pid in pool_ids}
    if not pool_ids:
        return stats
    rows = db.session.execute(queries.totals_select().where(PoolPledgeTotal.pool_id.in_(pool_ids))).all()
    for pool_id, volume, count in rows:
        stats[pool_id] = {"volume": int(volume), "pledge_count": int(count)}
    return stats


def _engine_bid(bid: Bid) -> engine.Bid:
    return engine.Bid(
        id=bid.id,
        tiers=tuple(engine.Tier(t.min_volume, t.unit_price) for t in bid.tiers),
        capacity=bid.capacity,
        placed_at=bid.created_at,
    )


def priced_bids(pool_ids: list[int]) -> dict[int, list[engine.Bid]]:
    """Bids that price the pool (not replaced or void), as engine values."""
    out: dict[int, list[engine.Bid]] = defaultdict(list)
    if not pool_ids:
        return out
    bids = db.session.execute(
        select(Bid).where(Bid.pool_id.in_(pool_ids), Bid.status.in_(("active", "won", "lost")))
    ).scalars()
    for bid in bids:
        out[bid.pool_id].append(_engine_bid(bid))
    return out


def present_pools(pools: list[Pool]) -> list[dict]:
    """Pools as the API's dicts, with volume, pledge_count and best_unit_price."""
    ids = [p.id for p in pools]
    stats = pool_stats(ids)
    bids = priced_bids(ids)
    return [
        queries.pool_dict(pool, stats[pool.id]["volume"], stats[pool.id]["pledge_count"], bids.get(pool.id, []))
        for pool in pools
    ]


def present_pool(pool: Pool) -> dict:
    return present_pools([pool])[0]


def pool_insight(pool: Pool) -> dict:
    """Numbers for the pool page: progress, best price, next break, curve (one read, queries.insight)."""
    return queries.insight(queries.pool_snapshot(pool.id))


# ---------------------------------------------------------------- creating


def create_pool(
    actor_id: int,
    *,
    title: str,
    description: str,
    unit: str,
    currency: str,
    min_volume: int,
    deadline: datetime,
) -> Pool:
    from ..accounts.services import get_member

    with transaction():
        actor = get_member(actor_id)
        if actor.role == "supplier":
            raise Forbidden(Msg(N_("Suppliers bid on pools; members and operators organise them.")))
        if not actor.is_operator and not actor.is_verified:
            raise NotVerified(Msg(N_("Only verified members can organise a pool; ask an operator to verify you.")))
        if deadline <= now():
            raise ValidationFailed(
                Msg(N_("The deadline must be in the future.")), errors={"deadline": [Msg(N_("must be in the future"))]}
            )
        if currency not in current_app.config["CURRENCIES"]:
            raise ValidationFailed(errors={"currency": [Msg(N_("unknown currency"))]})
        pool = Pool(
            title=title,
            description=description or "",
            unit=unit,
            currency=currency,
            min_volume=min_volume,
            deadline=deadline,
            status="open",
            organizer_id=actor_id,
            created_at=now(),
        )
        db.session.add(pool)
        db.session.flush()
    return pool


def place_pledge(
    pool_id: int,
    member_id: int,
    *,
    quantity: int,
    max_unit_price: int,
    funding: str | None = None,
    payment_method: str | None = None,
    idempotency_key: str | None = None,
) -> Pledge:
    """Pledge ``quantity`` at up to ``max_unit_price``; holds quantity x max price.

    ``funding="card"`` (or a ``payment_method``) holds it on the member's card
    instead of the wallet: a card authorization (payments.authorizations).
    """
    from ..accounts.services import get_member

    held = quantity * max_unit_price
    if held > MAX_AMOUNT:
        raise ValidationFailed(
            Msg(N_("quantity x max_unit_price may not exceed 10^12 minor units.")),
            errors={"quantity": [Msg(N_("quantity x max_unit_price exceeds 10^12"))]},
        )
    if (funding or ("card" if payment_method else "wallet")) == "card":
        return _place_card_pledge(pool_id, member_id, quantity, max_unit_price, payment_method, idempotency_key)
    with transaction():
        member = get_member(member_id)
        if member.role == "supplier":
            raise Forbidden(Msg(N_("Suppliers cannot pledge to pools.")))
        pool = _lock_pool_for_pledge(pool_id, member_id)
        _ensure_open(pool)
        wallet = pool.wallet_id or ledger.wallet_account(member_id, pool.currency)
        hold = ledger.place_hold(wallet, held, reference=f"pool:{pool_id}:pledge")
        values = {
            "pool_id": pool_id,
            "member_id": member_id,
            "quantity": quantity,
            "max_unit_price": max_unit_price,
            "held_amount": held,
            "charged_amount": 0,
            "status": "active",
            "hold_id": hold.id,
            "funding": "wallet",
            "created_at": now(),
            "resolved_at": None,
        }
        values["id"] = _insert_pledge(values)
        pledge = attach_loaded(Pledge, values)
    return pledge


class _PledgedPool(NamedTuple):
    id: int
    status: str
    deadline: datetime
    currency: str
    wallet_id: int | None  # the member's wallet in the pool's currency, if it exists


_pools, _accounts = Pool.__table__, Account.__table__
# The pool FOR SHARE (pledges run side by side, never across a close) and the member's wallet in its
# currency, in one statement: the wallet is locked later, by the ledger, as everywhere.
_LOCK_POOL_FOR_PLEDGE = (
    select(_pools.c.id, _pools.c.status, _pools.c.deadline, _pools.c.currency, _accounts.c.id)
    .select_from(
        _pools.outerjoin(_accounts, _accounts.c.code == bindparam("wallet_prefix", type_=String) + _pools.c.currency)
    )
    .where(_pools.c.id == bindparam("pool_id"))
    .with_for_update(read=True, of=_pools)
)
_INSERT_PLEDGE = insert(Pledge.__table__).returning(Pledge.__table__.c.id)
# PostgreSQL: the same two statements as plain driver SQL (prepared), as the ledger runs its own.
_PG_LOCK_POOL_FOR_PLEDGE = (
    "SELECT pools.id, pools.status, pools.deadline, pools.currency, accounts.id FROM pools "
    "LEFT OUTER JOIN accounts ON accounts.code = %s::varchar || pools.currency "
    "WHERE pools.id = %s FOR SHARE OF pools"
)
_PG_INSERT_PLEDGE = (
    "INSERT INTO pledges (pool_id, member_id, quantity, max_unit_price, held_amount, charged_amount, status, "
    "hold_id, funding, created_at) VALUES (%s, %s, %s, %s, %s, 0, 'active', %s, 'wallet', %s) RETURNING id"
)


def _lock_pool_for_pledge(pool_id: int, member_id: int) -> _PledgedPool:
    prefix = ledger.wallet_code(member_id, "")
    connection = db.session.connection()
    if connection.dialect.name == "postgresql":
        rows = ledger._pg_fetch(connection, _PG_LOCK_POOL_FOR_PLEDGE, (prefix, pool_id), "pools.pledge_lock")
        row = rows[0] if rows else None
    else:
        row = connection.execute(_LOCK_POOL_FOR_PLEDGE, {"pool_id": pool_id, "wallet_prefix": prefix}).first()
    if row is None:
        raise NotFound(Msg(N_("No pool %(id)s."), id=pool_id))
    return _PledgedPool(*row)


def _insert_pledge(values: dict) -> int:
    """Insert a wallet pledge (``values`` as ``place_pledge`` makes them); its id."""
    connection = db.session.connection()
    if connection.dialect.name == "postgresql":
        names = ("pool_id", "member_id", "quantity", "max_unit_price", "held_amount", "hold_id", "created_at")
        params = tuple(values[name] for name in names)
        return ledger._pg_fetch(connection, _PG_INSERT_PLEDGE, params, "pools.pledge_insert")[0][0]
    return connection.execute(_INSERT_PLEDGE, values).scalar_one()


def _place_card_pledge(pool_id, member_id, quantity, max_unit_price, payment_method, idempotency_key) -> Pledge:
    """Authorize the card first (no locks held during the provider call), then record the pledge.

    If the pledge cannot be recorded after all (the pool closed meanwhile, ...)
    the authorization is cancelled at once; one that escapes even that (a
    crash) is cancelled by the run-due sweep, which cancels every provider
    hold no live authorization accounts for.
    """
    from ..accounts.services import get_member

    held = quantity * max_unit_price
    member = get_member(member_id)
    if member.role == "supplier":
        raise Forbidden(Msg(N_("Suppliers cannot pledge to pools.")))
    _ensure_open(get_pool(pool_id))
    authorized = authorizations.authorize(
        member_id,
        amount=held,
        currency=get_pool(pool_id).currency,
        payment_method=payment_method,
        pool_id=pool_id,
        idempotency_key=idempotency_key,
    )
    try:
        with transaction():
            pool = _lock_pool(pool_id, share=True)
            _ensure_open(pool)
            pledge = Pledge(
                pool_id=pool.id,
                member_id=member_id,
                quantity=quantity,
                max_unit_price=max_unit_price,
                held_amount=held,
                charged_amount=0,
                status="active",
                hold_id=None,
                funding="card",
                created_at=now(),
            )
            db.session.add(pledge)
            db.session.flush()
            authorizations.record(pledge, pool, authorized)
    except BaseException:
        authorizations.release_unrecorded(authorized)
        raise
    return pledge


def withdraw_pledge(pool_id: int, pledge_id: int, member_id: int) -> Pledge:
    """The member takes the pledge back while the pool is open; hold released."""
    with transaction():
        pool = _lock_pool(pool_id, share=True)
        pledge = db.session.execute(
            select(Pledge).where(Pledge.id == pledge_id).with_for_update(of=Pledge),
            execution_options={"populate_existing": True},
        ).scalar_one_or_none()
        if pledge is None or pledge.pool_id != pool.id:
            raise NotFound(Msg(N_("No pledge %(pledge)s in pool %(pool)s."), pledge=pledge_id, pool=pool_id))
        if pledge.member_id != member_id:
            raise Forbidden(Msg(N_("Only the member who made a pledge can withdraw it.")))
        _ensure_open(pool)
        if pledge.status != "active":
            raise InvalidState(by_status(_PLEDGE_DONE, pledge.status, f"The pledge is already {pledge.status}."))
        card_ids = []
        if pledge.funding == "card":
            card_ids = authorizations.cancel_for_pledges([pledge.id])
        else:
            ledger.release_hold(pledge.hold_id)
        pledge.status = "withdrawn"
        pledge.resolved_at = now()
        db.session.flush()
    authorizations.after_commit(card_ids)
    return pledge


def my_pledges(member_id: int, *, offset: int = 0, limit: int | None = 50) -> list[Pledge]:
    query = select(Pledge).where(Pledge.member_id == member_id).order_by(Pledge.id.desc()).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return list(db.session.execute(query).scalars())


def count_my_pledges(member_id: int) -> int:
    return db.session.execute(select(func.count(Pledge.id)).where(Pledge.member_id == member_id)).scalar_one()


def pledges_in_pool(pool_id: int, viewer_id: int) -> list[Pledge]:
    """The viewer's own pledges in a pool (operators and the organizer see all)."""
    from ..accounts.services import get_member

    pool = get_pool(pool_id)
    viewer = get_member(viewer_id)
    query = select(Pledge).where(Pledge.pool_id == pool.id).order_by(Pledge.id)
    if not (viewer.is_operator or viewer.id == pool.organizer_id):
        query = query.where(Pledge.member_id == viewer_id)
    return list(db.session.execute(query).scalars())


# ---------------------------------------------------------------- bids


def validate_tiers(tiers: list[dict], capacity: int) -> None:
    """Tiers must be non-empty, volumes strictly rising, prices not rising."""
    errors: dict[str, list[Msg]] = {}
    if not tiers:
        errors["tiers"] = [Msg(N_("at least one tier is required"))]
    for i in range(1, len(tiers)):
        if tiers[i]["min_volume"] <= tiers[i - 1]["min_volume"]:
            errors.setdefault(f"tiers.{i}.min_volume", []).append(
                Msg(N_("must be greater than the previous tier's min_volume"))
            )
        if tiers[i]["unit_price"] > tiers[i - 1]["unit_price"]:
            errors.setdefault(f"tiers.{i}.unit_price", []).append(
                Msg(N_("must not be higher than the previous tier's unit_price"))
            )
    if tiers and capacity < tiers[0]["min_volume"]:
        errors["capacity"] = [Msg(N_("must be at least the first tier's min_volume"))]
    if tiers and capacity * tiers[-1]["unit_price"] > MAX_AMOUNT * 1000:
        errors["capacity"] = [Msg(N_("capacity x unit_price is out of range"))]
    if errors:
        raise ValidationFailed(Msg(N_("The bid's tiers are not valid.")), errors=errors)


def place_bid(pool_id: int, supplier_id: int, *, tiers: list[dict], capacity: int) -> Bid:
    """A supplier's volume-tiered bid; replaces its previous bid while open."""
    from ..accounts.services import get_member

    validate_tiers(tiers, capacity)
    with transaction():
        supplier = get_member(supplier_id)
        if not supplier.is_supplier:
            raise Forbidden(Msg(N_("Only suppliers can bid on pools.")))
        pool = _lock_pool(pool_id)
        _ensure_open(pool)
        previous = db.session.execute(
            select(Bid).where(Bid.pool_id == pool.id, Bid.supplier_id == supplier_id, Bid.status == "active")
        ).scalars()
        for old in previous:
            old.status = "replaced"
        bid = Bid(pool_id=pool.id, supplier_id=supplier_id, capacity=capacity, status="active", created_at=now())
        db.session.add(bid)
        db.session.flush()
        for tier in tiers:
            db.session.add(BidTier(bid_id=bid.id, min_volume=tier["min_volume"], unit_price=tier["unit_price"]))
        db.session.flush()
        db.session.refresh(bid)
    return bid


def bids_for(pool_id: int, viewer_id: int) -> list[Bid]:
    """Open pool: the viewer's own bid (operators: all). Closed: every bid."""
    from ..accounts.services import get_member

    pool = get_pool(pool_id)
    viewer = get_member(viewer_id)
    query = select(Bid).where(Bid.pool_id == pool.id).order_by(Bid.created_at, Bid.id)
    if pool.status == "open":
        query = query.where(Bid.status == "active")
        if not viewer.is_operator:
            query = query.where(Bid.supplier_id == viewer_id)
    else:
        query = query.where(Bid.status != "replaced")
    return list(db.session.execute(query).scalars())


# ---------------------------------------------------------------- closing


def close_pool(pool_id: int, actor_id: int | None = None, *, ip: str = "") -> Pool:
    """Clear the pool and settle it: capture filled holds into escrow, release the rest.

    ``actor_id`` None is the scheduler (allowed only after the deadline).
    Closing a pool that is no longer open is 409 pool_not_open, so two
    closes, even racing, award once.
    """
    from ..accounts.services import get_member

    with transaction():
        pool = _lock_pool(pool_id)
        actor = get_member(actor_id) if actor_id is not None else None
        if actor is not None and not (actor.is_operator or actor.id == pool.organizer_id):
            raise Forbidden(Msg(N_("Only the pool's organizer or an operator can close it.")))
        if pool.status != "open":
            raise PoolNotOpen(
                by_status(_ALREADY_CLOSED, pool.status, f"Pool {pool.id} is already {pool.status}.", id=pool.id)
            )
        if actor_id is None and now() < pool.deadline:
            raise InvalidState(Msg(N_("The scheduler closes a pool only after its deadline.")))
        # A card pledge whose authorization cannot last until its capture moves to wallet funds, or lapses.
        card_ids = authorizations.lapse_expired(now(), pool_id=pool.id)["ids"]
        pledges = _active_pledge_rows(pool.id)
        bids = list(db.session.execute(select(Bid).where(Bid.pool_id == pool.id, Bid.status == "active")).scalars())
        result = engine.clear(
            pool.min_volume,
            [engine.Pledge(p.id, p.quantity, p.max_unit_price, p.created_at) for p in pledges],
            [_engine_bid(b) for b in bids],
        )
        _record_outcomes(bids, result)
        card_ids += _settle_pledges(pool, pledges, result)
        moment = now()
        pool.closed_at = moment
        if result.awarded:
            winner = next(b for b in bids if b.id == result.winning_bid_id)
            pool.status = "awarded"
            pool.winning_bid_id = winner.id
            pool.award_supplier_id = winner.supplier_id
            pool.award_unit_price = result.unit_price
            pool.award_volume = result.volume
            pool.award_total = result.total
            pool.award_fee = fee(result.total, current_app.config["POOL_FEE_BPS"])
        else:
            pool.status = "failed"
        _notify_close(pool, pledges, bids, result)
        if actor is not None and actor.is_operator:
            record_audit(actor_id, "pool.close", "pool", pool.id, {"status": pool.status}, ip=ip)
        db.session.flush()
    authorizations.after_commit(card_ids)  # card captures and cancellations, once the close is committed
    return pool


def _record_outcomes(bids: list[Bid], result: engine.ClearingResult) -> None:
    by_id = {o.bid_id: o for o in result.outcomes}
    for bid in bids:
        outcome = by_id[bid.id]
        bid.status = "won" if outcome.winner else "lost"
        bid.outcome_cleared = outcome.cleared
        bid.outcome_volume = outcome.volume
        bid.outcome_unit_price = outcome.unit_price
        bid.outcome_members_served = outcome.members_served
        bid.outcome_total = outcome.total
        bid.outcome_reason = outcome.reason
        bid.outcome_explanation = outcome.explanation[:300]
        bid.outcome_params = outcome.message.to_json() if outcome.message is not None else None


class PledgeRow(NamedTuple):
    id: int
    member_id: int
    quantity: int
    max_unit_price: int
    created_at: datetime
    hold_id: int | None
    funding: str


def _active_pledge_rows(pool_id: int) -> list[PledgeRow]:
    """The pool's active pledges as plain tuples (a pool may hold 100,000 of them)."""
    rows = db.session.execute(
        select(
            Pledge.id,
            Pledge.member_id,
            Pledge.quantity,
            Pledge.max_unit_price,
            Pledge.created_at,
            Pledge.hold_id,
            Pledge.funding,
        )
        .where(Pledge.pool_id == pool_id, Pledge.status == "active")
        .order_by(Pledge.id)
    )
    return [PledgeRow(*row) for row in rows]


def _charge(pledge: PledgeRow, result: engine.ClearingResult) -> int:
    return pledge.quantity * result.unit_price if result.fates.get(pledge.id) == "filled" else 0


def _settle_pledges(pool: Pool, pledges: list[PledgeRow], result: engine.ClearingResult) -> list[int]:
    """Capture each filled pledge's charge into escrow, release every other hold, record fates.

    Wallet holds settle here; card pledges' authorizations are marked for
    capture or cancellation, which the provider does after the commit (their
    ids are returned).
    """
    escrow = ledger.ensure_account(pool.escrow_code, pool.currency, "escrow")
    wallet_rows = [p for p in pledges if p.funding != "card"]
    card_rows = [p for p in pledges if p.funding == "card"]
    captures = [(p.hold_id, _charge(p, result)) for p in wallet_rows if result.fates.get(p.id) == "filled"]
    releases = [p.hold_id for p in wallet_rows if result.fates.get(p.id) != "filled"]
    settle_holds(captures, releases, escrow, kind="pool_capture", memo=f"Pool {pool.id} awarded: pledge charged")
    card_ids = authorizations.settle_pool(
        {p.id: _charge(p, result) for p in card_rows if result.fates.get(p.id) == "filled"},
        [p.id for p in card_rows if result.fates.get(p.id) != "filled"],
    )
    _write_pledge_fates(pool.id, pledges, result)
    return card_ids


def _write_pledge_fates(pool_id: int, pledges: list[PledgeRow], result: engine.ClearingResult | None) -> None:
    moment = now()
    bulk_update(
        Pledge.__table__,
        [
            {
                "id": p.id,
                "status": "filled" if result is not None and result.fates.get(p.id) == "filled" else "released",
                "charged_amount": _charge(p, result) if result is not None else 0,
            }
            for p in pledges
        ],
        constants={"resolved_at": moment},
    )
    for obj in list(db.session.identity_map.values()):
        if isinstance(obj, Pledge) and obj.pool_id == pool_id:
            db.session.expire(obj)


def _notify_close(pool: Pool, pledges: list[PledgeRow], bids: list[Bid], result: engine.ClearingResult) -> None:
    link = f"/pools/{pool.id}"
    rows = []
    price = Money(pool.award_unit_price, pool.currency) if pool.status == "awarded" else None
    for pledge in pledges:
        filled = result.fates.get(pledge.id) == "filled"
        if pool.status == "awarded" and filled:
            msg = Msg(
                N_(
                    "Pool “%(title)s” was awarded at %(price)s per %(unit)s: you were charged %(charged)s "
                    "and the rest of your hold was released."
                ),
                title=pool.title,
                price=price,
                unit=pool.unit,
                charged=Money(_charge(pledge, result), pool.currency),
            )
            rows.append((pledge.member_id, "pool_awarded", msg, link))
        elif pool.status == "awarded":
            template = (
                N_(
                    "Pool “%(title)s” was awarded at %(price)s, above your maximum price: your pledge was released "
                    "and nothing was charged."
                )
                if pledge.max_unit_price < pool.award_unit_price
                else N_(
                    "Pool “%(title)s” was awarded at %(price)s, but the winning supplier's capacity was filled by "
                    "earlier pledges in the clearing order: your pledge was released and nothing was charged."
                )
            )
            rows.append((pledge.member_id, "pool_released", Msg(template, title=pool.title, price=price), link))
        else:
            msg = Msg(
                N_("Pool “%(title)s” failed: no bid could clear it. Your hold was released; nothing was charged."),
                title=pool.title,
            )
            rows.append((pledge.member_id, "pool_failed", msg, link))
    for bid in bids:
        if bid.status == "won":
            msg = Msg(
                N_("You won pool “%(title)s”: %(volume)s %(unit)s at %(price)s. Confirm delivery to be paid."),
                title=pool.title,
                volume=pool.award_volume,
                unit=pool.unit,
                price=Money(pool.award_unit_price, pool.currency),
            )
            rows.append((bid.supplier_id, "bid_won", msg, link))
        else:
            explanation = Msg.from_json(bid.outcome_params) or bid.outcome_explanation
            msg = Msg(
                N_("Your bid on pool “%(title)s” did not win. %(explanation)s"),
                title=pool.title,
                explanation=explanation,
            )
            rows.append((bid.supplier_id, "bid_lost", msg, link))
    notify_many(rows)


def close_due_pools(moment: datetime) -> dict:
    """Scheduler: close every open pool whose deadline has passed."""
    due = list(
        db.session.execute(
            select(Pool.id).where(Pool.status == "open", Pool.deadline <= moment).order_by(Pool.deadline, Pool.id)
        ).scalars()
    )
    closed = {"awarded": 0, "failed": 0, "skipped": 0}
    pool_ids: list[int] = []
    for pool_id in due:
        try:
            pool = close_pool(pool_id, None)
            closed[pool.status] += 1
            pool_ids.append(pool_id)
        except (PoolNotOpen, InvalidState):
            db.session.rollback()
            closed["skipped"] += 1
        except Exception:  # noqa: BLE001 - one bad pool must not stop the others
            db.session.rollback()
            logging.getLogger(__name__).exception("run-due: closing pool %s failed", pool_id)
            closed["errors"] = closed.get("errors", 0) + 1
    return {"closed": closed["awarded"] + closed["failed"], **closed, "pool_ids": pool_ids}


# ---------------------------------------------------------------- after close


def confirm_delivery(pool_id: int, supplier_id: int) -> Pool:
    """The winning supplier delivered: escrow to its wallet less the platform fee."""
    with transaction():
        pool = _lock_pool(pool_id)
        if pool.status != "awarded":
            raise InvalidState(
                by_status(
                    _NOT_DELIVERABLE, pool.status, f"Only an awarded pool can be delivered; this one is {pool.status}."
                )
            )
        if pool.award_supplier_id != supplier_id:
            raise Forbidden(Msg(N_("Only the winning supplier confirms delivery.")))
        waiting, short = authorizations.unsettled_captures(pool.id)
        if waiting:
            raise InvalidState(
                Msg.plural_of(
                    N_plural(
                        "%(num)d card payment(s) of %(amount)s have not reached the escrow yet; "
                        "confirm delivery once they are collected.",
                        "%(num)d card payment(s) of %(amount)s have not reached the escrow yet; "
                        "confirm delivery once they are collected.",
                    ),
                    waiting,
                    amount=Money(short, pool.currency),
                ),
                reason="payments_pending",
            )
        escrow = ledger.ensure_account(pool.escrow_code, pool.currency, "escrow")
        supplier_wallet = ledger.wallet_account(supplier_id, pool.currency)
        total, platform_fee = pool.award_total, pool.award_fee
        postings = [(escrow, total)]
        if total - platform_fee:
            postings.append((supplier_wallet, -(total - platform_fee)))
        if platform_fee:
            postings.append((ledger.fees_account(pool.currency), -platform_fee))
        ledger.post_entry(
            "pool_payout",
            postings,
            memo=f"Pool {pool.id} delivered: payout to supplier, fee {platform_fee}",
            idempotency_key=f"pool:{pool.id}:payout",
            actor_id=supplier_id,
        )
        pool.status = "delivered"
        pool.delivered_at = now()
        filled = db.session.execute(
            select(Pledge.member_id).where(Pledge.pool_id == pool.id, Pledge.status == "filled").distinct()
        ).scalars()
        notify_many(
            [
                (
                    m,
                    "pool_delivered",
                    Msg(
                        N_("Pool “%(title)s” was delivered. Tell other members how it went: leave a review."),
                        title=pool.title,
                    ),
                    f"/pools/{pool.id}",
                )
                for m in filled
            ]
        )
        notify(
            supplier_id,
            "payout",
            Msg(
                N_("Payout for pool “%(title)s”: %(amount)s (fee %(fee)s)."),
                title=pool.title,
                amount=Money(total - platform_fee, pool.currency),
                fee=Money(platform_fee, pool.currency),
            ),
            f"/pools/{pool.id}",
        )
        db.session.flush()
    return pool


def cancel_pool(pool_id: int, actor_id: int, *, ip: str = "") -> Pool:
    """Cancel: an open pool (organizer or operator) releases every hold; an
    awarded, undelivered pool (operator only) refunds every charge from escrow."""
    from ..accounts.services import get_member

    with transaction():
        actor = get_member(actor_id)
        pool = _lock_pool(pool_id)
        if not (actor.is_operator or actor.id == pool.organizer_id):
            raise Forbidden(Msg(N_("Only the pool's organizer or an operator can cancel it.")))
        card_ids: list[int] = []
        if pool.status == "open":
            active = _active_pledge_rows(pool.id)
            settle_holds([], [p.hold_id for p in active if p.funding != "card"], None, kind="pool_capture", memo="")
            card_ids = authorizations.cancel_for_pledges([p.id for p in active if p.funding == "card"])
            _write_pledge_fates(pool.id, active, None)
            members = {p.member_id for p in active}
        elif pool.status == "awarded" and actor.is_operator:
            filled = list(
                db.session.execute(select(Pledge).where(Pledge.pool_id == pool.id, Pledge.status == "filled")).scalars()
            )
            # A card pledge whose capture has not reached the escrow is not charged at all: cancel its hold.
            card = [p.id for p in filled if p.funding == "card"]
            captured = authorizations.captured_for_pledges(card)
            card_ids = authorizations.cancel_for_pledges([pid for pid in card if pid not in captured])
            uncharged = [p for p in filled if p.funding == "card" and p.id not in captured]
            filled = [p for p in filled if p.funding != "card" or p.id in captured]
            escrow = ledger.ensure_account(pool.escrow_code, pool.currency, "escrow")
            wallets = {m: ledger.wallet_account(m, pool.currency) for m in {p.member_id for p in filled}}
            post_entries(
                NewEntry(
                    kind="pool_refund",
                    postings=[(escrow, pledge.charged_amount), (wallets[pledge.member_id], -pledge.charged_amount)],
                    memo=f"Pool {pool.id} cancelled: refund of pledge {pledge.id}",
                    idempotency_key=f"pool:{pool.id}:refund:{pledge.id}",
                    actor_id=actor_id,
                )
                for pledge in filled
            )
            moment = now()
            for pledge in filled + uncharged:
                pledge.status = "released"
                pledge.charged_amount = 0  # refunded in full (or never charged)
                pledge.resolved_at = moment
            members = {p.member_id for p in filled + uncharged}
        else:
            raise InvalidState(by_status(_NOT_CANCELLABLE, pool.status, f"A {pool.status} pool cannot be cancelled."))
        bids = list(
            db.session.execute(
                select(Bid).where(Bid.pool_id == pool.id, Bid.status.in_(("active", "won", "lost")))
            ).scalars()
        )
        for bid in bids:
            bid.status = "void"
        pool.status = "cancelled"
        pool.cancelled_at = now()
        message = Msg(
            N_("Pool “%(title)s” was cancelled. Your money was released; nothing is charged."), title=pool.title
        )
        notify_many([(m, "pool_cancelled", message, f"/pools/{pool.id}") for m in members])
        to_suppliers = Msg(N_("Pool “%(title)s” was cancelled."), title=pool.title)
        notify_many([(b.supplier_id, "pool_cancelled", to_suppliers, f"/pools/{pool.id}") for b in bids])
        record_audit(actor_id, "pool.cancel", "pool", pool.id, {"by": actor.role}, ip=ip)
        db.session.flush()
    authorizations.after_commit(card_ids)
    return pool


def _register_jobs() -> None:
    from ..operators.jobs import due_job

    due_job("close_pools")(close_due_pools)


_register_jobs()


# ---------------------------------------------------------------- browser pages (read-only helpers)


def list_pools_closing_soon(within: timedelta, *, q: str | None = None, offset: int = 0, limit: int = 50):
    """Open pools whose deadline is at most ``within`` from now (overdue ones too), soonest first."""
    query = select(Pool).where(Pool.status == "open", Pool.deadline <= now() + within)
    if q:
        like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(or_(Pool.title.ilike(like, escape="\\"), Pool.description.ilike(like, escape="\\")))
    total = db.session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    query = query.order_by(Pool.deadline.asc(), Pool.id.asc()).offset(offset).limit(limit)
    return list(db.session.execute(query).scalars()), total


def closed_pool_bids(pool_id: int) -> list[Bid]:
    """Once a pool is no longer open: every bid that priced it, with its outcome, for anyone to compare."""
    pool = get_pool(pool_id)
    if pool.status == "open":
        return []
    query = select(Bid).where(Bid.pool_id == pool.id, Bid.status != "replaced").order_by(Bid.created_at, Bid.id)
    return list(db.session.execute(query).scalars())
