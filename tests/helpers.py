"""Helpers shared by the tests: API client, money setup, ledger invariants."""

from __future__ import annotations

import itertools
import json
import re

from marketplace.extensions import db

_seq = itertools.count(1)

PASSWORD = "correct-horse-battery"


def assert_ledger_invariants() -> None:
    """Debits = credits per currency and entry; cached balances = postings; pools' kept totals = pledges."""
    from marketplace.ledger.queries import reconcile, trial_balance
    from marketplace.pools.queries import total_problems

    problems = reconcile() + total_problems()
    assert problems == [], "ledger invariants broken:\n" + "\n".join(problems)
    tb = trial_balance()
    assert tb["balanced"], f"trial balance not balanced: {tb['totals']}"
    for account in tb["accounts"]:
        assert account["balance"] == account["cached_balance"], account


def make_member(role: str = "member", *, verified: bool = True, funds: dict | None = None, name: str | None = None):
    """Create a member through the services, verified, with funded wallets."""
    from marketplace.accounts import services as accounts
    from marketplace.wallet import services as wallet

    n = next(_seq)
    member = accounts.create_member(
        f"user{n}@example.test", PASSWORD, name or f"User {n}", role=role if role != "operator" else "member"
    )
    if role == "operator":
        member = accounts.create_operator(member.email, PASSWORD, member.display_name)
    if verified and member.kyc_status != "verified":
        member.kyc_status = "verified"
        db.session.commit()
    for currency, amount in (funds or {}).items():
        wallet.deposit(member.id, amount, currency)
    return member


def token_for(member) -> str:
    from marketplace.accounts import services as accounts

    secret, _ = accounts.issue_token(member.id)
    return secret


def wallet_of(member_id: int, currency: str = "EUR") -> dict:
    from marketplace.wallet import services as wallet

    for row in wallet.balances(member_id):
        if row["currency"] == currency:
            return row
    return {"currency": currency, "balance": 0, "held": 0, "available": 0}


class ApiClient:
    """Thin JSON client over Flask's test client with Bearer tokens."""

    def __init__(self, client):
        self.client = client

    def _headers(self, token, headers):
        out = {"Accept": "application/json"}
        if token:
            out["Authorization"] = f"Bearer {token}"
        out.update(headers or {})
        return out

    def request(self, method, path, *, token=None, json_body=None, data=None, headers=None, query=None):
        kwargs = {"headers": self._headers(token, headers), "query_string": query}
        if json_body is not None:
            kwargs["data"] = json.dumps(json_body)
            kwargs["content_type"] = "application/json"
        elif data is not None:
            kwargs["data"] = data
            kwargs["content_type"] = "application/json"
        return self.client.open(path, method=method, **kwargs)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, json=None, **kw):  # noqa: A002 - mirrors requests
        return self.request("POST", path, json_body=json, **kw)

    def put(self, path, json=None, **kw):  # noqa: A002
        return self.request("PUT", path, json_body=json, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


def assert_error(response, status: int, reason: str | None = None, field: str | None = None) -> dict:
    """The response is the API.md error body with this status (and reason/field)."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    body = response.get_json()
    assert body is not None, response.get_data(as_text=True)
    assert set(body) >= {"code", "status", "message", "reason", "errors"}, body
    assert body["code"] == status
    assert isinstance(body["message"], str) and body["message"]
    if reason is not None:
        assert body["reason"] == reason, body
    if field is not None:
        assert field in body["errors"], body
    return body


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    assert match, "no CSRF token in the page"
    return match.group(1)


def login(client, email: str, password: str = PASSWORD):
    page = client.get("/login")
    token = csrf_token(page.get_data(as_text=True))
    return client.post(
        "/login", data={"email": email, "password": password, "csrf_token": token}, follow_redirects=False
    )


def set_clock(moment) -> None:
    """Freeze the app's clock at ``moment`` (the test clock row, as PUT /api/v1/test-clock writes it)."""
    from marketplace.operators.models import TestClock

    row = db.session.get(TestClock, 1)
    if row is None:
        db.session.add(TestClock(id=1, now=moment))
    else:
        row.now = moment
    db.session.commit()
