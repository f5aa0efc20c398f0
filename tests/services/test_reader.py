"""The readers of marketplace/reads.py: each thread's autocommit connection for the busiest plain reads,
kept from one request to the next (PostgreSQL only: elsewhere reads join the session's transaction)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from marketplace import reads
from marketplace.accounts.models import ApiToken
from marketplace.clock import now
from marketplace.extensions import db
from tests.api.test_pool_read_memo import make_pool
from tests.helpers import ApiClient, make_member, token_for

pytestmark = pytest.mark.postgres


def _backend_pid(connection) -> int:
    return connection.connection.dbapi_connection.info.backend_pid


def _get_pool(app, token: str, pool_id: int):
    db.session.remove()
    return ApiClient(app.test_client()).get(f"/api/v1/pools/{pool_id}", token=token)


def test_one_reader_serves_request_after_request_in_autocommit(app):
    member = make_member()
    token, pool_id = token_for(member), make_pool(member.id)
    assert _get_pool(app, token, pool_id).status_code == 200
    first = reads.reader()
    for _ in range(3):
        assert _get_pool(app, token, pool_id).status_code == 200
    assert reads.reader() is first
    assert first.connection.dbapi_connection.autocommit is True


def test_the_sessions_connections_stay_transactional(app):
    member = make_member(funds={"EUR": 1_000})
    token, pool_id = token_for(member), make_pool(member.id)
    for _ in range(3):
        assert _get_pool(app, token, pool_id).status_code == 200
    db.session.remove()
    assert db.session.connection().connection.dbapi_connection.autocommit is False
    db.session.rollback()


def test_a_revoked_token_is_refused_by_the_next_read(app):
    member = make_member()
    token, pool_id = token_for(member), make_pool(member.id)
    assert _get_pool(app, token, pool_id).status_code == 200
    db.session.query(ApiToken).filter_by(member_id=member.id).update({"revoked_at": now()})
    db.session.commit()
    assert _get_pool(app, token, pool_id).status_code == 401


def test_a_reader_whose_connection_was_lost_reads_again_on_a_new_one(app):
    member = make_member()
    token, pool_id = token_for(member), make_pool(member.id)
    assert _get_pool(app, token, pool_id).status_code == 200
    lost = reads.reader()
    pid = _backend_pid(lost)
    with db.engine.connect() as other:
        assert other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
    response = _get_pool(app, token, pool_id)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["id"] == pool_id
    assert lost.invalidated or lost.closed  # let go of
    assert _backend_pid(reads.reader()) != pid


def test_a_reader_is_replaced_once_older_than_the_pools_recycle_time(app):
    member = make_member()
    token, pool_id = token_for(member), make_pool(member.id)
    assert _get_pool(app, token, pool_id).status_code == 200
    old = reads.reader()
    connection, held_app, _ = reads._readers.held
    reads._readers.held = (connection, held_app, 0)  # as if pool_recycle seconds had passed
    assert _get_pool(app, token, pool_id).status_code == 200
    assert reads.reader() is not old and old.closed


def test_each_thread_reads_on_its_own_connection(app):
    member = make_member()
    token, pool_id = token_for(member), make_pool(member.id)
    pids, errors = [], []

    def read() -> None:
        try:
            with app.app_context():
                assert _get_pool(app, token, pool_id).status_code == 200
                pids.append(_backend_pid(reads.reader()))
                db.session.remove()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert len(set(pids)) == 3
