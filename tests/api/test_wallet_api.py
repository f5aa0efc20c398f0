"""Wallet API: balances, deposits, withdrawals, history, idempotency."""

from tests.helpers import assert_error, make_member, token_for, wallet_of


def test_deposit_then_withdraw_updates_balances_and_history(api):
    member = make_member()
    token = token_for(member)
    r = api.post("/api/v1/wallet/deposits", {"amount": 10_000, "currency": "EUR"}, token=token)
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["status"] == "succeeded"
    r = api.post("/api/v1/wallet/withdrawals", {"amount": 2_500, "currency": "EUR"}, token=token)
    assert r.status_code == 201, r.get_json()
    body = api.get("/api/v1/wallet", token=token).get_json()
    assert body == {"balances": [{"currency": "EUR", "balance": 7_500, "held": 0, "available": 7_500}]}
    history = api.get("/api/v1/wallet/transactions", token=token)
    rows = history.get_json()
    assert [(t["kind"], t["amount"], t["balance_after"]) for t in rows] == [
        ("withdrawal", -2_500, 7_500),
        ("deposit", 10_000, 10_000),
    ]
    assert "X-Pagination" in history.headers


def test_withdrawal_beyond_available_is_409_and_writes_nothing(api):
    member = make_member(funds={"EUR": 1_000})
    token = token_for(member)
    r = api.post("/api/v1/wallet/withdrawals", {"amount": 1_001, "currency": "EUR"}, token=token)
    assert_error(r, 409, "insufficient_funds")
    assert wallet_of(member.id)["balance"] == 1_000


def test_same_idempotency_key_same_body_replays(api):
    member = make_member()
    token = token_for(member)
    headers = {"Idempotency-Key": "dep-1"}
    first = api.post("/api/v1/wallet/deposits", {"amount": 500, "currency": "EUR"}, token=token, headers=headers)
    second = api.post("/api/v1/wallet/deposits", {"amount": 500, "currency": "EUR"}, token=token, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.get_json() == second.get_json()
    assert wallet_of(member.id)["balance"] == 500
    other = api.post("/api/v1/wallet/deposits", {"amount": 501, "currency": "EUR"}, token=token, headers=headers)
    assert_error(other, 409, "idempotency_key_reused")
    assert wallet_of(member.id)["balance"] == 500


def test_bad_amounts_are_422(api):
    token = token_for(make_member())
    for amount in [0, -1, 10**12 + 1, 1.5, "100", None, True]:
        r = api.post("/api/v1/wallet/deposits", {"amount": amount, "currency": "EUR"}, token=token)
        assert_error(r, 422, field="amount")
    assert_error(
        api.post("/api/v1/wallet/deposits", {"amount": 1, "currency": "XXX"}, token=token), 422, field="currency"
    )
    assert_error(api.post("/api/v1/wallet/deposits", {"currency": "EUR"}, token=token), 422, field="amount")


def test_malformed_json_is_400_and_no_token_is_401(api):
    token = token_for(make_member())
    assert_error(api.post("/api/v1/wallet/deposits", data="{not json", token=token), 400)
    assert_error(api.get("/api/v1/wallet"), 401)
    assert_error(api.get("/api/v1/wallet", token="mkt_nope"), 401)


class _DeadlockError(Exception):
    sqlstate = "40P01"


def _deadlock_once(monkeypatch, calls: list[int]):
    """Make wallet withdrawals do their work, then lose a deadlock, on the first call only."""
    from sqlalchemy.exc import OperationalError

    from marketplace.wallet import services

    real = services.withdraw

    def flaky(*args, **kwargs):
        result = real(*args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("SELECT ... FOR NO KEY UPDATE", {}, _DeadlockError("deadlock detected"))
        return result

    monkeypatch.setattr(services, "withdraw", flaky)


def test_a_deadlock_victim_is_run_again_and_takes_effect_once(api, monkeypatch):
    """PostgreSQL rolls a deadlock victim back whole: the idempotent request runs once more, in a new transaction."""
    from sqlalchemy import func, select

    from marketplace.extensions import db
    from marketplace.ledger.models import IdempotencyRecord, JournalEntry

    member = make_member(funds={"EUR": 1_000})
    token = token_for(member)
    calls: list[int] = []
    _deadlock_once(monkeypatch, calls)
    headers = {"Idempotency-Key": "wd-deadlock"}
    r = api.post("/api/v1/wallet/withdrawals", {"amount": 300, "currency": "EUR"}, token=token, headers=headers)
    assert r.status_code == 201, r.get_json()
    assert len(calls) == 2  # the first attempt's work was rolled back with it
    assert wallet_of(member.id)["balance"] == 700
    withdrawals = select(func.count()).select_from(JournalEntry).where(JournalEntry.kind == "withdrawal")
    assert db.session.execute(withdrawals).scalar_one() == 1
    assert db.session.execute(select(func.count()).select_from(IdempotencyRecord)).scalar_one() == 1
    again = api.post("/api/v1/wallet/withdrawals", {"amount": 300, "currency": "EUR"}, token=token, headers=headers)
    assert again.get_json() == r.get_json()
    assert wallet_of(member.id)["balance"] == 700
