"""Bad input on every field of the foundation endpoints: always a 4xx, never a write.

Each case sends one valid body with one field spoiled (or a spoiled whole
body) and checks the answer is the API.md error body with a 4xx status, and
that no member, token, journal entry, payment, idempotency record, audit row
or test-clock row was written.
"""

from __future__ import annotations

import json
from http import HTTPStatus

import pytest
from sqlalchemy import func, select

from marketplace.accounts.models import ApiToken, Member
from marketplace.extensions import db
from marketplace.ledger.models import IdempotencyRecord, JournalEntry, Posting
from marketplace.operators.models import AuditLog, TestClock
from marketplace.payments.models import Payment
from tests.helpers import PASSWORD, make_member, token_for

MISSING = object()
ERROR_KEYS = {"code", "status", "message", "reason", "errors"}
TABLES = (Member, ApiToken, JournalEntry, Posting, Payment, IdempotencyRecord, AuditLog, TestClock)


def row_counts() -> dict[str, int]:
    db.session.expire_all()
    return {m.__tablename__: db.session.execute(select(func.count()).select_from(m)).scalar_one() for m in TABLES}


def assert_rejected(response, status: int | tuple[int, ...] = 422, field: str | None = None) -> dict:
    statuses = status if isinstance(status, tuple) else (status,)
    text = response.get_data(as_text=True)
    assert response.status_code in statuses, (response.status_code, text)
    assert response.content_type == "application/json", (response.content_type, text)
    body = response.get_json()
    assert set(body) == ERROR_KEYS, body
    assert body["code"] == response.status_code
    assert body["status"] == HTTPStatus(response.status_code).phrase
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["errors"], dict)
    for name, messages in body["errors"].items():
        assert isinstance(name, str) and isinstance(messages, list) and all(isinstance(m, str) for m in messages)
    if field is not None:
        assert field in body["errors"], body
    return body


def spoil(valid: dict, field: str, value) -> dict:
    body = dict(valid)
    if value is MISSING:
        body.pop(field, None)
    else:
        body[field] = value
    return body


# Values that are wrong for any field.
ANY_FIELD = [
    pytest.param(None, id="null"),
    pytest.param(MISSING, id="missing"),
    pytest.param([], id="empty-array"),
    pytest.param(["x"], id="array"),
    pytest.param({}, id="empty-object"),
    pytest.param({"value": "x"}, id="object"),
    pytest.param(True, id="bool"),
]
# Wrong for a string field.
STRING_FIELD = ANY_FIELD + [
    pytest.param(5, id="number"),
    pytest.param(0, id="zero"),
    pytest.param(1.5, id="float"),
    pytest.param("", id="empty"),
    pytest.param("x" * 10_240, id="10kB"),
    pytest.param("ab\x00cd", id="NUL"),
    pytest.param("ab\ud800cd", id="lone-surrogate"),
]
# Wrong for an amount (integer minor units, 1 .. 10^12).
AMOUNT_FIELD = ANY_FIELD + [
    pytest.param(0, id="zero"),
    pytest.param(-1, id="negative"),
    pytest.param(-(10**12), id="very-negative"),
    pytest.param(10**12 + 1, id="over-10^12"),
    pytest.param(10**30, id="huge"),
    pytest.param(1.5, id="fractional"),
    pytest.param(100.0, id="float-integral"),
    pytest.param(0.01, id="cents-as-float"),
    pytest.param("100", id="numeric-string"),
    pytest.param("1e2", id="exponent-string"),
    pytest.param("١٠٠", id="arabic-indic-digits"),
    pytest.param("１００", id="fullwidth-digits"),
    pytest.param("100😀", id="emoji"),
    pytest.param("1" * 10_240, id="10kB-digits"),
    pytest.param("100\x00", id="NUL"),
    pytest.param("", id="empty-string"),
    pytest.param([100], id="array-of-number"),
    pytest.param({"amount": 100}, id="object-of-number"),
]
# Wrong for a currency code.
CURRENCY_FIELD = ANY_FIELD + [
    pytest.param("eur", id="lowercase"),
    pytest.param("Eur", id="mixed-case"),
    pytest.param("XXX", id="unknown"),
    pytest.param("JPY", id="not-accepted"),
    pytest.param("EURO", id="four-letters"),
    pytest.param(" EUR", id="padded"),
    pytest.param("", id="empty"),
    pytest.param(978, id="numeric-code"),
    pytest.param("€", id="symbol"),
    pytest.param("ＥＵＲ", id="fullwidth"),
    pytest.param("E\u0301UR", id="combining-mark"),
    pytest.param("EUR\x00", id="NUL"),
    pytest.param("E" * 10_240, id="10kB"),
    pytest.param(["EUR"], id="array-of-code"),
]

# Whole bodies that are not a JSON object of the right shape.
WHOLE_BODY = [
    pytest.param("[]", "application/json", (422,), id="json-array"),
    pytest.param('[{"amount": 1}]', "application/json", (422,), id="json-array-of-object"),
    pytest.param('"EUR"', "application/json", (422,), id="json-string"),
    pytest.param("100", "application/json", (422,), id="json-number"),
    pytest.param("true", "application/json", (422,), id="json-bool"),
    pytest.param("null", "application/json", (422,), id="json-null"),
    pytest.param("", "application/json", (422,), id="empty-body"),
    pytest.param("{", "application/json", (400,), id="truncated"),
    pytest.param("{'a': 1}", "application/json", (400,), id="single-quotes"),
    pytest.param('{"amount": NaN}', "application/json", (400, 422), id="NaN"),
    pytest.param('{"amount": 1' + "0" * 5000 + "}", "application/json", (400,), id="5000-digit-number"),
    pytest.param("[" * 100_000 + "]" * 100_000, "application/json", (400,), id="deep-nesting"),
    pytest.param(b"\xff\xfe\x00{", "application/json", (400,), id="not-utf8"),
]


def send(
    api, path, body=MISSING, *, raw=None, content_type="application/json", token=None, method="POST", headers=None
):
    """POST/PUT a JSON body (or raw bytes with any Content-Type)."""
    all_headers = {"Accept": "application/json", **(headers or {})}
    if token:
        all_headers["Authorization"] = f"Bearer {token}"
    data = raw if raw is not None else json.dumps(body)
    return api.client.open(path, method=method, data=data, content_type=content_type, headers=all_headers)


def valid_member(n: int = 0) -> dict:
    return {"email": f"new{n}@example.test", "password": PASSWORD, "display_name": "New Member", "role": "member"}


# --- POST /members ---------------------------------------------------------------------------------

MEMBER_CASES = (
    [pytest.param("email", v, id=f"email-{p.id}") for p in STRING_FIELD for v in p.values]
    + [
        pytest.param("email", "not-an-email", id="email-no-at"),
        pytest.param("email", "a@", id="email-no-domain"),
        pytest.param("email", "@example.test", id="email-no-local-part"),
        pytest.param("email", "a b@example.test", id="email-space"),
        pytest.param("email", "😀@example.test", id="email-emoji"),
        pytest.param("email", "a" * 250 + "@example.test", id="email-too-long"),
        pytest.param("email", "   ", id="email-blank"),
    ]
    + [pytest.param("password", v, id=f"password-{p.id}") for p in STRING_FIELD for v in p.values]
    + [
        pytest.param("password", "short", id="password-too-short"),
        pytest.param("password", "x" * 129, id="password-too-long"),
    ]
    + [pytest.param("display_name", v, id=f"display_name-{p.id}") for p in STRING_FIELD for v in p.values]
    + [
        pytest.param("display_name", "   ", id="display_name-blank"),
        pytest.param("display_name", "x" * 81, id="display_name-81-chars"),
        pytest.param("display_name", "😀" * 81, id="display_name-81-emoji"),
    ]
    + [pytest.param("role", v, id=f"role-{p.id}") for p in STRING_FIELD if p.values[0] is not MISSING for v in p.values]
    + [
        pytest.param("role", "operator", id="role-operator"),
        pytest.param("role", "MEMBER", id="role-uppercase"),
        pytest.param("role", "member\x00", id="role-NUL-suffix"),
        pytest.param("role", "sUpplier", id="role-mixed-case"),
    ]
    + [
        pytest.param("kyc_status", "verified", id="extra-kyc_status"),
        pytest.param("id", 1, id="extra-id"),
        pytest.param("is_operator", True, id="extra-is_operator"),
        pytest.param("password_hash", "x", id="extra-password_hash"),
    ]
)


@pytest.mark.parametrize("field, value", MEMBER_CASES)
def test_members_bad_field(api, field, value):
    before = row_counts()
    body = spoil(valid_member(), field, value)
    r = send(api, "/api/v1/members", body)
    assert_rejected(r, 422, field=field)
    assert row_counts() == before


@pytest.mark.parametrize("raw, content_type, statuses", WHOLE_BODY)
def test_members_bad_whole_body(api, raw, content_type, statuses):
    before = row_counts()
    assert_rejected(send(api, "/api/v1/members", raw=raw, content_type=content_type), statuses)
    assert row_counts() == before


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "application/xml"]
)
def test_members_wrong_content_type(api, content_type):
    before = row_counts()
    r = send(api, "/api/v1/members", raw=json.dumps(valid_member()), content_type=content_type)
    assert_rejected(r, (415, 422))
    assert row_counts() == before


def test_members_form_encoded_fields_are_not_accepted(api):
    r = api.client.post("/api/v1/members", data=valid_member())
    assert_rejected(r, (415, 422))
    assert row_counts()["members"] == 0


def test_members_duplicate_keys_use_one_value_and_write_once(api):
    raw = f'{{"email": "dup@example.test", "email": "dup@example.test", "password": "{PASSWORD}", "display_name": "D"}}'
    assert send(api, "/api/v1/members", raw=raw).status_code == 201
    before = row_counts()
    assert_rejected(send(api, "/api/v1/members", raw=raw), 409)
    assert row_counts() == before


# --- POST /tokens ----------------------------------------------------------------------------------

TOKEN_CASES = [pytest.param("email", v, 422, id=f"email-{p.id}") for p in STRING_FIELD for v in p.values] + [
    pytest.param("password", v, 422, id=f"password-{p.id}") for p in STRING_FIELD for v in p.values
]
TOKEN_CASES += [
    pytest.param("email", "unknown@example.test", 401, id="email-unknown"),
    pytest.param("email", "😀@example.test", 401, id="email-emoji"),
    pytest.param("password", "😀 wrong", 401, id="password-emoji"),
    pytest.param("password", PASSWORD + "\u0301", 401, id="password-combining"),
    pytest.param("password", "x" * 129, 422, id="password-too-long"),
    pytest.param("member_id", 1, 422, id="extra-member_id"),
]


@pytest.mark.parametrize("field, value, status", TOKEN_CASES)
def test_tokens_bad_field(api, field, value, status):
    member = make_member()
    before = row_counts()
    body = spoil({"email": member.email, "password": PASSWORD}, field, value)
    r = send(api, "/api/v1/tokens", body)
    assert_rejected(r, status, field=field if status == 422 else None)
    assert row_counts() == before


@pytest.mark.parametrize("raw, content_type, statuses", WHOLE_BODY)
def test_tokens_bad_whole_body(api, raw, content_type, statuses):
    make_member()
    before = row_counts()
    assert_rejected(send(api, "/api/v1/tokens", raw=raw, content_type=content_type), statuses)
    assert row_counts() == before


def test_tokens_wrong_content_type(api):
    member = make_member()
    before = row_counts()
    r = send(
        api, "/api/v1/tokens", raw=json.dumps({"email": member.email, "password": PASSWORD}), content_type="text/plain"
    )
    assert_rejected(r, (415, 422))
    assert row_counts() == before


# --- POST /wallet/deposits and /wallet/withdrawals ---------------------------------------------------

VALID_MONEY = {"amount": 1_000, "currency": "EUR"}

DEPOSIT_CASES = (
    [pytest.param("amount", v, id=f"amount-{p.id}") for p in AMOUNT_FIELD for v in p.values]
    + [pytest.param("currency", v, id=f"currency-{p.id}") for p in CURRENCY_FIELD for v in p.values]
    + [
        pytest.param("payment_method", v, id=f"payment_method-{p.id}")
        for p in STRING_FIELD
        if p.values[0] is not MISSING
        for v in p.values
    ]
    + [
        pytest.param("payment_method", "x" * 121, id="payment_method-121-chars"),
        pytest.param("payment_method", "   ", id="payment_method-blank"),
        pytest.param("member_id", 2, id="extra-member_id"),
        pytest.param("status", "succeeded", id="extra-status"),
    ]
)
WITHDRAWAL_CASES = (
    [pytest.param("amount", v, id=f"amount-{p.id}") for p in AMOUNT_FIELD for v in p.values]
    + [pytest.param("currency", v, id=f"currency-{p.id}") for p in CURRENCY_FIELD for v in p.values]
    + [
        pytest.param("member_id", 2, id="extra-member_id"),
        pytest.param("payment_method", "pm_card_visa", id="extra-payment_method"),
    ]
)


@pytest.fixture
def funded_token():
    return token_for(make_member(funds={"EUR": 10**12, "GBP": 1_000}))


@pytest.mark.parametrize("with_key", [False, True], ids=["no-key", "idempotency-key"])
@pytest.mark.parametrize("field, value", DEPOSIT_CASES)
def test_deposits_bad_field(api, funded_token, field, value, with_key):
    before = row_counts()
    headers = {"Idempotency-Key": f"bad-{field}"} if with_key else None
    r = send(api, "/api/v1/wallet/deposits", spoil(VALID_MONEY, field, value), token=funded_token, headers=headers)
    assert_rejected(r, 422, field=field)
    assert row_counts() == before


@pytest.mark.parametrize("field, value", WITHDRAWAL_CASES)
def test_withdrawals_bad_field(api, funded_token, field, value):
    before = row_counts()
    r = send(api, "/api/v1/wallet/withdrawals", spoil(VALID_MONEY, field, value), token=funded_token)
    assert_rejected(r, 422, field=field)
    assert row_counts() == before


@pytest.mark.parametrize("path", ["/api/v1/wallet/deposits", "/api/v1/wallet/withdrawals"])
@pytest.mark.parametrize("raw, content_type, statuses", WHOLE_BODY)
def test_wallet_bad_whole_body(api, funded_token, path, raw, content_type, statuses):
    before = row_counts()
    r = send(api, path, raw=raw, content_type=content_type, token=funded_token, headers={"Idempotency-Key": "whole"})
    assert_rejected(r, statuses)
    assert row_counts() == before


@pytest.mark.parametrize("path", ["/api/v1/wallet/deposits", "/api/v1/wallet/withdrawals"])
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "text/html"])
def test_wallet_wrong_content_type(api, funded_token, path, content_type):
    before = row_counts()
    r = send(api, path, raw=json.dumps(VALID_MONEY), content_type=content_type, token=funded_token)
    assert_rejected(r, (415, 422))
    assert row_counts() == before


@pytest.mark.parametrize("path", ["/api/v1/wallet/deposits", "/api/v1/wallet/withdrawals"])
def test_wallet_amount_limits_are_inclusive(api, path):
    token = token_for(make_member(funds={"EUR": 10**12}))
    send(api, "/api/v1/wallet/deposits", {"amount": 1, "currency": "EUR"}, token=token)
    for amount in (1, 10**12):
        r = send(api, path, {"amount": amount, "currency": "EUR"}, token=token)
        assert r.status_code == 201, (amount, r.get_json())


def test_withdrawal_in_a_currency_never_deposited_is_409_not_5xx(api, funded_token):
    before = row_counts()
    r = send(api, "/api/v1/wallet/withdrawals", {"amount": 1, "currency": "USD"}, token=funded_token)
    assert_rejected(r, 409)
    assert r.get_json()["reason"] == "insufficient_funds"
    assert row_counts() == before


# --- POST /members/{id}/kyc --------------------------------------------------------------------------

KYC_CASES = [pytest.param(v, id=p.id) for p in STRING_FIELD for v in p.values] + [
    pytest.param("VERIFIED", id="uppercase"),
    pytest.param(" verified", id="padded"),
    pytest.param("approved", id="unknown-status"),
    pytest.param("verified\x00", id="NUL-suffix"),
    pytest.param("vérified", id="accent"),
]


@pytest.mark.parametrize("value", KYC_CASES)
def test_kyc_bad_status(api, value):
    operator = make_member("operator")
    target = make_member(verified=False)
    token = token_for(operator)
    before = row_counts()
    r = send(api, f"/api/v1/members/{target.id}/kyc", spoil({"status": "verified"}, "status", value), token=token)
    assert_rejected(r, 422, field="status")
    assert row_counts() == before
    db.session.expire_all()
    assert db.session.get(Member, target.id).kyc_status == "unverified"


def test_kyc_extra_field(api):
    operator = make_member("operator")
    target = make_member(verified=False)
    r = send(
        api, f"/api/v1/members/{target.id}/kyc", {"status": "verified", "role": "operator"}, token=token_for(operator)
    )
    assert_rejected(r, 422, field="role")
    db.session.expire_all()
    assert db.session.get(Member, target.id).role == "member"


@pytest.mark.parametrize("member_id", ["0", "-1", "abc", "1.5", "99999999999999999999999", "%F0%9F%98%80"])
def test_kyc_bad_member_id_in_path(api, member_id):
    operator = make_member("operator")
    token = token_for(operator)
    before = row_counts()
    r = send(api, f"/api/v1/members/{member_id}/kyc", {"status": "verified"}, token=token)
    assert_rejected(r, 404)
    assert row_counts() == before


@pytest.mark.parametrize("raw, content_type, statuses", WHOLE_BODY)
def test_kyc_bad_whole_body(api, raw, content_type, statuses):
    operator = make_member("operator")
    target = make_member(verified=False)
    token = token_for(operator)
    before = row_counts()
    assert_rejected(
        send(api, f"/api/v1/members/{target.id}/kyc", raw=raw, content_type=content_type, token=token), statuses
    )
    assert row_counts() == before


# --- PUT /test-clock -----------------------------------------------------------------------------------

CLOCK_CASES = [pytest.param(v, id=p.id) for p in STRING_FIELD for v in p.values] + [
    pytest.param(1_900_000_000, id="unix-seconds"),
    pytest.param("garbage", id="garbage"),
    pytest.param("2031-02-30T00:00:00Z", id="no-such-day"),
    pytest.param("2031-01-01T24:00:00Z", id="hour-24"),
    pytest.param("2031-01-01T00:00:60Z", id="second-60"),
    pytest.param("2031-01-01", id="date-only"),
    pytest.param("20310101T000000Z", id="basic-format"),
    pytest.param("2031-W01-1T00:00:00Z", id="week-date"),
    pytest.param("2031-01-01T00:00:00Z\x00", id="NUL-suffix"),
    pytest.param(" 2031-01-01T00:00:00Z", id="leading-space"),
    pytest.param("2031-01-01T00:00:00Zjunk", id="trailing-junk"),
    pytest.param("٢٠٣١-01-01T00:00:00Z", id="arabic-indic-digits"),
    pytest.param("２０３１-01-01T00:00:00Z", id="fullwidth-digits"),
    pytest.param("2031-01-01T00:00:00+25:00", id="bad-offset"),
    pytest.param("0001-01-01T00:00:00+05:00", id="year-1-with-offset"),
    pytest.param("9999-12-31T23:59:59-05:00", id="year-9999-with-offset"),
    pytest.param("9999-12-31T23:59:59Z", id="far-future"),
    pytest.param("1969-12-31T23:59:59Z", id="before-1970"),
    pytest.param("+12031-01-01T00:00:00Z", id="five-digit-year"),
    pytest.param({"now": "2031-01-01T00:00:00Z"}, id="nested"),
]


@pytest.mark.parametrize("value", CLOCK_CASES)
def test_test_clock_bad_now(api, value):
    operator = make_member("operator")
    token = token_for(operator)
    before = row_counts()
    r = send(api, "/api/v1/test-clock", spoil({"now": "2031-01-01T00:00:00Z"}, "now", value), token=token, method="PUT")
    assert_rejected(r, 422, field="now")
    assert row_counts() == before


def test_test_clock_backwards_is_409_and_writes_nothing(api):
    operator = make_member("operator")
    token = token_for(operator)
    assert (
        send(api, "/api/v1/test-clock", {"now": "2031-01-01T00:00:00Z"}, token=token, method="PUT").status_code == 200
    )
    before = row_counts()
    r = send(api, "/api/v1/test-clock", {"now": "2030-12-31T23:59:59Z"}, token=token, method="PUT")
    assert_rejected(r, 409)
    assert row_counts() == before


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2031-01-01T00:00:00Z", "2031-01-01T00:00:00Z"),
        ("2031-01-01t00:00:00z", "2031-01-01T00:00:00Z"),
        ("2031-01-01T02:00:00+02:00", "2031-01-01T00:00:00Z"),
        ("2031-01-01T00:00:00.250Z", "2031-01-01T00:00:00.250000Z"),
        ("2031-01-01T00:00:00.123456789Z", "2031-01-01T00:00:00.123456Z"),
        ("2031-01-01T00:00:00", "2031-01-01T00:00:00Z"),
    ],
)
def test_test_clock_accepts_rfc3339(api, value, expected):
    token = token_for(make_member("operator"))
    r = send(api, "/api/v1/test-clock", {"now": value}, token=token, method="PUT")
    assert r.status_code == 200, r.get_json()
    assert r.get_json() == {"now": expected}


@pytest.mark.parametrize("raw, content_type, statuses", WHOLE_BODY)
def test_test_clock_bad_whole_body(api, raw, content_type, statuses):
    token = token_for(make_member("operator"))
    before = row_counts()
    assert_rejected(
        send(api, "/api/v1/test-clock", raw=raw, content_type=content_type, token=token, method="PUT"), statuses
    )
    assert row_counts() == before


def test_test_clock_wrong_content_type(api):
    token = token_for(make_member("operator"))
    before = row_counts()
    r = send(
        api,
        "/api/v1/test-clock",
        raw='{"now": "2031-01-01T00:00:00Z"}',
        content_type="text/plain",
        token=token,
        method="PUT",
    )
    assert_rejected(r, (415, 422))
    assert row_counts() == before


# --- valid unicode is data, not an error ------------------------------------------------------------


@pytest.mark.parametrize("name", ["😀", "مرحبا", "\u202eabc", "a\u0301\u0302\u0303", "ﷺ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "Ω≈ç√∫"])
def test_valid_unicode_display_name_round_trips(api, name):
    r = send(api, "/api/v1/members", {**valid_member(), "display_name": name})
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["display_name"] == name
    db.session.expire_all()
    assert db.session.get(Member, r.get_json()["id"]).display_name == name


def test_unicode_password_is_accepted_exactly(api):
    password = " pässwörd 😀\u0301 "
    r = send(api, "/api/v1/members", {**valid_member(), "password": password})
    assert r.status_code == 201, r.get_json()
    assert send(api, "/api/v1/tokens", {"email": "new0@example.test", "password": password}).status_code == 201
    assert send(api, "/api/v1/tokens", {"email": "new0@example.test", "password": password.strip()}).status_code == 401
