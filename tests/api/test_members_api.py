"""Members and tokens API (shared/API.md "Members and tokens")."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from marketplace.accounts import services as accounts
from marketplace.accounts.models import ApiToken, Member
from marketplace.extensions import db
from tests.helpers import PASSWORD, assert_error, make_member, token_for

MEMBER_KEYS = {"id", "email", "display_name", "role", "kyc_status", "created_at"}
RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")


def signup(api, email="ann@example.test", display_name="Ann", **extra):
    return api.post("/api/v1/members", {"email": email, "password": PASSWORD, "display_name": display_name, **extra})


def member_count() -> int:
    db.session.expire_all()
    return db.session.execute(select(func.count(Member.id))).scalar_one()


def test_sign_up_returns_exactly_the_member_fields(api):
    r = signup(api)
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert set(body) == MEMBER_KEYS
    assert isinstance(body["id"], int) and not isinstance(body["id"], bool)
    assert body["email"] == "ann@example.test"
    assert body["display_name"] == "Ann"
    assert body["role"] == "member"
    assert body["kyc_status"] == "unverified"
    assert RFC3339_Z.match(body["created_at"]), body["created_at"]
    assert r.content_type == "application/json"
    stored = db.session.get(Member, body["id"])
    assert stored.password_hash != PASSWORD and PASSWORD not in r.get_data(as_text=True)


def test_sign_up_stores_the_email_in_lower_case(api):
    r = signup(api, email="  Ann.Smith@Example.TEST ")
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["email"] == "ann.smith@example.test"


def test_supplier_may_sign_up(api):
    r = signup(api, role="supplier")
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["role"] == "supplier"


@pytest.mark.parametrize("role", ["operator", "admin", "Member", ""])
def test_only_member_and_supplier_roles_can_sign_up(api, role):
    r = signup(api, role=role)
    assert_error(r, 422, "validation_error", field="role")
    assert member_count() == 0


@pytest.mark.parametrize("second", ["ann@example.test", "ANN@example.test", "Ann@Example.Test", " ann@example.test "])
def test_duplicate_email_is_409_already_exists(api, second):
    assert signup(api).status_code == 201
    r = signup(api, email=second, display_name="Another Ann")
    assert_error(r, 409, "already_exists")
    assert member_count() == 1


@pytest.mark.parametrize(
    "name",
    [
        "Zoë 😀",  # emoji outside the BMP
        "👩‍👩‍👧‍👦 family",  # zero-width-joiner sequence
        "שלום עליכם",  # right to left
        "\u202eevil\u202c override",  # RTL override characters
        "e\u0301e\u0301 combining",  # combining marks (not normalised)
        "Ａｎｎ 山田",  # full width and CJK
        "x" * 80,  # exactly the limit
    ],
)
def test_unicode_display_names_are_accepted_and_round_trip_exactly(api, name):
    r = signup(api, display_name=name)
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["display_name"] == name
    token = api.post("/api/v1/tokens", {"email": "ann@example.test", "password": PASSWORD})
    assert token.get_json()["member"]["display_name"] == name
    me = api.get("/api/v1/members/me", token=token.get_json()["token"])
    assert me.get_json()["display_name"] == name


def test_token_exchange_returns_token_and_member_and_token_works(api):
    created = signup(api).get_json()
    r = api.post("/api/v1/tokens", {"email": "ann@example.test", "password": PASSWORD})
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert set(body) == {"token", "member"}
    assert isinstance(body["token"], str) and len(body["token"]) >= 32
    assert body["member"] == created
    me = api.get("/api/v1/members/me", token=body["token"])
    assert me.status_code == 200
    assert me.get_json() == created
    # Only a digest of the secret is stored.
    stored = db.session.execute(select(ApiToken.token_hash)).scalars().all()
    assert body["token"] not in stored


def test_token_email_is_case_insensitive(api):
    signup(api)
    r = api.post("/api/v1/tokens", {"email": "ANN@EXAMPLE.TEST", "password": PASSWORD})
    assert r.status_code == 201, r.get_json()


@pytest.mark.parametrize(
    "email, password",
    [
        ("ann@example.test", "wrong-password"),
        ("ann@example.test", PASSWORD.upper()),
        ("ann@example.test", PASSWORD + " "),
        ("nobody@example.test", PASSWORD),
        ("nobody@example.test", "wrong-password"),
    ],
)
def test_bad_credentials_are_401_with_one_message(api, email, password):
    signup(api)
    r = api.post("/api/v1/tokens", {"email": email, "password": password})
    body = assert_error(r, 401)
    # The same answer for an unknown address and a wrong password.
    assert body["message"] == "The e-mail address or password is wrong."
    assert db.session.execute(select(func.count(ApiToken.id))).scalar_one() == 0


def test_each_token_exchange_issues_a_distinct_token(api):
    signup(api)
    first = api.post("/api/v1/tokens", {"email": "ann@example.test", "password": PASSWORD}).get_json()["token"]
    second = api.post("/api/v1/tokens", {"email": "ann@example.test", "password": PASSWORD}).get_json()["token"]
    assert first != second
    assert api.get("/api/v1/members/me", token=first).status_code == 200
    assert api.get("/api/v1/members/me", token=second).status_code == 200


def test_revoked_token_is_401_and_other_tokens_keep_working(api):
    member = make_member()
    revoked = token_for(member)
    kept = token_for(member)
    assert api.get("/api/v1/members/me", token=revoked).status_code == 200
    token_id = accounts.list_tokens(member.id)[-1].id  # newest first: the last is the first issued
    accounts.revoke_token(member.id, token_id)
    assert_error(api.get("/api/v1/members/me", token=revoked), 401, "unauthorized")
    assert_error(api.get("/api/v1/wallet", token=revoked), 401, "unauthorized")
    assert api.get("/api/v1/members/me", token=kept).status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Token {token}",
        "Bearer {token}x",
        "Bearer x{token}",
        "{token}",
    ],
)
def test_missing_or_malformed_authorization_is_401(api, header):
    member = make_member()
    token = token_for(member)
    headers = {} if header is None else {"Authorization": header.format(token=token)}
    r = api.get("/api/v1/members/me", headers=headers)
    assert_error(r, 401, "unauthorized")


def test_me_needs_a_token(api):
    assert_error(api.get("/api/v1/members/me"), 401, "unauthorized")


@pytest.mark.parametrize("role", ["member", "supplier"])
def test_member_and_supplier_cannot_set_kyc(api, role):
    caller = make_member(role)
    target = make_member(verified=False)
    r = api.post(f"/api/v1/members/{target.id}/kyc", {"status": "verified"}, token=token_for(caller))
    assert_error(r, 403, "forbidden")
    # Not even on themselves.
    r = api.post(f"/api/v1/members/{caller.id}/kyc", {"status": "rejected"}, token=token_for(caller))
    assert_error(r, 403, "forbidden")
    db.session.expire_all()
    assert db.session.get(Member, target.id).kyc_status == "unverified"
    assert db.session.get(Member, caller.id).kyc_status == "verified"


def test_operator_sets_kyc_and_gets_the_member(api):
    operator = make_member("operator")
    target = make_member(verified=False)
    r = api.post(f"/api/v1/members/{target.id}/kyc", {"status": "verified"}, token=token_for(operator))
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert set(body) == MEMBER_KEYS
    assert body["id"] == target.id and body["kyc_status"] == "verified"


def test_signed_up_member_can_use_the_wallet_at_once(api):
    signup(api)
    token = api.post("/api/v1/tokens", {"email": "ann@example.test", "password": PASSWORD}).get_json()["token"]
    r = api.get("/api/v1/wallet", token=token)
    assert r.status_code == 200
    assert r.get_json() == {"balances": []}
