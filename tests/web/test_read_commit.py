"""A successful GET ends its transaction with COMMIT (db.end_reads_with_commit): on PostgreSQL a
ROLLBACK would make psycopg drop every prepared statement of the connection. Anything else — an
error answer, another method, pending changes — still ends with the usual rollback.

Runs on SQLite and (with TEST_DATABASE_URL) on PostgreSQL.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import event, select

from marketplace.accounts.models import Member
from marketplace.db import finish_read
from marketplace.extensions import db
from tests.api.test_pool_read_memo import make_pool
from tests.helpers import make_member
from tests.web.test_pool_pages import browser, signed_in


@contextmanager
def ends():
    """The COMMITs and ROLLBACKs SQLAlchemy sends while the block runs."""
    seen: list[str] = []
    engine = db.engine
    listeners = {name: (lambda conn, _name=name: seen.append(_name)) for name in ("commit", "rollback")}
    for name, listener in listeners.items():
        event.listen(engine, name, listener)
    try:
        yield seen
    finally:
        for name, listener in listeners.items():
            event.remove(engine, name, listener)


def request(client, method: str, path: str, **kwargs):
    db.session.remove()  # as a real request starts: no session yet
    with ends() as seen:
        response = client.open(path, method=method, **kwargs)
    return response.status_code, seen


@pytest.mark.parametrize("path", ["/pools", "/wallet", "/pledges", "/settings", "/notifications"])
def test_a_members_page_ends_with_commit(app, path):
    member = make_member(funds={"EUR": 10_000})
    client = signed_in(app, member)
    status, seen = request(client, "GET", path)
    assert status == 200
    assert seen == ["commit"]


def test_a_visitors_pool_page_and_the_api_read_end_with_commit_or_need_no_transaction(app):
    pool_id = make_pool(make_member().id)
    status, seen = request(browser(app), "GET", f"/pools/{pool_id}")
    assert status == 200 and "rollback" not in seen


def test_an_error_answer_ends_with_rollback(app):
    client = signed_in(app, make_member())
    status, seen = request(client, "GET", "/pools/999999")
    assert status == 404
    assert "commit" not in seen


def test_a_refused_form_ends_with_rollback(app):
    client = signed_in(app, make_member())
    status, seen = request(client, "POST", "/pools/new", data={"title": "x"})  # no CSRF token
    assert status == 400
    assert "commit" not in seen


def test_a_read_with_pending_changes_is_not_committed(app):
    member_id = make_member(name="Before").id
    db.session.remove()
    member = db.session.get(Member, member_id)
    member.display_name = "Pending"  # a change nobody committed: a read must never commit it
    finish_read()
    db.session.rollback()
    db.session.remove()
    assert db.session.execute(select(Member.display_name).where(Member.id == member_id)).scalar_one() == "Before"
