"""Comment threads on pools and loan requests; reviews only from real buyers."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from ..clock import now
from ..db import transaction
from ..errors import AlreadyExists, Forbidden, InvalidState, NotFound, ValidationFailed
from ..extensions import db
from ..texts import N_, Msg, by_status
from .models import Comment, Review

MAX_COMMENT = 2000
MAX_REVIEW = 4000


def _target_exists(target_type: str, target_id: int) -> bool:
    if target_type == "pool":
        from ..pools.models import Pool

        return db.session.get(Pool, target_id) is not None
    if target_type == "loan_request":
        try:
            from ..lending.models import LoanRequest  # type: ignore[attr-defined]
        except ImportError:
            return False
        return db.session.get(LoanRequest, target_id) is not None
    return False


_NO_TARGET = {"pool": N_("No pool %(id)s."), "loan_request": N_("No loan request %(id)s.")}


def _no_target(target_type: str, target_id: int) -> Msg | str:
    return by_status(_NO_TARGET, target_type, f"No {target_type.replace('_', ' ')} {target_id}.", id=target_id)


def _clean_body(body: str, limit: int) -> str:
    text = (body or "").strip()
    if not text:
        raise ValidationFailed(Msg(N_("Write something first.")), errors={"body": [Msg(N_("must not be empty"))]})
    if "\x00" in text:
        raise ValidationFailed(
            Msg(N_("The text contains a NUL character.")), errors={"body": [Msg(N_("must not contain NUL characters"))]}
        )
    if len(text) > limit:
        raise ValidationFailed(
            Msg(N_("At most %(limit)s characters."), limit=limit),
            errors={"body": [Msg(N_("at most %(limit)s characters"), limit=limit)]},
        )
    return text


def add_comment(target_type: str, target_id: int, author_id: int, body: str) -> Comment:
    text = _clean_body(body, MAX_COMMENT)
    with transaction():
        if not _target_exists(target_type, target_id):
            raise NotFound(_no_target(target_type, target_id))
        comment = Comment(
            target_type=target_type, target_id=target_id, author_id=author_id, body=text, created_at=now()
        )
        db.session.add(comment)
        db.session.flush()
    return comment


def comments(target_type: str, target_id: int, *, offset: int = 0, limit: int | None = 100) -> list[Comment]:
    if not _target_exists(target_type, target_id):
        raise NotFound(_no_target(target_type, target_id))
    query = (
        select(Comment)
        .where(Comment.target_type == target_type, Comment.target_id == target_id)
        .order_by(Comment.id)
        .offset(offset)
    )
    if limit is not None:
        query = query.limit(limit)
    return list(db.session.execute(query).scalars())


def count_comments(target_type: str, target_id: int) -> int:
    return db.session.execute(
        select(func.count(Comment.id)).where(Comment.target_type == target_type, Comment.target_id == target_id)
    ).scalar_one()


def add_review(pool_id: int, member_id: int, rating: int, body: str) -> Review:
    """Only a member whose pledge was filled, after delivery, once per pool."""
    from ..pools.models import Pool

    if not isinstance(rating, int) or isinstance(rating, bool) or not 1 <= rating <= 5:
        raise ValidationFailed(errors={"rating": [Msg(N_("must be an integer from 1 to 5"))]})
    text = (body or "").strip()
    if "\x00" in text:
        raise ValidationFailed(errors={"body": [Msg(N_("must not contain NUL characters"))]})
    if len(text) > MAX_REVIEW:
        raise ValidationFailed(errors={"body": [Msg(N_("at most %(limit)s characters"), limit=MAX_REVIEW)]})
    with transaction():
        pool = db.session.get(Pool, pool_id)
        if pool is None:
            raise NotFound(Msg(N_("No pool %(id)s."), id=pool_id))
        if not _was_filled(pool_id, member_id):
            raise Forbidden(Msg(N_("Only members whose pledge was filled in this pool can review its supplier.")))
        if pool.status != "delivered":
            raise InvalidState(Msg(N_("Reviews open once the supplier has delivered.")))
        existing = db.session.execute(
            select(Review.id).where(Review.pool_id == pool_id, Review.member_id == member_id)
        ).scalar_one_or_none()
        if existing is not None:
            raise AlreadyExists(Msg(N_("You already reviewed this pool.")))
        review = Review(
            pool_id=pool_id,
            supplier_id=pool.award_supplier_id,
            member_id=member_id,
            rating=rating,
            body=text,
            created_at=now(),
        )
        db.session.add(review)
        try:
            db.session.flush()
        except IntegrityError as exc:  # a concurrent request stored this member's review first
            raise AlreadyExists(Msg(N_("You already reviewed this pool."))) from exc
    return review


def pool_reviews(pool_id: int) -> list[Review]:
    return list(db.session.execute(select(Review).where(Review.pool_id == pool_id).order_by(Review.id)).scalars())


def _was_filled(pool_id: int, member_id: int) -> bool:
    """The member really bought in this pool: one of their pledges was filled."""
    from ..pools.models import Pledge

    return bool(
        db.session.execute(
            select(func.count(Pledge.id)).where(
                Pledge.pool_id == pool_id, Pledge.member_id == member_id, Pledge.status == "filled"
            )
        ).scalar_one()
    )


def can_review(pool_id: int, member_id: int) -> bool:
    from ..pools.models import Pool

    pool = db.session.get(Pool, pool_id)
    if pool is None or pool.status != "delivered" or not _was_filled(pool_id, member_id):
        return False
    reviewed = db.session.execute(
        select(func.count(Review.id)).where(Review.pool_id == pool_id, Review.member_id == member_id)
    ).scalar_one()
    return not reviewed


def supplier_profile(supplier_id: int) -> dict:
    """A supplier's rating, built only from verified buyers' reviews."""
    from ..accounts.models import Member
    from ..pools.models import Pool

    supplier = db.session.get(Member, supplier_id)
    if supplier is None or supplier.role != "supplier":
        raise NotFound(Msg(N_("No supplier %(id)s."), id=supplier_id))
    count, total = db.session.execute(
        select(func.count(Review.id), func.coalesce(func.sum(Review.rating), 0)).where(
            Review.supplier_id == supplier_id
        )
    ).one()
    reviews = list(
        db.session.execute(
            select(Review).where(Review.supplier_id == supplier_id).order_by(Review.id.desc()).limit(100)
        ).scalars()
    )
    histogram = {star: 0 for star in range(1, 6)}
    for star, n in db.session.execute(
        select(Review.rating, func.count(Review.id)).where(Review.supplier_id == supplier_id).group_by(Review.rating)
    ):
        histogram[int(star)] = int(n)
    won = db.session.execute(
        select(func.count(Pool.id)).where(
            Pool.award_supplier_id == supplier_id, Pool.status.in_(("awarded", "delivered"))
        )
    ).scalar_one()
    delivered = db.session.execute(
        select(func.count(Pool.id)).where(Pool.award_supplier_id == supplier_id, Pool.status == "delivered")
    ).scalar_one()
    from decimal import ROUND_HALF_UP, Decimal

    average = None
    if count:
        average = str((Decimal(int(total)) / Decimal(int(count))).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
    return {
        "id": supplier.id,
        "display_name": supplier.display_name,
        "rating_count": int(count),
        "rating_average": average,
        "histogram": histogram,
        "pools_won": int(won),
        "pools_delivered": int(delivered),
        "reviews": reviews,
    }
