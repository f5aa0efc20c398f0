"""Plumbing every endpoint shares: health, error bodies, OpenAPI, paging, idempotency."""

from __future__ import annotations

import json
from http import HTTPStatus

import pytest
import sqlalchemy.exc
from sqlalchemy import func, select

from marketplace.extensions import db
from marketplace.ledger.models import IdempotencyRecord, JournalEntry
from marketplace.payments.models import Payment
from tests.helpers import make_member, token_for, wallet_of

ERROR_KEYS = {"code", "status", "message", "reason", "errors"}


def assert_error_body(response, status: int, reason: str | None = None) -> dict:
    """Exactly the API.md error body: five keys, the right types and phrase."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.content_type == "application/json", response.content_type
    body = response.get_json()
    assert set(body) == ERROR_KEYS, body
    assert body["code"] == status
    assert body["status"] == HTTPStatus(status).phrase
    assert isinstance(body["message"], str) and body["message"].strip()
    assert isinstance(body["reason"], str) and body["reason"]
    assert isinstance(body["errors"], dict)
    for field, messages in body["errors"].items():
        assert isinstance(field, str) and field
        assert isinstance(messages, list) and messages, body
        assert all(isinstance(m, str) and m for m in messages), body
    if reason is not None:
        assert body["reason"] == reason, body
    return body


def count(model) -> int:
    db.session.expire_all()
    return db.session.execute(select(func.count()).select_from(model)).scalar_one()


# --- health --------------------------------------------------------------------------------------


def test_healthz_ok(client):
    r = client.get("/healthz")
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.get_json() == {"status": "ok", "database": "ok"}


def test_healthz_is_503_when_the_database_is_unreachable(client, monkeypatch):
    def unreachable(*args, **kwargs):
        raise sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(db.session, "execute", unreachable)
    r = client.get("/healthz")
    assert r.status_code == 503, r.get_data(as_text=True)
    assert r.get_json()["status"] != "ok"
    assert r.get_json()["database"] != "ok"
    monkeypatch.undo()
    assert client.get("/healthz").status_code == 200


# --- error bodies --------------------------------------------------------------------------------


def test_malformed_json_is_400(api):
    token = token_for(make_member())
    for raw in ["{not json", '{"amount": 1,}', "{'amount': 1}", '{"amount": 1', "\ufeff{", "[" * 50_000]:
        body = assert_error_body(api.post("/api/v1/wallet/deposits", data=raw, token=token), 400, "bad_request")
        assert body["message"]
    assert_error_body(api.post("/api/v1/members", data="{"), 400, "bad_request")
    assert count(Payment) == 0


def test_401_body(api):
    assert_error_body(api.get("/api/v1/wallet"), 401, "unauthorized")
    assert_error_body(api.get("/api/v1/wallet", token="mkt_not-a-token"), 401, "unauthorized")
    assert_error_body(api.post("/api/v1/tokens", {"email": "x@example.test", "password": "nope"}), 401)


def test_403_body(api):
    token = token_for(make_member())
    assert_error_body(api.get("/api/v1/ledger/trial-balance", token=token), 403, "forbidden")


@pytest.mark.parametrize(
    "path", ["/api/v1/nothing-here", "/api/v1/wallet/nope", "/api/v2/wallet", "/api/v1/members/abc/kyc"]
)
def test_unknown_api_path_is_json_404(api, path):
    token = token_for(make_member())
    assert_error_body(api.get(path, token=token), 404, "not_found")


def test_unknown_id_is_json_404(api):
    operator = make_member("operator")
    r = api.post("/api/v1/members/987654/kyc", {"status": "verified"}, token=token_for(operator))
    assert_error_body(r, 404, "not_found")
    assert_error_body(api.get("/api/v1/ledger/accounts/no:such:account", token=token_for(operator)), 404, "not_found")


@pytest.mark.parametrize(
    "method, path",
    [
        ("DELETE", "/api/v1/wallet"),
        ("PUT", "/api/v1/wallet"),
        ("GET", "/api/v1/wallet/deposits"),
        ("GET", "/api/v1/tokens"),
        ("DELETE", "/api/v1/members/me"),
        ("PATCH", "/api/v1/members"),
    ],
)
def test_wrong_method_is_json_405_with_allow(api, method, path):
    token = token_for(make_member())
    r = api.request(method, path, token=token)
    assert_error_body(r, 405, "method_not_allowed")
    assert r.headers.get("Allow")


def test_409_body(api):
    token = token_for(make_member(funds={"EUR": 100}))
    r = api.post("/api/v1/wallet/withdrawals", {"amount": 101, "currency": "EUR"}, token=token)
    assert_error_body(r, 409, "insufficient_funds")


def test_422_body_maps_each_field_to_messages(api):
    token = token_for(make_member())
    r = api.post("/api/v1/wallet/deposits", {"amount": "10", "currency": "eur", "extra": 1}, token=token)
    body = assert_error_body(r, 422, "validation_error")
    assert body["status"] == "Unprocessable Entity"
    assert set(body["errors"]) == {"amount", "currency", "extra"}


def test_415_for_a_body_that_is_not_json(api):
    token = token_for(make_member())
    r = api.client.post(
        "/api/v1/wallet/deposits",
        data=json.dumps({"amount": 100, "currency": "EUR"}),
        content_type="text/plain",
        headers={"Authorization": f"Bearer {token}"},
    )
    body = assert_error_body(r, 415)
    assert "Content-Type" in body["errors"]
    assert count(Payment) == 0


def test_browser_paths_get_html_error_pages(client):
    r = client.get("/no-such-page")
    assert r.status_code == 404
    assert r.content_type.startswith("text/html")
    assert "<html" in r.get_data(as_text=True).lower()


def test_error_bodies_never_leak_internals(api):
    token = token_for(make_member())
    r = api.post("/api/v1/wallet/deposits", data='{"amount": ' + "9" * 5000 + ', "currency": "EUR"}', token=token)
    text = r.get_data(as_text=True)
    assert r.status_code in (400, 422), text
    assert "Traceback" not in text and "sqlalchemy" not in text.lower()


# --- OpenAPI -------------------------------------------------------------------------------------

FOUNDATION = {
    ("post", "/api/v1/members"): (
        "MemberIn",
        "201",
        {"id", "email", "display_name", "role", "kyc_status", "created_at"},
    ),
    ("post", "/api/v1/tokens"): ("TokenIn", "201", {"token", "member"}),
    ("get", "/api/v1/members/me"): (None, "200", {"id", "email", "display_name", "role", "kyc_status", "created_at"}),
    ("post", "/api/v1/members/{member_id}/kyc"): ("KycIn", "200", {"id", "kyc_status"}),
    ("get", "/api/v1/wallet"): (None, "200", {"balances"}),
    ("post", "/api/v1/wallet/deposits"): ("DepositIn", "201", {"id", "amount", "currency", "status"}),
    ("post", "/api/v1/wallet/withdrawals"): ("WithdrawalIn", "201", {"id", "amount", "currency", "status"}),
    ("get", "/api/v1/wallet/transactions"): (
        None,
        "200",
        {"id", "created_at", "kind", "amount", "currency", "balance_after", "memo"},
    ),
    ("get", "/api/v1/ledger/entries"): (None, "200", {"id", "created_at", "kind", "memo", "postings"}),
    ("get", "/api/v1/ledger/accounts/{code}"): (None, "200", {"code", "currency", "balance", "postings"}),
    ("get", "/api/v1/ledger/trial-balance"): (None, "200", {"accounts", "totals"}),
    ("post", "/api/v1/operations/run-due"): (None, "200", set()),
    ("put", "/api/v1/test-clock"): ("ClockIn", "200", {"now"}),
}
PUBLIC = {("post", "/api/v1/members"), ("post", "/api/v1/tokens")}


@pytest.fixture(scope="module")
def spec(app):
    response = app.test_client().get("/api/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def _resolve(spec, schema):
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return spec["components"]["schemas"][name]
    if schema.get("type") == "array":
        return _resolve(spec, schema["items"])
    return schema


def test_openapi_has_bearer_auth(spec):
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer"}


@pytest.mark.parametrize("method, path", sorted(FOUNDATION))
def test_openapi_describes_each_foundation_endpoint(spec, method, path):
    request_schema, status, response_fields = FOUNDATION[(method, path)]
    assert path in spec["paths"], sorted(spec["paths"])
    operation = spec["paths"][path][method]
    if request_schema:
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": f"#/components/schemas/{request_schema}"}
        assert _resolve(spec, body)["properties"]
    response = operation["responses"][status]["content"]["application/json"]["schema"]
    properties = _resolve(spec, response)["properties"]
    assert response_fields <= set(properties), (path, sorted(properties))
    if (method, path) in PUBLIC:
        assert not operation.get("security")
    else:
        assert operation["security"] == [{"bearerAuth": []}]
        assert "401" in operation["responses"]
    if request_schema:
        assert "422" in operation["responses"]


def test_openapi_request_schemas_match_the_contract(spec):
    schemas = spec["components"]["schemas"]
    assert set(schemas["MemberIn"]["properties"]) >= {"email", "password", "display_name", "role"}
    assert schemas["MemberIn"]["properties"]["role"]["enum"] == ["member", "supplier"]
    assert schemas["MemberIn"]["properties"]["password"].get("writeOnly") is True
    assert set(schemas["TokenIn"]["properties"]) >= {"email", "password"}
    assert set(schemas["DepositIn"]["properties"]) == {"amount", "currency", "payment_method"}
    assert set(schemas["DepositIn"]["required"]) == {"amount", "currency"}
    amount = schemas["DepositIn"]["properties"]["amount"]
    assert amount["type"] == "integer" and amount["minimum"] == 1 and amount["maximum"] == 10**12
    assert set(schemas["WithdrawalIn"]["properties"]) == {"amount", "currency"}
    assert schemas["KycIn"]["properties"]["status"]["enum"] == ["unverified", "verified", "rejected"]
    for name in ("MemberIn", "TokenIn", "DepositIn", "WithdrawalIn", "KycIn", "ClockIn"):
        assert schemas[name].get("additionalProperties") is False, name


@pytest.mark.parametrize("path", ["/api/v1/wallet/deposits", "/api/v1/wallet/withdrawals"])
def test_openapi_documents_the_idempotency_key(spec, path):
    parameters = spec["paths"][path]["post"]["parameters"]
    header = next(p for p in parameters if p["name"] == "Idempotency-Key")
    assert header["in"] == "header" and header["schema"]["maxLength"] == 255


def test_openapi_paging_parameters(spec):
    names = {p["name"] for p in spec["paths"]["/api/v1/wallet/transactions"]["get"]["parameters"]}
    assert {"page", "page_size"} <= names


def test_openapi_error_schema_is_the_real_error_body(spec):
    ref = spec["components"]["responses"]["UNPROCESSABLE_ENTITY"]["content"]["application/json"]["schema"]
    assert set(_resolve(spec, ref)["properties"]) == ERROR_KEYS


# --- pagination ----------------------------------------------------------------------------------


def test_pagination_pages_and_reports_the_total(api):
    member = make_member(funds={"EUR": 100})
    token = token_for(member)
    for amount in (200, 300):
        assert (
            api.post("/api/v1/wallet/deposits", {"amount": amount, "currency": "EUR"}, token=token).status_code == 201
        )
    r = api.get("/api/v1/wallet/transactions", token=token, query={"page": 2, "page_size": 1})
    assert r.status_code == 200
    rows = r.get_json()
    assert len(rows) == 1 and rows[0]["amount"] == 200  # newest first: 300, 200, 100
    meta = json.loads(r.headers["X-Pagination"])
    assert meta["total"] == 3 and meta["page"] == 2 and meta["total_pages"] == 3
    everything = api.get("/api/v1/wallet/transactions", token=token).get_json()
    assert [t["amount"] for t in everything] == [300, 200, 100]
    beyond = api.get("/api/v1/wallet/transactions", token=token, query={"page": 9, "page_size": 1})
    assert beyond.status_code == 200 and beyond.get_json() == []
    full = api.get("/api/v1/wallet/transactions", token=token, query={"page_size": 500})
    assert full.status_code == 200 and len(full.get_json()) == 3


@pytest.mark.parametrize(
    "query, field",
    [
        ({"page_size": 501}, "page_size"),
        ({"page_size": 0}, "page_size"),
        ({"page_size": -1}, "page_size"),
        ({"page": 0}, "page"),
        ({"page": -3}, "page"),
        ({"page": "two"}, "page"),
        ({"page": "1.5"}, "page"),
        ({"page_size": "١٠"}, "page_size"),
        ({"page": "9" * 40}, "page"),
    ],
)
def test_bad_paging_is_422(api, query, field):
    token = token_for(make_member())
    r = api.get("/api/v1/wallet/transactions", token=token, query=query)
    body = assert_error_body(r, 422, "validation_error")
    assert field in body["errors"], body


# --- idempotency ---------------------------------------------------------------------------------


def deposit(api, token, amount=500, key=None):
    headers = {"Idempotency-Key": key} if key is not None else None
    return api.post("/api/v1/wallet/deposits", {"amount": amount, "currency": "EUR"}, token=token, headers=headers)


@pytest.mark.parametrize("key", ["", "k" * 256, "k" * 1000])
def test_idempotency_key_length_is_checked(api, key):
    token = token_for(make_member())
    body = assert_error_body(deposit(api, token, key=key), 422, "validation_error")
    assert "Idempotency-Key" in body["errors"]
    assert count(Payment) == 0 and count(IdempotencyRecord) == 0


@pytest.mark.parametrize("key", ["k", "k" * 255, "2c8e0f1a-2b7e-4b1e-9f6b-6c0f2d5b7a10"])
def test_idempotency_key_of_1_to_255_chars_is_accepted(api, key):
    token = token_for(make_member())
    assert deposit(api, token, key=key).status_code == 201


def test_same_key_and_body_replays_with_one_effect(api):
    member = make_member()
    token = token_for(member)
    first = deposit(api, token, key="dep-1")
    entries = count(JournalEntry)
    second = deposit(api, token, key="dep-1")
    third = deposit(api, token, key="dep-1")
    assert first.status_code == second.status_code == third.status_code == 201
    assert first.get_json() == second.get_json() == third.get_json()
    assert count(JournalEntry) == entries == 1
    assert count(Payment) == 1
    assert wallet_of(member.id)["balance"] == 500


def test_same_key_with_key_order_or_spacing_changed_is_the_same_body(api):
    member = make_member()
    token = token_for(member)
    headers = {"Idempotency-Key": "dep-2"}
    first = api.post("/api/v1/wallet/deposits", data='{"amount": 500, "currency": "EUR"}', token=token, headers=headers)
    second = api.post("/api/v1/wallet/deposits", data='{"currency":"EUR","amount":500}', token=token, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.get_json() == second.get_json()
    assert count(Payment) == 1


def test_same_key_different_body_is_409_and_no_effect(api):
    member = make_member()
    token = token_for(member)
    deposit(api, token, amount=500, key="dep-3")
    assert_error_body(deposit(api, token, amount=501, key="dep-3"), 409, "idempotency_key_reused")
    other_endpoint = api.post(
        "/api/v1/wallet/withdrawals",
        {"amount": 500, "currency": "EUR"},
        token=token,
        headers={"Idempotency-Key": "dep-3"},
    )
    assert_error_body(other_endpoint, 409, "idempotency_key_reused")
    assert count(Payment) == 1
    assert wallet_of(member.id)["balance"] == 500


def test_same_key_from_another_member_is_independent(api):
    ann, bob = make_member(), make_member()
    a = deposit(api, token_for(ann), amount=500, key="shared-key")
    b = deposit(api, token_for(bob), amount=700, key="shared-key")
    assert a.status_code == b.status_code == 201
    assert a.get_json()["id"] != b.get_json()["id"]
    assert wallet_of(ann.id)["balance"] == 500
    assert wallet_of(bob.id)["balance"] == 700
    assert count(Payment) == 2


def test_failed_request_does_not_burn_the_key(api):
    member = make_member(funds={"EUR": 100})
    token = token_for(member)
    headers = {"Idempotency-Key": "wd-1"}
    refused = api.post("/api/v1/wallet/withdrawals", {"amount": 500, "currency": "EUR"}, token=token, headers=headers)
    assert_error_body(refused, 409, "insufficient_funds")
    assert count(IdempotencyRecord) == 0
    deposit(api, token, amount=400)
    retried = api.post("/api/v1/wallet/withdrawals", {"amount": 500, "currency": "EUR"}, token=token, headers=headers)
    assert retried.status_code == 201, retried.get_json()
    assert wallet_of(member.id)["balance"] == 0


def test_replayed_withdrawal_does_not_pay_out_twice(api):
    member = make_member(funds={"EUR": 1_000})
    token = token_for(member)
    headers = {"Idempotency-Key": "wd-2"}
    for _ in range(3):
        r = api.post("/api/v1/wallet/withdrawals", {"amount": 600, "currency": "EUR"}, token=token, headers=headers)
        assert r.status_code == 201, r.get_json()
    assert wallet_of(member.id)["balance"] == 400
    assert count(Payment) == 2  # the funding deposit and one withdrawal


def test_idempotency_key_needs_a_token(api):
    r = api.post("/api/v1/wallet/deposits", {"amount": 1, "currency": "EUR"}, headers={"Idempotency-Key": "x"})
    assert_error_body(r, 401, "unauthorized")
    assert count(IdempotencyRecord) == 0
