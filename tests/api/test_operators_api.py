"""Operators' JSON API: ledger review, KYC, run-due and the test clock (shared/API.md "Operators")."""

import json
from collections import defaultdict

import pytest
from flask import g, request_started
from sqlalchemy import select

from marketplace.extensions import db
from marketplace.operators.models import AuditLog
from tests.helpers import assert_error, make_member, token_for, wallet_of


@pytest.fixture(autouse=True)
def _fresh_g_per_request(app):
    """Each request gets a clean ``g``, as in production.

    The harness keeps one app context pushed for the whole test and Flask reuses
    it for test requests, so ``g`` (which caches the Bearer token's member and
    Flask-Login's user) would otherwise leak from one request into the next.
    """

    def clear(sender, **extra):
        g.__dict__.clear()

    request_started.connect(clear, app)
    yield
    request_started.disconnect(clear, app)


def _wallet_code(member, currency="EUR"):
    return f"member:{member.id}:wallet:{currency}"


def _audit_rows(action):
    return list(db.session.execute(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)).scalars())


def _ledger_fixture(api):
    """Two members with deposits and a withdrawal, in two currencies; an operator."""
    alice = make_member(funds={"EUR": 10_000, "GBP": 3_000})
    bob = make_member(funds={"EUR": 2_500})
    r = api.post("/api/v1/wallet/withdrawals", {"amount": 1_000, "currency": "EUR"}, token=token_for(alice))
    assert r.status_code == 201, r.get_json()
    operator = make_member("operator")
    return alice, bob, token_for(operator)


def test_entries_newest_first_balanced_and_paginated(api):
    alice, bob, op = _ledger_fixture(api)
    r = api.get("/api/v1/ledger/entries", token=op)
    assert r.status_code == 200, r.get_json()
    entries = r.get_json()
    # A withdrawal is two entries: wallet -> pending payouts, then (once the provider confirms) out.
    assert [e["kind"] for e in entries] == ["refund", "withdrawal", "deposit", "deposit", "deposit"]
    ids = [e["id"] for e in entries]
    assert ids == sorted(ids, reverse=True)
    for entry in entries:
        assert set(entry) >= {"id", "created_at", "kind", "memo", "postings"}
        assert entry["created_at"].endswith("Z")
        sums = defaultdict(int)
        for posting in entry["postings"]:
            assert set(posting) >= {"account", "currency", "amount"}
            assert posting["amount"] != 0
            sums[posting["currency"]] += posting["amount"]
        assert len(entry["postings"]) >= 2
        assert all(total == 0 for total in sums.values()), entry
    page = json.loads(r.headers["X-Pagination"])
    assert page["total"] == 5 and page["total_pages"] == 1

    r = api.get("/api/v1/ledger/entries", token=op, query={"page": 2, "page_size": 3})
    assert [e["id"] for e in r.get_json()] == ids[3:]
    assert json.loads(r.headers["X-Pagination"])["total_pages"] == 2


def test_entries_filter_by_account_and_kind(api):
    alice, bob, op = _ledger_fixture(api)
    by_account = api.get("/api/v1/ledger/entries", token=op, query={"account": _wallet_code(bob)}).get_json()
    assert len(by_account) == 1
    assert any(p["account"] == _wallet_code(bob) and p["amount"] == -2_500 for p in by_account[0]["postings"])

    alice_eur = api.get("/api/v1/ledger/entries", token=op, query={"account": _wallet_code(alice)}).get_json()
    assert [e["kind"] for e in alice_eur] == ["withdrawal", "deposit"]

    withdrawals = api.get("/api/v1/ledger/entries", token=op, query={"kind": "withdrawal"}).get_json()
    assert [e["kind"] for e in withdrawals] == ["withdrawal"]
    posting = next(p for p in withdrawals[0]["postings"] if p["account"] == _wallet_code(alice))
    assert posting["amount"] == 1_000  # a debit lowers the credit-normal wallet

    both = api.get("/api/v1/ledger/entries", token=op, query={"account": _wallet_code(bob), "kind": "withdrawal"})
    assert both.status_code == 200 and both.get_json() == []
    assert api.get("/api/v1/ledger/entries", token=op, query={"kind": "no-such-kind"}).get_json() == []


def test_ledger_endpoints_need_an_operator(api):
    member = make_member(funds={"EUR": 100})
    token = token_for(member)
    for path in (
        "/api/v1/ledger/entries",
        f"/api/v1/ledger/accounts/{_wallet_code(member)}",
        "/api/v1/ledger/trial-balance",
    ):
        assert_error(api.get(path, token=token), 403, "forbidden")
        assert_error(api.get(path), 401, "unauthorized")


def test_account_statement_balance_and_postings(api):
    alice, bob, op = _ledger_fixture(api)
    r = api.get(f"/api/v1/ledger/accounts/{_wallet_code(alice)}", token=op)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["code"] == _wallet_code(alice)
    assert body["currency"] == "EUR"
    assert body["balance"] == 9_000 == wallet_of(alice.id)["balance"]
    assert [(p["kind"], p["amount"], p["balance_after"]) for p in body["postings"]] == [
        ("withdrawal", 1_000, 9_000),
        ("deposit", -10_000, 10_000),
    ]
    assert "X-Pagination" in r.headers

    gbp = api.get(f"/api/v1/ledger/accounts/{_wallet_code(alice, 'GBP')}", token=op).get_json()
    assert gbp["balance"] == 3_000 and len(gbp["postings"]) == 1


def test_unknown_account_is_404_json(api):
    op = token_for(make_member("operator"))
    body = assert_error(api.get("/api/v1/ledger/accounts/member:999:wallet:EUR", token=op), 404, "not_found")
    assert "member:999:wallet:EUR" in body["message"]


def test_trial_balance_debits_equal_credits_and_matches_wallets(api):
    alice, bob, op = _ledger_fixture(api)
    r = api.get("/api/v1/ledger/trial-balance", token=op)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert set(body["totals"]) == {"EUR", "GBP"}
    for currency, totals in body["totals"].items():
        assert totals["debits"] == totals["credits"], (currency, totals)
    # Deposits credit the wallets; the payout credits the provider's cash.
    assert body["totals"]["EUR"]["credits"] == 10_000 + 2_500 + 1_000 + 1_000
    accounts = {a["code"]: a for a in body["accounts"]}
    assert accounts[_wallet_code(alice)]["balance"] == wallet_of(alice.id)["balance"] == 9_000
    assert accounts[_wallet_code(bob)]["balance"] == wallet_of(bob.id)["balance"] == 2_500
    assert accounts[_wallet_code(alice, "GBP")]["balance"] == wallet_of(alice.id, "GBP")["balance"] == 3_000
    for currency in ("EUR", "GBP"):
        rows = [a for a in body["accounts"] if a["currency"] == currency]
        assert sum(a["debits"] for a in rows) == body["totals"][currency]["debits"]
        assert sum(a["credits"] for a in rows) == body["totals"][currency]["credits"]


def test_kyc_by_operator_is_audited(api):
    member = make_member(verified=False)
    operator = make_member("operator")
    op = token_for(operator)
    r = api.post(f"/api/v1/members/{member.id}/kyc", {"status": "verified"}, token=op)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["kyc_status"] == "verified" and r.get_json()["id"] == member.id
    me = api.get("/api/v1/members/me", token=token_for(member)).get_json()
    assert me["kyc_status"] == "verified"
    rows = _audit_rows("kyc.set_status")
    assert len(rows) == 1
    assert rows[0].actor_id == operator.id
    assert (rows[0].target_type, rows[0].target_id) == ("member", str(member.id))
    assert json.loads(rows[0].details) == {"from": "unverified", "to": "verified"}


def test_kyc_refusals(api):
    member = make_member(verified=False)
    other = make_member()
    op = token_for(make_member("operator"))
    assert_error(
        api.post(f"/api/v1/members/{member.id}/kyc", {"status": "verified"}, token=token_for(other)), 403, "forbidden"
    )
    assert_error(api.post(f"/api/v1/members/{member.id}/kyc", {"status": "verified"}), 401)
    assert_error(api.post("/api/v1/members/999999/kyc", {"status": "verified"}, token=op), 404, "not_found")
    assert_error(api.post(f"/api/v1/members/{member.id}/kyc", {"status": "approved"}, token=op), 422, field="status")
    assert_error(api.post(f"/api/v1/members/{member.id}/kyc", {}, token=op), 422, field="status")
    assert api.get("/api/v1/members/me", token=token_for(member)).get_json()["kyc_status"] == "unverified"
    assert _audit_rows("kyc.set_status") == []


def test_run_due_operator_only_and_audited(api):
    operator = make_member("operator")
    member = make_member()
    r = api.post("/api/v1/operations/run-due", token=token_for(operator))
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["ran_at"].endswith("Z") and isinstance(body["jobs"], dict)
    assert_error(api.post("/api/v1/operations/run-due", token=token_for(member)), 403, "forbidden")
    assert_error(api.post("/api/v1/operations/run-due"), 401, "unauthorized")
    rows = _audit_rows("operations.run_due")
    assert [row.actor_id for row in rows] == [operator.id]


def test_test_clock_moves_forward_only(api, app):
    operator = make_member("operator")
    op = token_for(operator)
    r = api.put("/api/v1/test-clock", {"now": "2031-03-01T09:30:00Z"}, token=op)
    assert r.status_code == 200, r.get_json()
    assert r.get_json() == {"now": "2031-03-01T09:30:00Z"}
    assert api.get("/api/v1/test-clock", token=op).get_json() == {"now": "2031-03-01T09:30:00Z"}
    # Everything that reads "now" sees it: a deposit made now is dated then.
    member = make_member(funds={"EUR": 100})
    entries = api.get("/api/v1/ledger/entries", token=op, query={"account": _wallet_code(member)}).get_json()
    assert entries[0]["created_at"] == "2031-03-01T09:30:00Z"

    assert_error(api.put("/api/v1/test-clock", {"now": "2031-02-28T00:00:00Z"}, token=op), 409, "invalid_state", "now")
    assert api.get("/api/v1/test-clock", token=op).get_json() == {"now": "2031-03-01T09:30:00Z"}
    assert_error(
        api.put("/api/v1/test-clock", {"now": "2031-04-01T00:00:00Z"}, token=token_for(member)), 403, "forbidden"
    )
    assert_error(api.put("/api/v1/test-clock", {"now": "2031-04-01T00:00:00Z"}), 401)
    assert_error(api.put("/api/v1/test-clock", {"now": "not a time"}, token=op), 422, field="now")
    assert [json.loads(row.details)["to"] for row in _audit_rows("test_clock.set")] == ["2031-03-01T09:30:00+00:00"]

    app.config["TEST_CLOCK"] = False
    try:
        assert_error(api.put("/api/v1/test-clock", {"now": "2032-01-01T00:00:00Z"}, token=op), 404)
        assert_error(api.get("/api/v1/test-clock", token=op), 404)
    finally:
        app.config["TEST_CLOCK"] = True
    assert api.get("/api/v1/test-clock", token=op).get_json() == {"now": "2031-03-01T09:30:00Z"}
