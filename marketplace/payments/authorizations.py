"""Card-backed pledges: a card authorization (manual-capture PaymentIntent) instead of a wallet hold.

Life of an authorization (``TRANSITIONS``):

- placed with the pledge: ``authorized`` for ``quantity x max_unit_price``;
- the pool awards the pledge: ``capture_due`` with ``quantity x unit_price``,
  then ``captured`` (the ledger moves it external:<provider> -> the pool's
  escrow) or ``capture_failed``;
- the pledge ends any other way (withdrawn, released, pool failed or
  cancelled, switched to wallet funds, re-authorized, lapsed): ``cancel_due``,
  then ``canceled``.

The ``*_due`` states are decided inside the pool's (or pledge's)
transaction; the provider call runs after the commit (``outbox``) or in the
run-due sweep, never under row locks. Card authorizations expire after
``AUTHORIZATION_DAYS``: a pledge whose authorization expires before the
pool's deadline is flagged to its member (re-authorize, or switch to wallet
funds), and one that reaches its expiry still active is moved to wallet funds
when the wallet covers it, else withdrawn. The sweep also cancels any hold
the provider still has that no live authorization of ours accounts for, so
no hold is ever leaked.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from ..clock import now, real_now
from ..db import transaction
from ..errors import InsufficientFunds, InvalidState, NotFound, PoolNotOpen
from ..extensions import db
from ..ledger import services as ledger
from ..notifications.services import notify
from ..operators.services import record_audit
from ..texts import N_, Moment, Money, Msg
from . import customers, outbox
from .models import CardAuthorization
from .providers import (
    CardDeclined,
    CardNeedsAuthentication,
    ProviderResult,
    ProviderUnavailable,
    get_provider,
    provider_named,
)

log = logging.getLogger(__name__)

AUTHORIZATION_DAYS = 7  # card networks keep an uncaptured authorization this long (Stripe: 7 days)
CAPTURE_MARGIN = timedelta(hours=1)  # closer than this to its expiry an authorization is not relied on
ORPHAN_GRACE = timedelta(minutes=15)  # a provider hold this young may belong to a pledge still being placed
LIVE = ("authorized", "capture_due", "cancel_due")

TRANSITIONS = {
    "authorized": {"capture_due", "cancel_due", "canceled"},
    "capture_due": {"captured", "capture_failed", "cancel_due"},
    "cancel_due": {"canceled"},
    "captured": set(),
    "canceled": set(),
    "capture_failed": set(),
}


def _move(auth: CardAuthorization, status: str) -> None:
    if status not in TRANSITIONS[auth.status]:
        raise InvalidState(f"Card authorization {auth.id} is {auth.status}; it cannot become {status}.")
    auth.status = status
    if status in ("captured", "canceled", "capture_failed"):
        auth.resolved_at = now()


@dataclass(frozen=True)
class Authorized:
    provider: str
    reference: str
    payment_method: str


# ---------------------------------------------------------------- placing


def authorize(
    member_id: int,
    *,
    amount: int,
    currency: str,
    payment_method: str | None,
    pool_id: int,
    idempotency_key: str | None = None,
) -> Authorized:
    """Hold ``amount`` on the member's card (no database writes but the member's customer row)."""
    provider = get_provider()
    customer = customers.customer_for(member_id, provider)
    key = f"marketplace-pledge-{member_id}-{idempotency_key}" if idempotency_key else None
    result = provider.authorize(
        amount=amount,
        currency=currency,
        member_id=member_id,
        payment_method=payment_method,
        customer=customer,
        idempotency_key=key,
        metadata={"pool_id": str(pool_id)},
    )
    if result.status == "failed":
        raise CardDeclined(result.message or None, errors={"payment_method": [result.message or Msg(N_("declined"))]})
    if result.status != "authorized":
        _cancel_quietly(provider.name, result.reference)
        raise CardNeedsAuthentication()
    return Authorized(provider.name, result.reference, payment_method or "")


def _cancel_quietly(provider: str, reference: str) -> None:
    if not reference:
        return
    try:
        provider_named(provider).cancel(reference)
    except Exception:  # noqa: BLE001 - best effort: the sweep cancels holds nobody tracks
        log.warning("Could not cancel %s authorization %s; the sweep will", provider, reference)


def release_unrecorded(authorized: Authorized) -> None:
    """The pledge was not recorded after all: give the hold back at once."""
    _cancel_quietly(authorized.provider, authorized.reference)


def record(pledge, pool, authorized: Authorized) -> CardAuthorization:
    """The authorization row backing ``pledge`` (inside the pledge's transaction)."""
    moment = now()
    auth = CardAuthorization(
        pledge_id=pledge.id,
        pool_id=pool.id,
        member_id=pledge.member_id,
        provider=authorized.provider,
        intent_id=authorized.reference,
        payment_method=authorized.payment_method[:120],
        amount=pledge.held_amount,
        currency=pool.currency,
        status="authorized",
        authorized_at=moment,
        expires_at=moment + timedelta(days=AUTHORIZATION_DAYS),
        captured_amount=0,
    )
    db.session.add(auth)
    db.session.flush()
    warn_if_expires_early(auth, pool)
    return auth


def expires_before_deadline(auth: CardAuthorization, pool) -> bool:
    return auth.expires_at - CAPTURE_MARGIN < pool.deadline


def warn_if_expires_early(auth: CardAuthorization, pool) -> bool:
    """Tell the member once when this authorization cannot last until the pool closes."""
    if auth.expiry_notified_at is not None or not expires_before_deadline(auth, pool):
        return False
    renew_from = pool.deadline - timedelta(days=AUTHORIZATION_DAYS) + CAPTURE_MARGIN
    notify(
        auth.member_id,
        "card_authorization_expiring",
        Msg(
            N_(
                "Your card authorization of %(amount)s for pool “%(title)s” expires on %(expires)s, before the "
                "pool closes on %(deadline)s. Re-authorize your card after %(renew_from)s, or switch the pledge "
                "to wallet funds; otherwise it moves to your wallet funds (or lapses) when the authorization "
                "expires."
            ),
            amount=Money(auth.amount, auth.currency),
            title=pool.title,
            expires=Moment(auth.expires_at),
            deadline=Moment(pool.deadline),
            renew_from=Moment(renew_from),
        ),
        "/wallet",
    )
    auth.expiry_notified_at = now()
    return True


# ---------------------------------------------------------------- the pool decides (inside its transaction)


def _lock_live(pledge_ids: list[int]) -> dict[int, CardAuthorization]:
    if not pledge_ids:
        return {}
    rows = db.session.execute(
        select(CardAuthorization)
        .where(CardAuthorization.pledge_id.in_(pledge_ids), CardAuthorization.status.in_(LIVE))
        .order_by(CardAuthorization.id)
        .with_for_update(),
        execution_options={"populate_existing": True},
    ).scalars()
    return {auth.pledge_id: auth for auth in rows}


def live_for_pledge(pledge_id: int) -> CardAuthorization | None:
    return _lock_live([pledge_id]).get(pledge_id)


def settle_pool(captures: dict[int, int], cancels: list[int]) -> list[int]:
    """Mark card pledges' authorizations: capture ``{pledge id: amount}``, cancel the others; their ids."""
    found = _lock_live(list(captures) + list(cancels))
    touched = []
    for pledge_id, amount in captures.items():
        auth = found.get(pledge_id)
        if auth is None:
            raise InvalidState(f"Card pledge {pledge_id} has no live card authorization to capture.")
        if not 0 < amount <= auth.amount:
            raise InvalidState(f"Capture of {amount} outside authorization {auth.id} of {auth.amount}.")
        _move(auth, "capture_due")
        auth.capture_amount = amount
        touched.append(auth.id)
    for pledge_id in cancels:
        auth = found.get(pledge_id)
        if auth is not None and auth.status == "authorized":
            _move(auth, "cancel_due")
            touched.append(auth.id)
    db.session.flush()
    return touched


def cancel_for_pledges(pledge_ids: list[int]) -> list[int]:
    """Every live, not yet captured authorization of these pledges becomes ``cancel_due``."""
    touched = []
    for auth in _lock_live(pledge_ids).values():
        if auth.status in ("authorized", "capture_due"):
            _move(auth, "cancel_due")
            auth.capture_amount = None
            touched.append(auth.id)
    db.session.flush()
    return touched


def _in_escrow():
    """Authorizations whose pledge's charge reached the escrow: captured, or paid from the wallet instead."""
    return (CardAuthorization.status == "captured") | (
        (CardAuthorization.status == "capture_failed") & CardAuthorization.capture_entry_id.is_not(None)
    )


def captured_for_pledges(pledge_ids: list[int]) -> set[int]:
    """Pledges whose card payment reached the escrow."""
    if not pledge_ids:
        return set()
    return set(
        db.session.execute(
            select(CardAuthorization.pledge_id).where(CardAuthorization.pledge_id.in_(pledge_ids), _in_escrow())
        ).scalars()
    )


def unsettled_captures(pool_id: int) -> tuple[int, int]:
    """(count, amount) of the pool's awarded card payments not in its escrow (yet)."""
    rows = db.session.execute(
        select(CardAuthorization.capture_amount).where(
            CardAuthorization.pool_id == pool_id,
            CardAuthorization.status.in_(("capture_due", "capture_failed")),
            ~_in_escrow(),
        )
    ).scalars()
    amounts = [amount or 0 for amount in rows]
    return len(amounts), sum(amounts)


def after_commit(auth_ids: list[int]) -> None:
    """Call the provider for these authorizations once the deciding transaction has committed."""
    if auth_ids:
        ids = list(auth_ids)
        outbox.run_after_commit(lambda: process_due(ids))


# ---------------------------------------------------------------- the provider calls (no transaction open)


def process_due(auth_ids: list[int] | None = None) -> dict:
    """Capture or cancel due authorizations at the provider and record the outcome; returns counts."""
    if outbox.in_outer_transaction():
        raise RuntimeError("provider calls run only after the deciding transaction has committed")
    query = select(CardAuthorization.id).where(CardAuthorization.status.in_(("capture_due", "cancel_due")))
    if auth_ids is not None:
        query = query.where(CardAuthorization.id.in_(auth_ids))
    counts: dict[str, int] = defaultdict(int)
    for auth_id in list(db.session.execute(query.order_by(CardAuthorization.id)).scalars()):
        counts[_process_one(auth_id)] += 1
    return dict(counts)


def _process_one(auth_id: int) -> str:
    auth = db.session.get(CardAuthorization, auth_id, populate_existing=True)
    status, reference, amount = auth.status, auth.intent_id, auth.capture_amount
    provider = provider_named(auth.provider)
    db.session.rollback()  # ends the read; no transaction stays open across the provider call
    try:
        if status == "capture_due":
            result = provider.capture(reference, amount, idempotency_key=f"marketplace-capture-{auth_id}")
        elif status == "cancel_due":
            result = provider.cancel(reference)
        else:
            return "skipped"
    except ProviderUnavailable:
        return "unavailable"
    with transaction():
        auth = _lock(auth_id)
        if auth.status != status:  # someone else recorded it meanwhile
            return "skipped"
        if status == "capture_due":
            if result.status == "succeeded":
                settle_capture(auth)
                return "captured"
            if result.status == "failed":
                fail_capture(auth, result)
                return "capture_failed"
            return "pending"
        if result.status == "succeeded":
            _move(auth, "canceled")
            return "canceled"
        log.error("The provider refused to cancel authorization %s (%s): %s", auth.id, reference, result.message)
        return "cancel_refused"


def _lock(auth_id: int) -> CardAuthorization:
    auth = db.session.execute(
        select(CardAuthorization).where(CardAuthorization.id == auth_id).with_for_update(),
        execution_options={"populate_existing": True},
    ).scalar_one_or_none()
    if auth is None:
        raise NotFound(Msg(N_("No card authorization %(id)s."), id=auth_id))
    return auth


def _lock_chain(auth_id: int):
    """Lock the authorization's pool (shared), pledge and the authorization, in the order every path uses."""
    from ..pools.models import Pledge, Pool

    ids = db.session.execute(
        select(CardAuthorization.pool_id, CardAuthorization.pledge_id).where(CardAuthorization.id == auth_id)
    ).first()
    if ids is None:
        raise NotFound(Msg(N_("No card authorization %(id)s."), id=auth_id))
    pool = db.session.execute(
        select(Pool).where(Pool.id == ids[0]).with_for_update(read=True, of=Pool),
        execution_options={"populate_existing": True},
    ).scalar_one()
    pledge = db.session.execute(
        select(Pledge).where(Pledge.id == ids[1]).with_for_update(of=Pledge),
        execution_options={"populate_existing": True},
    ).scalar_one()
    return pool, pledge, _lock(auth_id)


def _escrow(auth: CardAuthorization):
    return ledger.ensure_account(f"pool:{auth.pool_id}:escrow:{auth.currency}", auth.currency, "escrow")


def settle_capture(auth: CardAuthorization) -> None:
    """The provider captured it: the card's money enters the pool's escrow (once)."""
    amount = auth.capture_amount
    entry = ledger.post_entry(
        "card_capture",
        [(ledger.external_account(auth.provider, auth.currency), amount), (_escrow(auth), -amount)],
        memo=f"Pool {auth.pool_id} awarded: card pledge {auth.pledge_id} captured",
        idempotency_key=f"card-authorization:{auth.id}:capture",
        actor_id=auth.member_id,
    )
    _move(auth, "captured")
    auth.captured_amount = amount
    auth.capture_entry_id = entry.id
    db.session.flush()


def fail_capture(auth: CardAuthorization, result: ProviderResult) -> None:
    """The card would not pay: the wallet pays instead when it can; operators hear of it either way."""
    amount = auth.capture_amount
    _move(auth, "capture_failed")
    auth.failure_message = (result.message or "The card issuer refused the capture.")[:300]
    wallet = ledger.wallet_account(auth.member_id, auth.currency)
    try:
        entry = ledger.transfer(
            "pool_capture",
            wallet,
            _escrow(auth),
            amount,
            memo=f"Pool {auth.pool_id} awarded: card pledge {auth.pledge_id} paid from the wallet",
            idempotency_key=f"card-authorization:{auth.id}:wallet",
            actor_id=auth.member_id,
        )
        auth.capture_entry_id = entry.id  # the escrow has it, from the wallet (captured_amount: 0 from the card)
        paid_from_wallet = True
    except InsufficientFunds:
        paid_from_wallet = False
    shown = Money(amount, auth.currency)
    if paid_from_wallet:
        message = Msg(
            N_("Your card would not pay %(amount)s for your pledge; it was paid from your wallet instead."),
            amount=shown,
        )
    else:
        message = Msg(
            N_(
                "Your card would not pay %(amount)s for your pledge, and your wallet does not cover it. "
                "Please deposit the amount: an operator will contact you."
            ),
            amount=shown,
        )
        log.error("Card capture %s failed and the wallet cannot pay: pool %s escrow short", auth.id, auth.pool_id)
    notify(auth.member_id, "card_capture_failed", message, f"/pools/{auth.pool_id}")
    record_audit(
        None,
        "card_capture.failed",
        "card_authorization",
        auth.id,
        {
            "pool_id": auth.pool_id,
            "amount": amount,
            "paid_from_wallet": paid_from_wallet,
            "reason": auth.failure_message,
        },
    )
    db.session.flush()


# ---------------------------------------------------------------- provider events


def on_intent_event(intent: dict, kind: str) -> dict:
    """A pool-pledge PaymentIntent moved at the provider (``succeeded``, ``failed``, ``canceled``)."""
    auth_id = db.session.execute(
        select(CardAuthorization.id).where(
            CardAuthorization.provider == "stripe", CardAuthorization.intent_id == str(intent.get("id") or "")
        )
    ).scalar_one_or_none()
    if auth_id is None:
        return {"handled": False}
    _, _, auth = _lock_chain(auth_id)
    if kind == "succeeded" and auth.status == "capture_due":
        received = intent.get("amount_received")
        if isinstance(received, int) and received != auth.capture_amount:
            log.error("Authorization %s captured %s, expected %s", auth.id, received, auth.capture_amount)
            return {"handled": False}
        settle_capture(auth)
    elif kind == "canceled" and auth.status == "cancel_due":
        _move(auth, "canceled")
    elif kind == "canceled" and auth.status == "capture_due":
        fail_capture(auth, ProviderResult("failed", auth.intent_id, "The card authorization expired before capture."))
    elif kind == "canceled" and auth.status == "authorized":
        # The provider dropped the hold (it expired, or was cancelled by hand): the pledge lost its backing.
        lapse(auth, reason=Msg(N_("Your card authorization was cancelled by the card network.")))
        _move(auth, "canceled")
    return {"handled": True, "authorization_id": auth.id, "status": auth.status}


# ---------------------------------------------------------------- members' own actions


def _own_open_pledge(member_id: int, auth_id: int):
    """Lock pool, pledge and authorization; the member's, backing an active pledge of an open pool."""
    pool, pledge, auth = _lock_chain(auth_id)
    if auth.member_id != member_id:
        raise NotFound(Msg(N_("No card authorization %(id)s."), id=auth_id))
    if pool.status != "open" or now() >= pool.deadline:
        raise PoolNotOpen(Msg(N_("Pool %(id)s is no longer open."), id=pool.id))
    if pledge.status != "active" or pledge.funding != "card" or auth.status != "authorized":
        raise InvalidState(Msg(N_("This card authorization no longer backs an active pledge.")))
    return pool, pledge, auth


def switch_to_wallet(member_id: int, auth_id: int):
    """Back the pledge with a wallet hold instead; the card authorization is cancelled."""
    with transaction():
        pool, pledge, auth = _own_open_pledge(member_id, auth_id)
        _to_wallet(pledge, auth)
    after_commit([auth_id])
    return pledge


def _to_wallet(pledge, auth: CardAuthorization) -> None:
    hold = ledger.place_hold(
        ledger.wallet_account(pledge.member_id, auth.currency),
        pledge.held_amount,
        reference=f"pool:{pledge.pool_id}:pledge",
    )
    pledge.funding = "wallet"
    pledge.hold_id = hold.id
    _move(auth, "cancel_due")
    db.session.flush()


def reauthorize(
    member_id: int, auth_id: int, *, payment_method: str | None = None, idempotency_key: str | None = None
) -> CardAuthorization:
    """A fresh authorization for the same pledge (a new 7 days); the old one is cancelled."""
    from ..pools.models import Pool

    auth = get_for_member(member_id, auth_id)  # a check without locks: the provider call comes next
    pool = db.session.get(Pool, auth.pool_id)
    if pool.status != "open" or now() >= pool.deadline or auth.status != "authorized":
        raise InvalidState(Msg(N_("This card authorization no longer backs an active pledge in an open pool.")))
    amount, currency, method, pool_id = (
        auth.amount,
        auth.currency,
        payment_method or auth.payment_method or None,
        pool.id,
    )
    fresh = authorize(
        member_id,
        amount=amount,
        currency=currency,
        payment_method=method,
        pool_id=pool_id,
        idempotency_key=idempotency_key,
    )
    try:
        with transaction():
            pool, pledge, auth = _own_open_pledge(member_id, auth_id)
            _move(auth, "cancel_due")
            new = record(pledge, pool, fresh)
    except BaseException:
        release_unrecorded(fresh)
        raise
    after_commit([auth_id])
    return new


def for_member(member_id: int, limit: int = 50) -> list[CardAuthorization]:
    return list(
        db.session.execute(
            select(CardAuthorization)
            .where(CardAuthorization.member_id == member_id)
            .order_by(CardAuthorization.id.desc())
            .limit(limit)
        ).scalars()
    )


def latest_for_pledge(pledge_id: int) -> CardAuthorization | None:
    return db.session.execute(
        select(CardAuthorization)
        .where(CardAuthorization.pledge_id == pledge_id)
        .order_by(CardAuthorization.id.desc())
        .limit(1)
    ).scalar_one_or_none()


def get_for_member(member_id: int, auth_id: int) -> CardAuthorization:
    auth = db.session.get(CardAuthorization, auth_id)
    if auth is None or auth.member_id != member_id:
        raise NotFound(Msg(N_("No card authorization %(id)s."), id=auth_id))
    return auth


# ---------------------------------------------------------------- expiry and the sweep


def lapse(auth: CardAuthorization, *, reason: Msg | None = None) -> str:
    """An authorization that can no longer back its active pledge: wallet funds if they cover it, else the
    pledge is withdrawn. The caller has locked pool, pledge and authorization (``_lock_chain``)."""
    from ..pools.models import Pledge

    pledge = db.session.get(Pledge, auth.pledge_id)  # locked by the caller (``_lock_chain``)
    reason = reason or Msg(N_("Your card authorization expired."))
    shown = Money(auth.amount, auth.currency)
    if pledge.status != "active" or pledge.funding != "card":
        _move(auth, "cancel_due")
        return "cancelled"
    try:
        _to_wallet(pledge, auth)  # place_hold checks the wallet before it writes anything
        outcome = "switched"
        message = Msg(
            N_("%(reason)s Your pledge now holds %(amount)s of your wallet instead."), reason=reason, amount=shown
        )
    except InsufficientFunds:
        pledge.status = "withdrawn"
        pledge.resolved_at = now()
        _move(auth, "cancel_due")
        outcome = "withdrawn"
        message = Msg(
            N_(
                "%(reason)s Your wallet does not cover %(amount)s, so the pledge was withdrawn; pledge again to rejoin."
            ),
            reason=reason,
            amount=shown,
        )
    notify(auth.member_id, "card_authorization_lapsed", message, f"/pools/{auth.pool_id}")
    db.session.flush()
    return outcome


def lapse_expired(moment: datetime, *, pool_id: int | None = None) -> dict:
    """Card pledges whose authorization is (nearly) expired move to wallet funds or are withdrawn.

    Runs inside the caller's transaction (a pool's close) or in its own.
    """
    query = select(CardAuthorization.id).where(
        CardAuthorization.status == "authorized", CardAuthorization.expires_at <= moment + CAPTURE_MARGIN
    )
    if pool_id is not None:
        query = query.where(CardAuthorization.pool_id == pool_id)
    counts: dict[str, int] = defaultdict(int)
    touched = []
    with transaction():
        for auth_id in list(db.session.execute(query.order_by(CardAuthorization.id)).scalars()):
            _, _, auth = _lock_chain(auth_id)
            if auth.status != "authorized":
                continue
            counts[lapse(auth)] += 1
            touched.append(auth.id)
    return {"lapsed": dict(counts), "ids": touched}  # now cancel_due: the caller has them cancelled


def _cancel_orphans(moment: datetime) -> int:
    """Cancel every pool-pledge hold the provider has that no live authorization of ours accounts for."""
    provider = get_provider()
    live = set(
        db.session.execute(select(CardAuthorization.intent_id).where(CardAuthorization.status.in_(LIVE))).scalars()
    )
    horizon = real_now() - timedelta(days=AUTHORIZATION_DAYS + 1)  # older holds have expired at the provider
    young = real_now() - ORPHAN_GRACE
    try:
        holds = provider.list_authorizations(int(horizon.timestamp()))
    except ProviderUnavailable:
        return 0
    cancelled = 0
    for hold in holds:
        purpose = (hold.get("metadata") or {}).get("purpose")
        created = hold.get("created") or 0
        if purpose != "pool_pledge" or hold["id"] in live or created > young.timestamp():
            continue
        log.warning("Cancelling %s hold %s that no pledge accounts for", provider.name, hold["id"])
        try:
            if provider.cancel(hold["id"]).status == "succeeded":
                cancelled += 1
        except ProviderUnavailable:
            break
    return cancelled


def sweep(moment: datetime) -> dict:
    """Run-due: lapse expired authorizations, flag early expiries, cancel holds no active pledge needs."""
    from ..pools.models import Pledge, Pool

    lapsed = lapse_expired(moment)["lapsed"]
    with transaction():
        stale = list(
            db.session.execute(
                select(CardAuthorization.pledge_id)
                .join(Pledge, Pledge.id == CardAuthorization.pledge_id)
                .where(CardAuthorization.status == "authorized", Pledge.status != "active")
            ).scalars()
        )
        stale_ids = cancel_for_pledges(stale)
        warned = 0
        rows = db.session.execute(
            select(CardAuthorization, Pool)
            .join(Pool, Pool.id == CardAuthorization.pool_id)
            .where(CardAuthorization.status == "authorized", CardAuthorization.expiry_notified_at.is_(None))
        ).all()
        for auth, pool in rows:
            warned += warn_if_expires_early(auth, pool)
    processed = process_due()
    orphans = _cancel_orphans(moment)
    return {
        "lapsed": sum(lapsed.values()),
        "stale": len(stale_ids),
        "warned": warned,
        "captured": processed.get("captured", 0),
        "canceled": processed.get("canceled", 0),
        "capture_failed": processed.get("capture_failed", 0),
        "orphans_canceled": orphans,
    }


def _register_jobs() -> None:
    from ..operators.jobs import due_job

    due_job("card_authorizations")(sweep)


_register_jobs()
