"""Provider calls that must wait until the database has committed.

A service that decides money must move at the provider (capture or cancel a
card authorization, send a refund) first commits that decision as a row in a
"due" state, so no provider call ever runs while it holds row locks. The call
then runs right after the commit: at once when the service owned the
transaction, after the response when a request (e.g. the API's idempotency
wrapper) owns it. Whatever a crash or an unreachable provider leaves due is
picked up by the run-due sweep, because the due rows themselves are the queue.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import after_this_request, has_request_context

from ..extensions import db

log = logging.getLogger(__name__)

_DEPTH_KEY = "marketplace_uow_depth"  # db.transaction()'s nesting counter


def in_outer_transaction() -> bool:
    """True while a caller's ``transaction()`` is still open (our writes are not committed yet)."""
    return db.session().info.get(_DEPTH_KEY, 0) > 0


def _run_safely(work: Callable[[], object]) -> None:
    try:
        work()
    except Exception:  # noqa: BLE001 - the rows stay due; the run-due sweep retries them
        log.exception("Deferred payment work failed; the run-due sweep will retry it")
        db.session.rollback()


def run_after_commit(work: Callable[[], object]) -> None:
    """Run ``work`` once the current transaction has committed (see the module docstring)."""
    if not in_outer_transaction():
        _run_safely(work)
        return
    if has_request_context():

        @after_this_request
        def _after(response):
            _run_safely(work)
            return response

        return
    log.info("Deferred payment work left for the run-due sweep (no request to run it after)")
