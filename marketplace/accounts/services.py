"""Members: sign-up, sign-in, API tokens, KYC."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from ..clock import now
from ..db import transaction
from ..errors import AlreadyExists, Forbidden, NotFound, Unauthorized, ValidationFailed
from ..extensions import db
from ..texts import N_, Msg
from .auth import new_token_secret, token_digest
from .models import ApiToken, Member

PASSWORD_METHOD = "scrypt"
# A hash to compare against when the e-mail is unknown, so sign-in takes as
# long for unknown addresses as for wrong passwords.
_DUMMY_HASH = generate_password_hash("not-a-real-password", method=PASSWORD_METHOD)


def normalize_email(email: str) -> str:
    return email.strip().lower()


def find_by_email(email: str) -> Member | None:
    return db.session.execute(select(Member).where(Member.email == normalize_email(email))).scalar_one_or_none()


def get_member(member_id: int) -> Member:
    member = db.session.get(Member, member_id)
    if member is None:
        raise NotFound(Msg(N_("No member %(id)s."), id=member_id))
    return member


def create_member(email: str, password: str, display_name: str, role: str = "member") -> Member:
    email = normalize_email(email)
    with transaction():
        if find_by_email(email) is not None:
            raise AlreadyExists(
                Msg(N_("A member with this e-mail address already exists.")),
                errors={"email": [Msg(N_("already registered"))]},
            )
        member = Member(
            email=email,
            password_hash=generate_password_hash(password, method=PASSWORD_METHOD),
            display_name=display_name.strip(),
            role=role,
            kyc_status="unverified",
            created_at=now(),
        )
        db.session.add(member)
        try:
            db.session.flush()
        except IntegrityError as exc:
            raise AlreadyExists(
                Msg(N_("A member with this e-mail address already exists.")),
                errors={"email": [Msg(N_("already registered"))]},
            ) from exc
    return member


def authenticate(email: str, password: str) -> Member:
    member = find_by_email(email)
    if member is None:
        check_password_hash(_DUMMY_HASH, password)
        raise Unauthorized(Msg(N_("The e-mail address or password is wrong.")), reason="bad_credentials")
    if not check_password_hash(member.password_hash, password):
        raise Unauthorized(Msg(N_("The e-mail address or password is wrong.")), reason="bad_credentials")
    return member


def issue_token(member_id: int, name: str = "API token") -> tuple[str, ApiToken]:
    """Create a token; the secret is returned once and only its digest kept."""
    secret = new_token_secret()
    with transaction():
        token = ApiToken(
            member_id=member_id,
            name=(name or "API token")[:80],
            prefix=secret[:10],
            token_hash=token_digest(secret),
            created_at=now(),
        )
        db.session.add(token)
        db.session.flush()
    return secret, token


def list_tokens(member_id: int) -> list[ApiToken]:
    return list(
        db.session.execute(
            select(ApiToken).where(ApiToken.member_id == member_id).order_by(ApiToken.id.desc())
        ).scalars()
    )


def revoke_token(member_id: int, token_id: int) -> ApiToken:
    with transaction():
        token = db.session.get(ApiToken, token_id)
        if token is None or token.member_id != member_id:
            raise NotFound(Msg(N_("No token %(id)s."), id=token_id))
        if token.revoked_at is None:
            token.revoked_at = now()
    return token


def end_sessions(member_id: int) -> None:
    """Sign the member out of every browser: each session and remember-me cookie issued so far stops working."""
    with transaction():
        db.session.execute(update(Member).where(Member.id == member_id).values(session_epoch=Member.session_epoch + 1))


def set_locale(member_id: int, locale: str | None) -> Member:
    """The member's language for pages and notifications' links (None: follow the browser)."""
    from ..i18n import LANGUAGES

    if locale is not None and locale not in LANGUAGES:
        raise ValidationFailed(errors={"locale": [Msg(N_("one of %(choices)s"), choices=list(LANGUAGES))]})
    with transaction():
        member = get_member(member_id)
        member.locale = locale
    return member


def set_kyc_status(operator_id: int, member_id: int, status: str, *, ip: str = "") -> Member:
    from ..operators.services import record_audit

    with transaction():
        operator = get_member(operator_id)
        if not operator.is_operator:
            raise Forbidden(Msg(N_("Only operators review KYC.")))
        member = db.session.execute(select(Member).where(Member.id == member_id).with_for_update()).scalar_one_or_none()
        if member is None:
            raise NotFound(Msg(N_("No member %(id)s."), id=member_id))
        previous = member.kyc_status
        member.kyc_status = status
        member.kyc_reviewed_at = now()
        record_audit(
            operator_id,
            "kyc.set_status",
            "member",
            member_id,
            {"from": previous, "to": status},
            ip=ip,
        )
    return member


def create_operator(email: str, password: str, display_name: str = "Operator") -> Member:
    with transaction():
        member = find_by_email(email)
        if member is None:
            member = create_member(email, password, display_name, role="member")
        member.role = "operator"
        member.kyc_status = "verified"
        member.password_hash = generate_password_hash(password, method=PASSWORD_METHOD)
    return member


def members_by_kyc(status: str | None = None, limit: int = 200) -> list[Member]:
    query = select(Member).order_by(Member.created_at.desc(), Member.id.desc()).limit(limit)
    if status:
        query = query.where(Member.kyc_status == status)
    return list(db.session.execute(query).scalars())


def count_members() -> int:
    return db.session.execute(select(func.count(Member.id))).scalar_one()
