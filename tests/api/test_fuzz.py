"""Schemathesis over the app's own OpenAPI document: every operation, fuzzed.

The schema is loaded in-process from ``/api/openapi.json`` through the WSGI
integration, so the requests go straight into the Flask app (no server, no
network). Each of the ~50 operations gets the document's examples, the
coverage pass (boundary and invalid values, missing auth, wrong media types)
and ``FUZZ_MAX_EXAMPLES`` random cases per generation mode (positive and
negative; 15 by default). Hypothesis runs derandomized (no deadline, no
example database), so every run sends the same requests; ``FUZZ_SEED=N``
explores with a seed instead, and ``FUZZ_MAX_EXAMPLES=N`` goes deeper.
Every response must:

- not be a 5xx (``not_a_server_error``);
- have a status the operation documents (``status_code_conformance``; the
  document has no catch-all ``default`` response, see apiutil);
- have the content type and body the document gives for that status
  (``content_type_conformance``, ``response_schema_conformance``).

Every request carries a Bearer token: the operator's on operator-only paths
(ledger, run-due, test clock, KYC), the supplier's where only a supplier can
act (bids, delivery), otherwise a verified member's whose wallets hold the
largest amount in every currency. A small world made through the API first
(pools in every state, pledges, card authorizations, bids, comments, a
review-ready pool, loan requests, an offer, an active and a repaid loan)
gives the generated ids something to name, and most large generated ids are
aimed at it (card authorization ids partly at those still authorized, most
ledger account codes and sign-in credentials at real ones), so the fuzzer
gets past the 404s, 409s and 401s.

Nothing is excluded: the destructive operator operations (run-due, KYC, the
test clock) run too. They come after the others in the document, except KYC,
whose rejections of the fuzzing members are undone after each of its cases.

The whole run is one test (one subtest per operation). After every command
the ledger invariants are checked (tests/helpers.assert_ledger_invariants),
and once more by the autouse fixture of tests/conftest.py after the run.
"""

from __future__ import annotations

import itertools
import os
from datetime import timedelta

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select, update

from marketplace.accounts.models import Member
from marketplace.apiutil import MAX_ID
from marketplace.clock import now
from marketplace.extensions import db
from marketplace.ledger.models import Account
from marketplace.money import MAX_AMOUNT
from marketplace.payments.models import CardAuthorization
from tests.helpers import PASSWORD, assert_ledger_invariants, login, make_member, token_for

# Random cases per operation and generation mode (positive / negative), on
# top of the document's examples and the coverage pass. FUZZ_MAX_EXAMPLES
# raises it for a longer local run.
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "15"))
# Unset: derandomized, the same cases every run (CI). A number: that seed.
SEED = int(os.environ["FUZZ_SEED"]) if os.environ.get("FUZZ_SEED") else None

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

OPERATOR_PREFIXES = ("/api/v1/ledger/", "/api/v1/operations/", "/api/v1/test-clock")
OPERATOR_PATHS = ("/api/v1/members/{member_id}/kyc",)
# What only a supplier can do: bid, and confirm delivery of a pool it won.
SUPPLIER_PATHS = ("/api/v1/pools/{pool_id}/bids", "/api/v1/pools/{pool_id}/delivery")


def _iso(moment) -> str:
    return moment.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _post(client, path, token, body):
    kwargs = {} if body is None else {"json": body}
    response = client.post(path, headers={"Authorization": f"Bearer {token}"}, **kwargs)
    assert response.status_code in (200, 201), (path, response.status_code, response.get_json())
    return response.get_json()


@pytest.fixture
def world(app):
    """Members with tokens and objects of every kind in every state, made through the API.

    Pools 1-4 are open (2, 3 and 4 have card-backed pledges: card
    authorizations 1-3, so reauthorizing some still leaves others to switch
    to the wallet), 5 is awarded (waiting for delivery), 6 is delivered (its buyer
    can review it). Loan requests 1 and 2 are funded: loan 1 is active, loan
    2 repaid; request 3 is open; lending offer 1 is partly lent.
    """
    funds = {currency: MAX_AMOUNT for currency in app.config["CURRENCIES"]}
    member = make_member(funds=funds)
    lender = make_member(funds=funds)
    supplier = make_member("supplier", funds=funds)
    operator = make_member("operator")
    tokens = {name: token_for(m) for name, m in (("member", member), ("lender", lender), ("supplier", supplier))}
    tokens["operator"] = token_for(operator)
    tokens["member_ids"] = (member.id, lender.id, supplier.id)
    tokens["email"] = member.email
    client = app.test_client()
    deadline = _iso(now() + timedelta(days=3))
    for n in range(1, 7):
        pool = _post(
            client,
            "/api/v1/pools",
            tokens["member"],
            {
                "title": f"Pool {n}",
                "description": "Fuzz fixture",
                "unit": "box",
                "currency": "EUR",
                "min_volume": 10,
                "deadline": deadline,
            },
        )
        pledge = {"quantity": 20, "max_unit_price": 900} | ({"funding": "card"} if 2 <= n <= 4 else {})
        _post(client, f"/api/v1/pools/{pool['id']}/pledges", tokens["member"], pledge)
        _post(
            client,
            f"/api/v1/pools/{pool['id']}/bids",
            tokens["supplier"],
            {"tiers": [{"min_volume": 1, "unit_price": 800}], "capacity": 100},
        )
        _post(client, f"/api/v1/pools/{pool['id']}/comments", tokens["member"], {"body": "Count me in"})
        if n >= 5:
            assert _post(client, f"/api/v1/pools/{pool['id']}/close", tokens["member"], None)["status"] == "awarded"
        if n == 6:
            _post(client, f"/api/v1/pools/{pool['id']}/delivery", tokens["supplier"], None)
    _post(
        client,
        "/api/v1/lending-offers",
        tokens["lender"],
        {"amount": 200_000, "currency": "EUR", "min_rate_bps": 500, "max_part": 200_000, "terms": [], "grades": []},
    )
    for amount in (50_000, 20_000, 900_000):
        request = _post(
            client,
            "/api/v1/loan-requests",
            tokens["member"],
            {"amount": amount, "currency": "EUR", "term_months": 12, "max_rate_bps": 2000, "purpose": "Fuzz"},
        )
        _post(client, f"/api/v1/loan-requests/{request['id']}/comments", tokens["member"], {"body": "Thanks"})
    assert _post(client, "/api/v1/loans/2/payoff", tokens["member"], None)["loan"]["status"] == "repaid"
    tokens["account_codes"] = db.session.execute(select(Account.code).order_by(Account.id)).scalars().all()
    return tokens


@pytest.fixture
def api_schema(app):
    """The served document, requests sent into the app through WSGI (hypothesis settings: see test_api_fuzz)."""
    config = schemathesis.Config.from_dict({} if SEED is None else {"seed": SEED})
    return schemathesis.openapi.from_wsgi("/api/openapi.json", app, config=config)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request):
    """schemathesis 4.32's lazy schemas read and write ``node._nodeid``, which
    pytest 9.2 renamed (``_id``); give the node the old attribute to use."""
    request.node._nodeid = request.node.nodeid


def token_for_operation(tokens: dict, path: str) -> str:
    if path.startswith(OPERATOR_PREFIXES) or path in OPERATOR_PATHS:
        return tokens["operator"]
    if path in SUPPLIER_PATHS:
        return tokens["supplier"]
    return tokens["member"]


def reverify(member_ids) -> None:
    """The KYC operation may have rejected the fuzzing members; verify them again so later operations go deep."""
    db.session.execute(update(Member).where(Member.id.in_(member_ids)).values(kyc_status="verified"))
    db.session.commit()


_KEY_SUFFIXES = itertools.count(1)


def unique_idempotency_key(case) -> None:
    """Make a valid generated Idempotency-Key unique.

    The generator offers the same few keys ("0", ...) again and again, so
    nearly every command would be a replay or a 409 idempotency_key_reused,
    and the fuzzer would never get past the key. Valid keys get a unique
    suffix (what they start with is still the generated text); invalid ones
    (empty, too long) are sent as generated.
    """
    headers = case.headers or {}
    for name in list(headers):
        if name.lower() == "idempotency-key" and isinstance(headers[name], str) and 1 <= len(headers[name]) <= 255:
            headers[name] = f"{headers[name][:200]}-{next(_KEY_SUFFIXES)}"


# The world's objects have ids 1 .. KNOWN_IDS (fewer for some kinds).
KNOWN_IDS = 6


def aim_at_known_ids(case) -> None:
    """Point two thirds of the larger generated ids at the world's objects.

    Left alone, nearly every generated id names nothing and the operation
    stops at 404. Ids that are not valid (0, negative, beyond 2**63-1, not
    numbers) and a third of the valid large ones are sent as generated.
    """
    parameters = case.path_parameters or {}
    for name, value in list(parameters.items()):
        if isinstance(value, int) and not isinstance(value, bool) and KNOWN_IDS < value <= MAX_ID and value % 3:
            parameters[name] = value % KNOWN_IDS + 1


def aim_at_live_authorizations(case, member_id: int) -> None:
    """Point half the card authorization ids in 1 .. KNOWN_IDS at the member's still authorized ones.

    Each successful reauthorize cancels the authorization it replaces, so
    the world's own are soon all cancelled and every later switch-to-wallet
    would stop at 409.
    """
    parameters = case.path_parameters or {}
    value = parameters.get("auth_id")
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= KNOWN_IDS and value % 2:
        live = (
            db.session.execute(
                select(CardAuthorization.id)
                .where(CardAuthorization.member_id == member_id, CardAuthorization.status == "authorized")
                .order_by(CardAuthorization.id)
            )
            .scalars()
            .all()
        )
        db.session.remove()
        if live:
            parameters["auth_id"] = live[value % len(live)]


def aim_at_known_accounts(case, codes: list[str]) -> None:
    """Point two thirds of the generated ledger account codes at accounts that exist."""
    parameters = case.path_parameters or {}
    value = parameters.get("code")
    if isinstance(value, str) and len(value) % 3:
        parameters["code"] = codes[len(value) % len(codes)]


def aim_at_real_credentials(case, email: str) -> None:
    """Sign in with the fuzzing member's email and password in two thirds of the well-formed ``POST /tokens`` bodies."""
    body = case.body
    if (
        case.operation.path == "/api/v1/tokens"
        and isinstance(body, dict)
        and isinstance(body.get("email"), str)
        and isinstance(body.get("password"), str)
        and len(body["password"]) % 3
    ):
        body["email"], body["password"] = email, PASSWORD


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=SEED is None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_fuzz(case, world):
    token = token_for_operation(world, case.operation.path)
    unique_idempotency_key(case)
    aim_at_known_ids(case)
    aim_at_live_authorizations(case, world["member_ids"][0])
    aim_at_known_accounts(case, world["account_codes"])
    aim_at_real_credentials(case, world["email"])
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)
    if case.method.upper() not in ("GET", "HEAD", "OPTIONS"):
        db.session.remove()
        assert_ledger_invariants()
    if case.operation.path in OPERATOR_PATHS:
        reverify(world["member_ids"])


# --- what the fuzzer found, pinned down -------------------------------------------------------


def test_every_status_is_documented_per_operation(app):
    """No catch-all ``default`` response; each operation lists its statuses."""
    spec = app.test_client().get("/api/openapi.json").get_json()
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = set(operation["responses"])
            assert "default" not in responses, (method, path)
            if operation.get("security"):
                assert {"401", "403"} <= responses, (method, path)
            if "{" in path:
                assert "404" in responses, (method, path)
            if "requestBody" in operation:
                assert {"400", "415", "422"} <= responses, (method, path)
    tokens = spec["paths"]["/api/v1/tokens"]["post"]["responses"]
    assert {"401", "429"} <= set(tokens)


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/api/v1/pools/{id}/pledges"),
        ("POST", "/api/v1/pools/{id}/pledges"),
        ("GET", "/api/v1/pools/{id}/bids"),
        ("GET", "/api/v1/pools/{id}/reviews"),
        ("POST", "/api/v1/pools/{id}/comments"),
        ("POST", "/api/v1/loan-requests/{id}/comments"),
        ("DELETE", "/api/v1/lending-offers/{id}"),
        ("POST", "/api/v1/loans/{id}/payoff"),
    ],
)
@pytest.mark.parametrize("raw_id", ["0", "00", "01", "9223372036854775808", "99999999999999999999"])
def test_an_id_out_of_range_is_404_even_where_the_path_takes_other_methods(api, method, path, raw_id):
    """werkzeug's int(min=1) rejected 0 only after matching, and answered 405 on these paths."""
    token = token_for(make_member())
    response = api.request(method, path.replace("{id}", raw_id), token=token, json_body={"body": "x"})
    assert response.status_code == 404, response.get_json()
    assert response.get_json()["reason"] == "not_found"


def test_the_largest_id_still_routes(api):
    token = token_for(make_member())
    response = api.get("/api/v1/pools/9223372036854775807/pledges", token=token)
    assert response.status_code == 404
    assert "9223372036854775807" in response.get_json()["message"]


def test_payoff_quote_of_a_repaid_loan_is_a_documented_409(app, world):
    response = app.test_client().get("/api/v1/loans/2/payoff", headers={"Authorization": f"Bearer {world['member']}"})
    assert response.status_code == 409
    spec = app.test_client().get("/api/openapi.json").get_json()
    assert "409" in spec["paths"]["/api/v1/loans/{loan_id}/payoff"]["get"]["responses"]


@pytest.mark.parametrize(
    "path, operator, status, field",
    [
        ("/api/v1/pools?q=a%00b", False, 422, "q"),
        ("/api/v1/ledger/entries?account=a%00b", True, 422, "account"),
        ("/api/v1/ledger/entries?kind=a%00b", True, 422, "kind"),
        ("/api/v1/ledger/accounts/a%00b", True, 404, None),
    ],
)
def test_nul_in_a_query_or_path_is_rejected_not_a_database_error(api, path, operator, status, field):
    """PostgreSQL text cannot hold NUL: these were 500 there (found by the fuzzer on PostgreSQL)."""
    token = token_for(make_member("operator" if operator else "member"))
    response = api.get(path, token=token)
    assert response.status_code == status, response.get_json()
    if field:
        assert field in response.get_json()["errors"]


def test_nul_in_an_idempotency_key_is_422_not_a_database_error(api):
    token = token_for(make_member(funds={"EUR": 10_000}))
    body = {"amount": 100, "currency": "EUR", "min_rate_bps": 100, "max_part": 100, "terms": [], "grades": []}
    response = api.post("/api/v1/lending-offers", body, token=token, headers={"Idempotency-Key": "a\x00b"})
    assert response.status_code == 422, response.get_json()
    assert "Idempotency-Key" in response.get_json()["errors"]
    assert api.get("/api/v1/lending-offers", token=token).get_json() == []


def test_nul_in_an_account_code_is_404_on_the_operators_page_too(client):
    """The page behind the same lookup as ``GET /ledger/accounts/{code}`` was a 500 on PostgreSQL as well."""
    operator = make_member("operator")
    login(client, operator.email)
    assert client.get("/ops/accounts/a%00b").status_code == 404
