"""The lending market: loan requests, standing offers, continuous matching.

A new request is matched at once against the offers, a new offer at once
against the open requests (``matching.py`` decides; this module reads the
book, reserves the parts and commits). Each reserved part has its own hold on
the lender's wallet, split off the offer's hold; when a request is fully
funded it becomes a loan and is disbursed in the same transaction
(``loans.disburse``). Requests that stay unfunded expire after
``LOAN_FUNDING_DAYS``; their parts go back to the offers they came from (or
to the lender's wallet when the offer is gone), and the re-opened offers are
matched again at once.

Lock order: the currency's market row (one matcher per currency at a time,
so two offers arriving together can never over-fund a request), then the
request/offer rows, then balance rows and holds (the ledger's order).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, select

from ..clock import now
from ..db import transaction
from ..errors import Forbidden, InvalidState, NotFound, NotVerifiedToBorrow, ValidationFailed
from ..extensions import db
from ..ledger import services as ledger
from ..ledger.holds import reshape_holds
from ..notifications.services import notify
from ..texts import N_, Money, Msg, by_status
from . import matching
from .grading import Grade, reason_row
from .models import LendingMarket, LendingOffer, LoanPart, LoanRequest

_REQUEST_NOT_OPEN = {
    "funded": N_("The loan request is funded, not open."),
    "expired": N_("The loan request is expired, not open."),
    "cancelled": N_("The loan request is cancelled, not open."),
}

BOOK_PAGE = 500

# ---------------------------------------------------------------- reading


def get_request(request_id: int) -> LoanRequest:
    found = db.session.get(LoanRequest, request_id)
    if found is None:
        raise NotFound(Msg(N_("No loan request %(id)s."), id=request_id))
    return found


def get_offer(offer_id: int) -> LendingOffer:
    found = db.session.get(LendingOffer, offer_id)
    if found is None:
        raise NotFound(Msg(N_("No lending offer %(id)s."), id=offer_id))
    return found


def list_requests(*, status: str | None = None, borrower_id: int | None = None, offset: int = 0, limit: int = 50):
    """Requests (open ones: the marketplace's), newest first; returns (rows, total)."""
    query = select(LoanRequest)
    if status:
        query = query.where(LoanRequest.status == status)
    if borrower_id is not None:
        query = query.where(LoanRequest.borrower_id == borrower_id)
    total = db.session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = db.session.execute(query.order_by(LoanRequest.id.desc()).offset(offset).limit(limit)).scalars()
    return list(rows), total


def list_offers(lender_id: int, *, offset: int = 0, limit: int = 50):
    query = select(LendingOffer).where(LendingOffer.lender_id == lender_id)
    total = db.session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = db.session.execute(query.order_by(LendingOffer.id.desc()).offset(offset).limit(limit)).scalars()
    return list(rows), total


def parts_of_request(request_id: int) -> list[LoanPart]:
    return list(
        db.session.execute(
            select(LoanPart)
            .where(LoanPart.request_id == request_id, LoanPart.status != "returned")
            .order_by(LoanPart.id)
        ).scalars()
    )


# ---------------------------------------------------------------- locking


def _lock_market(currency: str) -> None:
    """Serialise matching per currency: create the market row if needed, then lock it."""
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    db.session.execute(insert(LendingMarket).values(currency=currency).on_conflict_do_nothing())
    db.session.execute(select(LendingMarket).where(LendingMarket.currency == currency).with_for_update())


def _lock_request(request_id: int) -> LoanRequest:
    found = db.session.execute(
        select(LoanRequest).where(LoanRequest.id == request_id).with_for_update(of=LoanRequest),
        execution_options={"populate_existing": True},
    ).scalar_one_or_none()
    if found is None:
        raise NotFound(Msg(N_("No loan request %(id)s."), id=request_id))
    return found


def _lock_offer(offer_id: int) -> LendingOffer:
    found = db.session.execute(
        select(LendingOffer).where(LendingOffer.id == offer_id).with_for_update(of=LendingOffer),
        execution_options={"populate_existing": True},
    ).scalar_one_or_none()
    if found is None:
        raise NotFound(Msg(N_("No lending offer %(id)s."), id=offer_id))
    return found


# ---------------------------------------------------------------- book <-> engine


def _book_offer(offer: LendingOffer) -> matching.BookOffer:
    return matching.BookOffer(
        id=offer.id,
        lender_id=offer.lender_id,
        remaining=offer.remaining,
        min_rate_bps=offer.min_rate_bps,
        max_part=offer.max_part,
        terms=frozenset(offer.terms or ()),
        grades=frozenset(offer.grades or ()),
        seq=offer.id,
    )


def _book_request(request: LoanRequest) -> matching.BookRequest:
    return matching.BookRequest(
        id=request.id,
        borrower_id=request.borrower_id,
        need=request.remaining,
        term_months=request.term_months,
        max_rate_bps=request.max_rate_bps,
        grade=request.grade,
        seq=request.id,
    )


def _already(column, key_column, value: int) -> dict[int, int]:
    """What each offer (or request) already has reserved with ``value``: key -> amount."""
    rows = db.session.execute(
        select(key_column, func.sum(LoanPart.amount))
        .where(column == value, LoanPart.status.in_(("reserved", "active", "repaid", "defaulted")))
        .group_by(key_column)
    ).all()
    return {key: int(total) for key, total in rows}


def _prelock(currency: str, member_ids: set[int]) -> None:
    """Lock the members' wallets and the fee account in one ascending statement, before any of them.

    Reserving parts and disbursing touch several wallets one statement at a
    time; taking them all first, in ascending id order like every other
    ledger writer, is what keeps a match from deadlocking with a repayment
    or a pool's settlement that locks some of the same wallets. The set must
    be complete: a wallet first locked after a higher one is a deadlock
    waiting to happen (see ``_lenders_of``).
    """
    ids = [ledger.wallet_account(member_id, currency).id for member_id in sorted(member_ids)]
    ledger.lock_balances([*ids, ledger.fees_account(currency).id])


def _lenders_of(request_ids: set[int]) -> set[int]:
    """The lenders of the requests' reserved parts: a request that a match completes is disbursed at once,
    and disbursing captures every part's hold, in each of those lenders' wallets — not only the parts this
    match adds. (Left out of the pre-lock, they were locked after it: the soak's deadlocks with repayments.)
    """
    if not request_ids:
        return set()
    return set(
        db.session.execute(
            select(LoanPart.lender_id)
            .where(LoanPart.request_id.in_(sorted(request_ids)), LoanPart.status == "reserved")
            .distinct()
        ).scalars()
    )


def _reserve(request: LoanRequest, offer: LendingOffer, amount: int, rate_bps: int) -> LoanPart:
    """Split ``amount`` off the offer's hold into a part of ``request``."""
    if offer.hold_id is None or amount > offer.remaining:
        raise InvalidState(f"Offer {offer.id} cannot fund {amount}.")
    rest = offer.remaining - amount
    place = [(amount, f"lending:request:{request.id}:part")]
    if rest:
        place.append((rest, f"lending:offer:{offer.id}"))
    new = reshape_holds([offer.hold_id], place)
    offer.remaining = rest
    offer.hold_id = new[1].id if rest else None
    offer.status = "open" if rest else "filled"
    part = LoanPart(
        request_id=request.id,
        offer_id=offer.id,
        lender_id=offer.lender_id,
        currency=request.currency,
        amount=amount,
        rate_bps=rate_bps,
        hold_id=new[0].id,
        status="reserved",
        created_at=now(),
    )
    db.session.add(part)
    request.funded_amount += amount
    return part


def _fund_if_complete(request: LoanRequest) -> None:
    if request.status == "open" and request.funded_amount == request.amount:
        from .loans import disburse

        db.session.flush()
        disburse(request)


def _match_request(request: LoanRequest) -> None:
    """Fill an open request from the book: cheapest offers first, then oldest (market locked)."""
    already = _already(LoanPart.request_id, LoanPart.offer_id, request.id)
    last_key = (-1, -1)
    while request.remaining > 0:
        page = list(
            db.session.execute(
                select(LendingOffer)
                .where(
                    LendingOffer.status == "open",
                    LendingOffer.currency == request.currency,
                    LendingOffer.remaining > 0,
                    LendingOffer.min_rate_bps <= request.max_rate_bps,
                    LendingOffer.lender_id != request.borrower_id,
                    (LendingOffer.min_rate_bps > last_key[0])
                    | ((LendingOffer.min_rate_bps == last_key[0]) & (LendingOffer.id > last_key[1])),
                )
                .order_by(LendingOffer.min_rate_bps, LendingOffer.id)
                .limit(BOOK_PAGE)
                .with_for_update(of=LendingOffer),
                execution_options={"populate_existing": True},
            ).scalars()
        )
        if not page:
            break
        last_key = (page[-1].min_rate_bps, page[-1].id)
        by_id = {offer.id: offer for offer in page}
        fills = matching.match_request(_book_request(request), [_book_offer(o) for o in page], already)
        if fills:  # every wallet this step may touch, locked at once in ascending order
            lenders = {f.lender_id for f in fills} | _lenders_of({request.id})
            _prelock(request.currency, lenders | {request.borrower_id})
        for fill in fills:
            _reserve(request, by_id[fill.offer_id], fill.amount, fill.rate_bps)
    db.session.flush()
    _fund_if_complete(request)


def _match_offer(offer: LendingOffer) -> None:
    """Fund open requests with a new (or re-opened) offer, oldest request first (market locked)."""
    already = _already(LoanPart.offer_id, LoanPart.request_id, offer.id)
    last_id = 0
    while offer.remaining > 0:
        page = list(
            db.session.execute(
                select(LoanRequest)
                .where(
                    LoanRequest.status == "open",
                    LoanRequest.currency == offer.currency,
                    LoanRequest.max_rate_bps >= offer.min_rate_bps,
                    LoanRequest.borrower_id != offer.lender_id,
                    LoanRequest.expires_at > now(),
                    LoanRequest.id > last_id,
                )
                .order_by(LoanRequest.id)
                .limit(BOOK_PAGE)
                .with_for_update(of=LoanRequest),
                execution_options={"populate_existing": True},
            ).scalars()
        )
        if not page:
            break
        last_id = page[-1].id
        by_id = {request.id: request for request in page}
        fills = matching.match_offer(_book_offer(offer), [_book_request(r) for r in page], already)
        if fills:  # every wallet this step may touch, locked at once in ascending order
            funded = {f.request_id for f in fills}
            borrowers = {by_id[request_id].borrower_id for request_id in funded}
            _prelock(offer.currency, {offer.lender_id} | borrowers | _lenders_of(funded))
        for fill in fills:
            request = by_id[fill.request_id]
            _reserve(request, offer, fill.amount, fill.rate_bps)
            db.session.flush()
            _fund_if_complete(request)


# ---------------------------------------------------------------- requests


def _check_currency(currency: str) -> None:
    if currency not in current_app.config["CURRENCIES"]:
        raise ValidationFailed(errors={"currency": [Msg(N_("unknown currency"))]})


def _borrower(member_id: int):
    from ..accounts.services import get_member

    member = get_member(member_id)
    if member.role != "member":
        raise Forbidden(Msg(N_("Only members borrow; suppliers and operators cannot request loans.")))
    if not member.is_verified:
        raise NotVerifiedToBorrow(Msg(N_("Only verified members can borrow; ask an operator to verify your identity.")))
    return member


def assess(member_id: int, *, amount: int, term_months: int, max_rate_bps: int, **declared) -> Grade:
    """The risk grade the member would get for this request, with its reasons (no write)."""
    from .risk import grade_member

    return grade_member(member_id, amount=amount, term_months=term_months, rate_bps=max_rate_bps, **declared)


def create_request(
    borrower_id: int,
    *,
    amount: int,
    currency: str,
    term_months: int,
    max_rate_bps: int,
    purpose: str = "",
    monthly_income: int | None = None,
    monthly_debt: int = 0,
) -> LoanRequest:
    _check_currency(currency)
    with transaction():
        _borrower(borrower_id)
        grade = assess(
            borrower_id,
            amount=amount,
            term_months=term_months,
            max_rate_bps=max_rate_bps,
            monthly_income=monthly_income,
            monthly_debt=monthly_debt,
        )
        moment = now()
        request = LoanRequest(
            borrower_id=borrower_id,
            amount=amount,
            currency=currency,
            term_months=term_months,
            max_rate_bps=max_rate_bps,
            purpose=purpose or "",
            monthly_income=monthly_income,
            monthly_debt=monthly_debt or 0,
            grade=grade.letter,
            grade_score=grade.score,
            grade_reasons=[reason_row(r) for r in grade.reasons],
            status="open",
            funded_amount=0,
            created_at=moment,
            expires_at=moment + timedelta(days=current_app.config["LOAN_FUNDING_DAYS"]),
        )
        db.session.add(request)
        db.session.flush()
        _lock_market(currency)
        _match_request(request)
    return request


def _return_parts(request: LoanRequest) -> int:
    """Every reserved part back to its offer (or wallet); re-opened offers match again. Returns parts."""
    parts = [p for p in parts_of_request(request.id) if p.status == "reserved"]
    if parts:
        offers = {offer.id: offer for offer in (_lock_offer(i) for i in sorted({p.offer_id for p in parts}))}
        back: dict[int, int] = defaultdict(int)
        for part in parts:
            if offers[part.offer_id].status != "cancelled":
                back[part.offer_id] += part.amount
        rematched = [(offers[i], offers[i].remaining + amount) for i, amount in sorted(back.items())]
        lenders = {p.lender_id for p in parts}
        _prelock(request.currency, lenders | _members_matching_would_pay(request.currency, rematched))
    reopened: list[LendingOffer] = []
    for part in parts:
        offer = _lock_offer(part.offer_id)
        if offer.status == "cancelled":
            ledger.release_hold(part.hold_id)
        else:
            release = [part.hold_id] + ([offer.hold_id] if offer.hold_id else [])
            (hold,) = reshape_holds(release, [(offer.remaining + part.amount, f"lending:offer:{offer.id}")])
            offer.remaining += part.amount
            offer.hold_id = hold.id
            offer.status = "open"
            reopened.append(offer)
        part.status = "returned"
        part.hold_id = None
        request.funded_amount -= part.amount
    db.session.flush()
    for offer in sorted({o.id: o for o in reopened}.values(), key=lambda o: o.id):  # oldest first, as previewed
        _match_offer(offer)
    return len(parts)


def cancel_request(request_id: int, member_id: int) -> LoanRequest:
    with transaction():
        request = get_request(request_id)
        if request.borrower_id != member_id:
            raise Forbidden(Msg(N_("Only the borrower can cancel a loan request.")))
        _lock_market(request.currency)
        request = _lock_request(request_id)
        if request.status != "open":
            raise InvalidState(
                by_status(_REQUEST_NOT_OPEN, request.status, f"The loan request is {request.status}, not open.")
            )
        request.status = "cancelled"
        request.resolved_at = now()
        db.session.flush()
        _return_parts(request)
    return request


def expire_due_requests(moment: datetime) -> dict:
    """Scheduler: every open request past its funding window expires; its parts go back."""
    due = list(
        db.session.execute(
            select(LoanRequest.id, LoanRequest.currency)
            .where(LoanRequest.status == "open", LoanRequest.expires_at <= moment)
            .order_by(LoanRequest.id)
        ).all()
    )
    expired, parts = 0, 0
    for request_id, currency in due:
        with transaction():
            _lock_market(currency)
            request = _lock_request(request_id)
            if request.status != "open":
                continue
            request.status = "expired"
            request.resolved_at = moment
            db.session.flush()
            parts += _return_parts(request)
            notify(
                request.borrower_id,
                "loan_request_expired",
                Msg(
                    N_("Your loan request for %(amount)s expired with %(offered)s offered; nothing was lent."),
                    amount=Money(request.amount, request.currency),
                    offered=Money(request.funded_amount, request.currency),
                ),
                f"/loan-requests/{request.id}",
            )
            expired += 1
    return {"expired": expired, "parts_returned": parts}


# ---------------------------------------------------------------- offers


def _lender(member_id: int):
    from ..accounts.services import get_member

    member = get_member(member_id)
    if member.role != "member":
        raise Forbidden(Msg(N_("Only members lend; suppliers and operators cannot post lending offers.")))
    return member


def create_offer(
    lender_id: int,
    *,
    amount: int,
    currency: str,
    min_rate_bps: int,
    max_part: int,
    terms: list[int] | None = None,
    grades: list[str] | None = None,
) -> LendingOffer:
    _check_currency(currency)
    with transaction():
        _lender(lender_id)
        offer = LendingOffer(
            lender_id=lender_id,
            amount=amount,
            remaining=amount,
            currency=currency,
            min_rate_bps=min_rate_bps,
            max_part=max_part,
            terms=sorted(set(terms or [])),
            grades=sorted(set(grades or [])),
            status="open",
            created_at=now(),
        )
        _lock_market(currency)  # before the wallet: matching locks wallets under the market lock too
        db.session.add(offer)
        db.session.flush()
        _prelock(currency, {lender_id} | _members_matching_would_pay(currency, [(offer, amount)]))
        hold = ledger.place_hold(
            ledger.wallet_account(lender_id, currency), amount, reference=f"lending:offer:{offer.id}"
        )
        offer.hold_id = hold.id
        db.session.flush()
        _match_offer(offer)
    return offer


def _members_matching_would_pay(currency: str, offers: list[tuple[LendingOffer, int]]) -> set[int]:
    """Whose wallets matching these offers in turn would touch (read only; the market is locked).

    ``offers`` are (offer, the amount it will have to lend); each is matched
    against the open book as ``_match_offer`` will do it (the same engine, what
    it already has in each request, the requests' needs shrinking as earlier
    offers fill them): the borrowers it would fund and the other lenders of
    their requests (disbursing captures every part's hold). Pre-locking these
    with the offers' own lenders keeps the wallet locks of the whole
    transaction in one ascending order.
    """
    if not offers:
        return set()
    requests = list(
        db.session.execute(
            select(LoanRequest)
            .where(LoanRequest.status == "open", LoanRequest.currency == currency, LoanRequest.expires_at > now())
            .order_by(LoanRequest.id)
            .limit(BOOK_PAGE)
        ).scalars()
    )
    book = {r.id: _book_request(r) for r in requests}
    funded: set[int] = set()
    for offer, remaining in offers:
        already = _already(LoanPart.offer_id, LoanPart.request_id, offer.id) if offer.id is not None else {}
        fills = matching.match_offer(replace(_book_offer(offer), remaining=remaining), book.values(), already)
        for fill in fills:
            funded.add(fill.request_id)
            book[fill.request_id] = replace(book[fill.request_id], need=book[fill.request_id].need - fill.amount)
    borrowers = {book[request_id].borrower_id for request_id in funded}
    return borrowers | _lenders_of(funded)


def cancel_offer(offer_id: int, member_id: int) -> LendingOffer:
    with transaction():
        offer = get_offer(offer_id)
        if offer.lender_id != member_id:
            raise Forbidden(Msg(N_("Only the lender can cancel its offer.")))
        _lock_market(offer.currency)
        offer = _lock_offer(offer_id)
        if offer.status == "cancelled":
            raise InvalidState(Msg(N_("The offer is already cancelled.")))
        if offer.hold_id is not None:
            ledger.release_hold(offer.hold_id)
        offer.hold_id = None
        offer.remaining = 0
        offer.status = "cancelled"
        offer.cancelled_at = now()
        db.session.flush()
    return offer


def _register_jobs() -> None:
    from ..operators.jobs import due_job

    due_job("expire_loan_requests")(expire_due_requests)


_register_jobs()
