"""JSON API for operators: ledger review, run-due, the test clock."""

from flask import abort, current_app, request

from ..accounts.auth import api_member, require_operator
from ..apiutil import BEARER, ApiBlueprint, page_slice
from ..clock import now
from ..errors import NotFound
from ..ledger import queries
from ..ledger.services import find_account
from . import jobs, services
from .schemas import AccountOut, ClockIn, ClockOut, EntryFilterIn, EntryOut, RunDueOut, TrialBalanceOut

bp = ApiBlueprint("operators_api", __name__, url_prefix="/api/v1", description="Operators: ledger and operations")


def _operator():
    member = api_member()
    require_operator(member)
    return member


@bp.get("/ledger/entries")
@bp.arguments(EntryFilterIn, location="query")
@bp.response(200, EntryOut(many=True))
@bp.paginate()
@bp.doc(security=BEARER)
def entries(filters, pagination_parameters):
    """Journal entries, newest first; filter by account code, kind, dates."""
    _operator()
    offset, limit = page_slice(pagination_parameters, queries.count_journal_entries(**filters))
    return queries.journal_entries(**filters, offset=offset, limit=limit)


@bp.get("/ledger/accounts/<path:code>")
@bp.response(200, AccountOut)
@bp.paginate()
@bp.doc(security=BEARER)
def account(code, pagination_parameters):
    """An account's balance and its postings, newest first."""
    _operator()
    if "\x00" in code:  # no code holds NUL, and PostgreSQL cannot even compare a text with one
        raise NotFound(f"No account with code {code!r}.")
    acct = find_account(code)
    offset, limit = page_slice(pagination_parameters, queries.count_account_postings(acct.id))
    postings = [
        {
            "id": p.id,
            "entry_id": e.id,
            "created_at": e.created_at,
            "kind": e.kind,
            "memo": e.memo,
            "account": acct.code,
            "currency": p.currency,
            "amount": p.amount,
            "balance_after": p.balance_after,
        }
        for p, e in queries.account_postings(acct.id, offset=offset, limit=limit)
    ]
    return {
        "code": acct.code,
        "currency": acct.currency,
        "kind": acct.kind,
        "normal_side": acct.normal_side,
        "balance": acct.balance,
        "held": acct.held,
        "postings": postings,
    }


@bp.get("/ledger/trial-balance")
@bp.response(200, TrialBalanceOut)
@bp.doc(security=BEARER)
def trial_balance():
    """Every account's debits and credits; totals per currency."""
    _operator()
    return queries.trial_balance()


@bp.post("/operations/run-due")
@bp.response(200, RunDueOut)
@bp.doc(security=BEARER)
def run_due():
    """Run everything due now: close pools, expire requests, collect installments."""
    operator = _operator()
    report = jobs.run_due()
    services.record_audit_committed(
        operator.id, "operations.run_due", "operations", "", report, ip=request.remote_addr or ""
    )
    return report


@bp.put("/test-clock")
@bp.arguments(ClockIn)
@bp.response(200, ClockOut)
@bp.errors(404, 409)
@bp.doc(security=BEARER)
def set_clock(data):
    """Tests only (MARKETPLACE_TEST_CLOCK=1): move the app's clock forward."""
    if not current_app.config.get("TEST_CLOCK"):
        abort(404)
    operator = _operator()
    services.set_test_clock(operator.id, data["now"], ip=request.remote_addr or "")
    return {"now": now()}


@bp.get("/test-clock")
@bp.response(200, ClockOut)
@bp.errors(404)
@bp.doc(security=BEARER)
def get_clock():
    """Tests only: the app's current time."""
    if not current_app.config.get("TEST_CLOCK"):
        abort(404)
    return {"now": now()}
