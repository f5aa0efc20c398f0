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

from flask import Response, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..clock import now
from ..db import transaction
from ..errors import IdempotencyKeyReused, ValidationFailed
from ..extensions import db
from .models import IdempotencyRecord

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


def _replay(record: IdempotencyRecord, fingerprint: str) -> Response:
    if record.request_hash != fingerprint:
        raise IdempotencyKeyReused()
    response = Response(record.response_body, status=record.status_code, mimetype="application/json")
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _find(member_id: int, key: str) -> IdempotencyRecord | None:
    return db.session.execute(
        select(IdempotencyRecord).where(IdempotencyRecord.member_id == member_id, IdempotencyRecord.key == key)
    ).scalar_one_or_none()


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
        existing = _find(member_id, key)
        if existing is not None:
            return _replay(existing, fingerprint)
        try:
            with transaction():
                record = IdempotencyRecord(
                    member_id=member_id,
                    key=key,
                    request_hash=fingerprint,
                    status_code=0,
                    response_body="",
                    created_at=now(),
                )
                db.session.add(record)
                db.session.flush()  # waits here if another request holds this key
                response = view(*args, **kwargs)
                if response.status_code < 400:
                    record.status_code = response.status_code
                    record.response_body = response.get_data(as_text=True)
                    db.session.flush()
                else:
                    db.session.delete(record)
                    db.session.flush()
            return response
        except IntegrityError:
            db.session.rollback()
            existing = _find(member_id, key)
            if existing is None:
                raise
            return _replay(existing, fingerprint)

    wrapper._apidoc = {**copy.deepcopy(getattr(view, "_apidoc", {})), "idempotent": True}
    return wrapper
