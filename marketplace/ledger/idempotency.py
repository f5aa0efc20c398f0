"""``Idempotency-Key`` for API commands that move or hold money.

The wrapper runs the whole command in one transaction that starts by
inserting the key's record: a concurrent request with the same key blocks on
the unique index until the first commits, then replays the stored response.
The same key with a different body is 409 ``idempotency_key_reused``.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import logging

from flask import Response, request
from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError

from ..clock import now
from ..db import transaction
from ..errors import IdempotencyKeyReused, ValidationFailed
from ..extensions import db
from .models import IdempotencyRecord
from .services import _pg_cursor, _pg_fetch

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"


def request_fingerprint() -> str:
    raw = request.get_data(cache=True)
    try:
        body = json.dumps(json.loads(raw or b"null"), sort_keys=True, separators=(",", ":"))
    except (ValueError, RecursionError):  # not JSON: the view answers 400; hash the raw bytes
        body = raw.decode("utf-8", "replace")
    text = f"{request.method} {request.path}\n{body}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def idempotency_key() -> str | None:
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not 1 <= len(key) <= 255:
        raise ValidationFailed(errors={HEADER: ["Idempotency-Key must be 1 to 255 characters."]})
    if "\x00" in key:  # the key is stored, and PostgreSQL text cannot hold NUL
        raise ValidationFailed(errors={HEADER: ["Idempotency-Key must not contain NUL characters."]})
    return key


def _replay(record, fingerprint: str) -> Response:
    if record.request_hash != fingerprint:
        raise IdempotencyKeyReused()
    response = Response(record.response_body, status=record.status_code, mimetype="application/json")
    response.headers["Idempotent-Replayed"] = "true"
    return response


# Plain statements on the table, built once: every command sent with a key runs them.
_records = IdempotencyRecord.__table__
_FIND = select(_records.c.request_hash, _records.c.status_code, _records.c.response_body).where(
    _records.c.member_id == bindparam("member_id"), _records.c.key == bindparam("key")
)
_FINISH = (
    update(_records)
    .where(_records.c.id == bindparam("record_id"))
    .values(status_code=bindparam("final_status"), response_body=bindparam("final_body"))
)
_FORGET = delete(_records).where(_records.c.id == bindparam("record_id"))


@functools.cache
def _claim_statement(dialect: str):
    """``INSERT … ON CONFLICT (member_id, key) DO NOTHING RETURNING id``: the key's id, or no row if taken.

    One statement where a lookup and an insert were two. On PostgreSQL it waits,
    like the insert did, while another transaction holds the same key uncommitted.
    """
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(_records).on_conflict_do_nothing(index_elements=["member_id", "key"]).returning(_records.c.id)


def _find(member_id: int, key: str):
    return db.session.execute(_FIND, {"member_id": member_id, "key": key}).first()


# PostgreSQL runs the claim and the answer's update as plain driver SQL (prepared), as the ledger's
# postings do: every command sent with a key runs both, and SQLAlchemy's statement machinery was most
# of their cost.
_PG_CLAIM = (
    "INSERT INTO idempotency_records (member_id, key, request_hash, status_code, response_body, created_at) "
    "VALUES (%s, %s::varchar, %s::varchar, 0, '', %s) ON CONFLICT (member_id, key) DO NOTHING RETURNING id"
)
_PG_FINISH = "UPDATE idempotency_records SET status_code = %s::integer, response_body = %s::text WHERE id = %s"


def _claim(member_id: int, key: str, fingerprint: str) -> int | None:
    """Record the key for this command (status 0 until it answers); None if the member already used it."""
    connection = db.session.connection()
    if connection.dialect.name == "postgresql":
        rows = _pg_fetch(connection, _PG_CLAIM, (member_id, key, fingerprint, now()), "idempotency.claim")
        return rows[0][0] if rows else None
    statement = _claim_statement(connection.dialect.name)
    values = {
        "member_id": member_id,
        "key": key,
        "request_hash": fingerprint,
        "status_code": 0,
        "response_body": "",
        "created_at": now(),
    }
    return db.session.execute(statement, values).scalar_one_or_none()


def _finish(record_id: int, status: int, body: str) -> None:
    """Store the command's answer in its claimed record."""
    connection = db.session.connection()
    if connection.dialect.name == "postgresql":
        cursor = _pg_cursor(connection, "idempotency.finish")
        try:
            cursor.execute(_PG_FINISH, (status, body, record_id), prepare=True)
        except connection.dialect.loaded_dbapi.Error as exc:
            connection._handle_dbapi_exception(exc, _PG_FINISH, (status, body, record_id), None, None)
            raise  # not reached: the handler raises the wrapped error
        return
    connection.execute(_FINISH, {"record_id": record_id, "final_status": status, "final_body": body})


def idempotent(view):
    """Decorate an API view (outside flask-smorest's decorators).

    The OpenAPI document gets the ``Idempotency-Key`` header (see apiutil).
    """

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        from ..accounts.auth import api_member

        key = idempotency_key()
        if key is None:
            return view(*args, **kwargs)
        member = api_member()
        member_id = member.id
        fingerprint = request_fingerprint()
        for attempt in range(1, RETRIES + 1):
            try:
                return _run_once(view, args, kwargs, member_id, key, fingerprint)
            except OperationalError as exc:
                # PostgreSQL chose this transaction as a deadlock (or serialization) victim: it was
                # rolled back whole, nothing of it is left, so run it again, as PostgreSQL advises.
                if getattr(exc.orig, "sqlstate", None) not in RETRYABLE or attempt == RETRIES:
                    raise
                db.session.rollback()
                log.warning("retrying %s after %s (attempt %d)", request.path, exc.orig.sqlstate, attempt)
        raise AssertionError("not reached")  # pragma: no cover

    wrapper._apidoc = {**copy.deepcopy(getattr(view, "_apidoc", {})), "idempotent": True}
    return wrapper


RETRIES = 3
RETRYABLE = {"40P01", "40001"}  # deadlock_detected, serialization_failure


def _run_once(view, args, kwargs, member_id: int, key: str, fingerprint: str):
    """One attempt of an idempotent request: claim the key, run the view, store its answer; one transaction."""
    try:
        with transaction():
            record_id = _claim(member_id, key, fingerprint)  # waits here if another request holds this key
            if record_id is None:  # the member used this key before: answer as the first time
                existing = _find(member_id, key)
                if existing is None:  # a committed record is never deleted, so this cannot happen
                    raise RuntimeError(f"idempotency key of member {member_id} taken but not found")
                return _replay(existing, fingerprint)
            response = view(*args, **kwargs)
            if response.status_code < 400:
                _finish(record_id, response.status_code, response.get_data(as_text=True))
            else:
                db.session.execute(_FORGET, {"record_id": record_id})
        return response
    except IntegrityError:
        db.session.rollback()
        existing = _find(member_id, key)
        if existing is None:
            raise
        return _replay(existing, fingerprint)
