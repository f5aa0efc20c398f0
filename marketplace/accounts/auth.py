"""Who is calling: Bearer tokens for the API, Flask-Login sessions for pages."""

from __future__ import annotations

import hashlib
import secrets

from flask import request
from flask_login import current_user
from sqlalchemy import bindparam, select

from ..errors import Forbidden, Unauthorized
from ..extensions import db, login_manager
from .models import ApiToken, Member

TOKEN_PREFIX = "mkt_"


def new_token_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# Every API request runs this: one statement (the token joined to its member), built once.
_MEMBER_FOR_DIGEST = (
    select(Member)
    .join(ApiToken, ApiToken.member_id == Member.id)
    .where(ApiToken.token_hash == bindparam("digest"), ApiToken.revoked_at.is_(None))
)


def member_for_token(token: str) -> Member | None:
    """The member of a live (not revoked) token."""
    return db.session.execute(_MEMBER_FOR_DIGEST, {"digest": token_digest(token)}).scalar_one_or_none()


def _bearer_token() -> str:
    """The request's Bearer token, or 401."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized()
    return token.strip()


_REVOKED_OR_UNKNOWN = "The Bearer token is not valid or was revoked."


def api_member() -> Member:
    """The member behind the request's Bearer token, or 401."""
    cached = request.environ.get("marketplace.api_member")
    if cached is not None:
        return cached
    member = member_for_token(_bearer_token())
    if member is None:
        raise Unauthorized(_REVOKED_OR_UNKNOWN)
    request.environ["marketplace.api_member"] = member  # per request, never per app context
    return member


# The same check as _MEMBER_FOR_DIGEST, for the member's id only: a read can run it inside its own
# statement (pools.api get_pool: the caller and the pool in one round trip), then admit_api_member_id.
_MEMBER_ID_FOR_DIGEST = (
    select(Member.__table__.c.id)
    .join(ApiToken.__table__, ApiToken.__table__.c.member_id == Member.__table__.c.id)
    .where(ApiToken.__table__.c.token_hash == bindparam("digest"), ApiToken.__table__.c.revoked_at.is_(None))
)


def bearer_digest() -> str:
    """The digest of the request's Bearer token (401 if there is none)."""
    return token_digest(_bearer_token())


def live_token_member_id():
    """The select of the member id of the live token whose digest is the ``digest`` parameter."""
    return _MEMBER_ID_FOR_DIGEST


def admit_api_member_id(member_id: int | None) -> int:
    """The request's caller, as :func:`live_token_member_id` found it (None: 401)."""
    if member_id is None:
        raise Unauthorized(_REVOKED_OR_UNKNOWN)
    request.environ["marketplace.api_member_id"] = member_id
    return member_id


def checks_own_token(view):
    """Mark an API view that checks the Bearer token itself (bearer_digest, live_token_member_id,
    admit_api_member_id): the API blueprint then does not load the member before it (apiutil's
    ``_token_first``). Such a view must refuse a missing or bad token with 401 before anything else."""
    view.checks_own_token = True
    return view


def require_role(member: Member, *roles: str) -> None:
    if member.role not in roles:
        raise Forbidden(f"This needs the role {' or '.join(roles)}.")


def require_operator(member: Member) -> None:
    require_role(member, "operator")


def web_member() -> Member:
    return current_user  # type: ignore[return-value]


@login_manager.user_loader
def load_user(login_id: str) -> Member | None:
    """The member of a session or remember-me cookie, if its sign-in is still current.

    The id is ``member.epoch`` (``Member.get_id``); a cookie from before the
    member's last sign-out carries an older epoch and signs nobody in.
    """
    member_id, dot, epoch = str(login_id).partition(".")
    try:
        member = db.session.get(Member, int(member_id)) if dot else None
    except (TypeError, ValueError):
        return None
    if member is None or epoch != str(member.session_epoch or 0):
        return None
    return member
