"""Who may do what: a token acts for its own member only; operator endpoints are for operators."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from marketplace.accounts import services as accounts
from marketplace.accounts.models import ApiToken, Member
from marketplace.errors import NotFound
from marketplace.extensions import db
from marketplace.operators.models import AuditLog, TestClock
from tests.helpers import PASSWORD, assert_error, make_member, token_for, wallet_of


def deposit(api, token, amount, currency="EUR", **extra):
    return api.post("/api/v1/wallet/deposits", {"amount": amount, "currency": currency, **extra}, token=token)


# --- wallets -------------------------------------------------------------------------------------


def test_each_token_sees_only_its_own_wallet(api):
    ann, bob = make_member(), make_member()
    ann_token, bob_token = token_for(ann), token_for(bob)
    assert deposit(api, ann_token, 7_000).status_code == 201
    assert deposit(api, bob_token, 300, "GBP").status_code == 201
    assert api.get("/api/v1/wallet", token=ann_token).get_json() == {
        "balances": [{"currency": "EUR", "balance": 7_000, "held": 0, "available": 7_000}]
    }
    assert api.get("/api/v1/wallet", token=bob_token).get_json() == {
        "balances": [{"currency": "GBP", "balance": 300, "held": 0, "available": 300}]
    }


def test_a_deposit_does_not_show_in_another_members_transactions(api):
    ann, bob = make_member(), make_member()
    ann_token, bob_token = token_for(ann), token_for(bob)
    deposit(api, ann_token, 7_000)
    deposit(api, bob_token, 100)
    ann_rows = api.get("/api/v1/wallet/transactions", token=ann_token).get_json()
    bob_rows = api.get("/api/v1/wallet/transactions", token=bob_token)
    assert [r["amount"] for r in ann_rows] == [7_000]
    assert [r["amount"] for r in bob_rows.get_json()] == [100]
    assert '"total": 1' in bob_rows.headers["X-Pagination"]


def test_alternating_tokens_in_one_session_never_mix_callers(api):
    """The caller is looked up per request, never remembered from the last one."""
    ann, bob = make_member(), make_member()
    ann_token, bob_token = token_for(ann), token_for(bob)
    for _ in range(3):
        assert api.get("/api/v1/members/me", token=ann_token).get_json()["id"] == ann.id
        assert api.get("/api/v1/members/me", token=bob_token).get_json()["id"] == bob.id
    deposit(api, bob_token, 50)
    deposit(api, ann_token, 60)
    assert wallet_of(ann.id)["balance"] == 60
    assert wallet_of(bob.id)["balance"] == 50


@pytest.mark.parametrize(
    "query",
    [
        {"member_id": "{bob}"},
        {"member": "{bob}"},
        {"id": "{bob}"},
        {"owner_id": "{bob}"},
        {"account": "wallet:{bob}:EUR"},
    ],
)
def test_query_parameters_cannot_select_another_wallet(api, query):
    ann, bob = make_member(), make_member(funds={"EUR": 9_999})
    ann_token = token_for(ann)
    filled = {k: v.format(bob=bob.id) for k, v in query.items()}
    wallet = api.get("/api/v1/wallet", token=ann_token, query=filled)
    assert wallet.status_code in (200, 422)
    if wallet.status_code == 200:
        assert wallet.get_json() == {"balances": []}
    history = api.get("/api/v1/wallet/transactions", token=ann_token, query=filled)
    assert history.status_code in (200, 422)
    if history.status_code == 200:
        assert history.get_json() == []


@pytest.mark.parametrize("field", ["member_id", "member", "owner_id", "account", "wallet"])
@pytest.mark.parametrize("path", ["/api/v1/wallet/deposits", "/api/v1/wallet/withdrawals"])
def test_body_cannot_name_another_member(api, path, field):
    ann, bob = make_member(funds={"EUR": 1_000}), make_member(funds={"EUR": 1_000})
    r = api.post(path, {"amount": 100, "currency": "EUR", field: bob.id}, token=token_for(ann))
    assert_error(r, 422, "validation_error", field=field)
    assert wallet_of(ann.id)["balance"] == 1_000
    assert wallet_of(bob.id)["balance"] == 1_000


def test_withdrawal_moves_only_the_callers_money(api):
    ann, bob = make_member(funds={"EUR": 1_000}), make_member(funds={"EUR": 5_000})
    r = api.post("/api/v1/wallet/withdrawals", {"amount": 2_000, "currency": "EUR"}, token=token_for(ann))
    assert_error(r, 409, "insufficient_funds")
    assert (
        api.post("/api/v1/wallet/withdrawals", {"amount": 400, "currency": "EUR"}, token=token_for(ann)).status_code
        == 201
    )
    assert wallet_of(ann.id)["balance"] == 600
    assert wallet_of(bob.id)["balance"] == 5_000


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/wallet/{bob}",
        "/api/v1/wallets/{bob}",
        "/api/v1/members/{bob}",
        "/api/v1/members/{bob}/wallet",
        "/api/v1/members/{bob}/tokens",
        "/api/v1/wallet/transactions/{bob}",
    ],
)
def test_there_is_no_path_to_another_members_wallet_or_tokens(api, path):
    ann, bob = make_member(), make_member(funds={"EUR": 100})
    r = api.get(path.format(bob=bob.id), token=token_for(ann))
    assert r.status_code in (404, 405), (path, r.status_code)
    assert "balance" not in r.get_data(as_text=True)


# --- tokens --------------------------------------------------------------------------------------


def test_a_token_is_only_issued_for_the_members_own_password(api):
    make_member()  # user with PASSWORD
    other = accounts.create_member("bob@example.test", "bobs-own-password", "Bob")
    r = api.post("/api/v1/tokens", {"email": other.email, "password": PASSWORD})
    assert_error(r, 401)
    assert db.session.execute(select(func.count(ApiToken.id)).where(ApiToken.member_id == other.id)).scalar_one() == 0


def test_a_member_cannot_revoke_another_members_token(api):
    ann, bob = make_member(), make_member()
    bob_token = token_for(bob)
    bob_token_id = accounts.list_tokens(bob.id)[0].id
    with pytest.raises(NotFound):
        accounts.revoke_token(ann.id, bob_token_id)
    assert api.get("/api/v1/members/me", token=bob_token).get_json()["id"] == bob.id
    assert accounts.list_tokens(ann.id) == []


def test_token_response_names_only_its_own_member(api):
    ann = make_member()
    make_member()
    r = api.post("/api/v1/tokens", {"email": ann.email, "password": PASSWORD})
    assert r.status_code == 201
    assert r.get_json()["member"]["id"] == ann.id


def test_signup_cannot_take_over_an_existing_account(api):
    ann = make_member()
    r = api.post(
        "/api/v1/members", {"email": ann.email.upper(), "password": "another-password", "display_name": "Mallory"}
    )
    assert_error(r, 409, "already_exists")
    db.session.expire_all()
    assert db.session.get(Member, ann.id).display_name != "Mallory"
    assert api.post("/api/v1/tokens", {"email": ann.email, "password": "another-password"}).status_code == 401


# --- operator-only endpoints ---------------------------------------------------------------------

OPERATOR_ONLY = [
    ("GET", "/api/v1/ledger/entries", None),
    ("GET", "/api/v1/ledger/trial-balance", None),
    ("GET", "/api/v1/ledger/accounts/{wallet}", None),
    ("POST", "/api/v1/members/{target}/kyc", {"status": "verified"}),
    ("POST", "/api/v1/operations/run-due", None),
    ("PUT", "/api/v1/test-clock", {"now": "2031-01-01T00:00:00Z"}),
]


def _call(api, method, path, body, token, target):
    from marketplace.ledger.services import wallet_account

    wallet_code = wallet_account(target.id, "EUR").code
    db.session.commit()
    url = path.format(target=target.id, wallet=wallet_code)
    return api.request(method, url, token=token, json_body=body)


def _operator_state():
    db.session.expire_all()
    return (
        db.session.execute(select(func.count(AuditLog.id))).scalar_one(),
        db.session.execute(select(func.count(TestClock.id))).scalar_one(),
        tuple(db.session.execute(select(Member.kyc_status).order_by(Member.id)).scalars()),
    )


@pytest.mark.parametrize("role", ["member", "supplier"])
@pytest.mark.parametrize("method, path, body", OPERATOR_ONLY)
def test_operator_endpoints_are_403_for_members_and_suppliers(api, role, method, path, body):
    caller = make_member(role, funds={"EUR": 1_000})
    target = make_member(verified=False)
    before = _operator_state()
    r = _call(api, method, path, body, token_for(caller), target)
    assert_error(r, 403, "forbidden")
    assert _operator_state() == before


@pytest.mark.parametrize("token", [None, "mkt_forged", "not even a token"])
@pytest.mark.parametrize("method, path, body", OPERATOR_ONLY)
def test_operator_endpoints_are_401_without_a_valid_token(api, token, method, path, body):
    target = make_member(verified=False)
    before = _operator_state()
    r = _call(api, method, path, body, token, target)
    assert_error(r, 401, "unauthorized")
    assert _operator_state() == before


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("POST", "/api/v1/members/{target}/kyc", {}),
        ("POST", "/api/v1/members/{target}/kyc", {"status": "nonsense"}),
        ("PUT", "/api/v1/test-clock", {}),
        ("PUT", "/api/v1/test-clock", {"now": "yesterday"}),
        ("GET", "/api/v1/ledger/entries?since=garbage", None),
    ],
)
def test_without_a_token_the_answer_is_401_even_for_a_bad_body(api, method, path, body):
    target = make_member(verified=False)
    r = _call(api, method, path, body, None, target)
    assert_error(r, 401, "unauthorized")


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("GET", "/api/v1/wallet", None),
        ("GET", "/api/v1/wallet/transactions?page=0", None),
        ("POST", "/api/v1/wallet/deposits", {"amount": -1}),
        ("POST", "/api/v1/wallet/withdrawals", {}),
        ("GET", "/api/v1/members/me", None),
    ],
)
def test_member_endpoints_without_a_token_are_401_before_validation(api, method, path, body):
    r = api.request(method, path, json_body=body)
    assert_error(r, 401, "unauthorized")


@pytest.mark.parametrize("method, path, body", OPERATOR_ONLY)
def test_operator_endpoints_work_for_operators(api, method, path, body):
    operator = make_member("operator")
    target = make_member(verified=False, funds={"EUR": 100})
    r = _call(api, method, path, body, token_for(operator), target)
    assert r.status_code == 200, (path, r.get_json())


def test_operator_token_cannot_be_obtained_by_signing_up(api):
    r = api.post(
        "/api/v1/members",
        {"email": "mallory@example.test", "password": PASSWORD, "display_name": "M", "role": "operator"},
    )
    assert_error(r, 422, field="role")
    ok = api.post("/api/v1/members", {"email": "mallory@example.test", "password": PASSWORD, "display_name": "M"})
    assert ok.status_code == 201
    token = api.post("/api/v1/tokens", {"email": "mallory@example.test", "password": PASSWORD}).get_json()["token"]
    assert_error(api.get("/api/v1/ledger/trial-balance", token=token), 403, "forbidden")
    assert_error(
        api.post(f"/api/v1/members/{ok.get_json()['id']}/kyc", {"status": "verified"}, token=token), 403, "forbidden"
    )
