"""No IDOR in the JSON API: another member's token gets 403/404 on every object and nothing changes.

Every operation of the served OpenAPI document is classified below (an
object of one member, a list scoped to the caller, readable by every member,
a create for the caller, operators only, or no token at all); a new
operation that is not classified fails ``test_every_api_operation_is_classified``,
so it cannot slip past these checks unnoticed.
"""

from __future__ import annotations

import pytest

from marketplace.wallet import services as wallet
from tests.api.test_authorization import OPERATOR_ONLY
from tests.helpers import ApiClient, token_for

from .conftest import (
    OWNER_NOTE,
    OWNER_TOKEN_NAME,
    assert_unchanged,
    database_state,
    openapi_operations,
    openapi_path,
    openapi_template,
)

# (METHOD, OpenAPI path, values for its parameters, JSON body, who tries): the object is the owner's.
OWNED = [
    ("GET", "/api/v1/wallet/payments/{payment_id}", {"payment_id": "deposit"}, None, ("intruder",)),
    ("GET", "/api/v1/wallet/payments/{payment_id}", {"payment_id": "withdrawal"}, None, ("intruder",)),
    ("POST", "/api/v1/wallet/card-authorizations/{auth_id}/reauthorize", {}, {}, ("intruder",)),
    ("POST", "/api/v1/wallet/card-authorizations/{auth_id}/switch-to-wallet", {}, None, ("intruder",)),
    ("DELETE", "/api/v1/pools/{pool_id}/pledges/{pledge_id}", {}, None, ("intruder", "supplier")),
    ("DELETE", "/api/v1/pools/{pool_id}/pledges/{pledge_id}", {"pledge_id": "card_pledge"}, None, ("intruder",)),
    ("POST", "/api/v1/pools/{pool_id}/close", {}, None, ("intruder", "supplier")),
    ("POST", "/api/v1/pools/{pool_id}/cancel", {}, None, ("intruder", "supplier")),
    ("POST", "/api/v1/pools/{pool_id}/delivery", {"pool_id": "awarded_pool"}, None, ("intruder",)),
    ("POST", "/api/v1/pools/{pool_id}/reviews", {"pool_id": "awarded_pool"}, {"rating": 1, "body": "x"}, ("intruder",)),
    ("GET", "/api/v1/lending-offers/{offer_id}", {}, None, ("intruder", "lender")),
    ("DELETE", "/api/v1/lending-offers/{offer_id}", {}, None, ("intruder", "lender")),
    ("POST", "/api/v1/loan-requests/{request_id}/cancel", {}, None, ("intruder", "lender")),
    ("GET", "/api/v1/loans/{loan_id}", {}, None, ("intruder",)),
    ("GET", "/api/v1/loans/{loan_id}", {"loan_id": "lent_loan"}, None, ("intruder",)),
    # The lender may see the loan it funded, but only the borrower pays it.
    ("POST", "/api/v1/loans/{loan_id}/repayments", {}, {"amount": 1_000}, ("intruder", "lender")),
    ("GET", "/api/v1/loans/{loan_id}/payoff", {}, None, ("intruder", "lender")),
    ("POST", "/api/v1/loans/{loan_id}/payoff", {}, None, ("intruder", "lender")),
]

# GET lists that hold only the caller's things: (path, query, whose list is non-empty for the check to bite).
SCOPED = [
    ("/api/v1/members/me", None, "owner"),
    ("/api/v1/wallet", None, "owner"),
    ("/api/v1/wallet/transactions", None, "owner"),
    ("/api/v1/wallet/card-authorizations", None, "owner"),
    ("/api/v1/pledges", None, "owner"),
    ("/api/v1/pools/{pool_id}/pledges", None, "owner"),
    ("/api/v1/pools/{pool_id}/bids", None, "supplier"),
    ("/api/v1/lending-offers", None, "owner"),
    ("/api/v1/loan-requests", {"mine": "true"}, "owner"),
    ("/api/v1/loans", None, "owner"),
    ("/api/v1/portfolio", None, "owner"),
    ("/api/v1/notifications", None, "owner"),
]

# Readable (or usable) by every signed-in member by design: the marketplace's shared book and threads.
PUBLIC = {
    ("GET", "/api/v1/pools"): "the pool list",
    ("GET", "/api/v1/pools/{pool_id}"): "a pool (bidders not named while open)",
    ("GET", "/api/v1/pools/{pool_id}/comments"): "a pool's thread",
    ("GET", "/api/v1/pools/{pool_id}/reviews"): "a delivered pool's reviews",
    ("GET", "/api/v1/loan-requests/{request_id}"): "the request book",
    ("GET", "/api/v1/loan-requests/{request_id}/comments"): "a request's thread",
    ("GET", "/api/v1/suppliers/{supplier_id}"): "a supplier's public profile",
    ("GET", "/api/v1/test-clock"): "the app's clock (tests only)",
}

# POSTs that create something for the caller (the body may not name anyone else): (path, body, who posts).
CREATES = {
    ("POST", "/api/v1/pools"): (
        {
            "title": "Mine",
            "description": "",
            "unit": "kg",
            "currency": "EUR",
            "min_volume": 5,
            "deadline": "2027-06-01T00:00:00Z",
        },
        "intruder",
    ),
    ("POST", "/api/v1/pools/{pool_id}/pledges"): ({"quantity": 1, "max_unit_price": 100}, "intruder"),
    ("POST", "/api/v1/pools/{pool_id}/bids"): (
        {"tiers": [{"min_volume": 1, "unit_price": 500}], "capacity": 9},
        "supplier",
    ),
    ("POST", "/api/v1/pools/{pool_id}/comments"): ({"body": "Hello"}, "intruder"),
    ("POST", "/api/v1/loan-requests"): (
        {"amount": 10_000, "currency": "EUR", "term_months": 6, "max_rate_bps": 500, "purpose": "x"},
        "intruder",
    ),
    ("POST", "/api/v1/loan-requests/{request_id}/comments"): ({"body": "Hello"}, "intruder"),
    ("POST", "/api/v1/lending-offers"): (
        {"amount": 10_000, "currency": "EUR", "min_rate_bps": 5_000, "max_part": 10_000, "terms": [], "grades": []},
        "intruder",
    ),
    ("POST", "/api/v1/wallet/deposits"): ({"amount": 100, "currency": "EUR"}, "intruder"),
    ("POST", "/api/v1/wallet/withdrawals"): ({"amount": 100, "currency": "EUR"}, "intruder"),
}
# Fields naming whose an item is.
MEMBER_KEYS = ("member_id", "borrower_id", "lender_id", "supplier_id")
# Fields a body could use to act for someone else.
OWNER_FIELDS = ("member_id", "borrower_id", "lender_id", "organizer_id", "supplier_id", "author_id", "owner_id")

# No token: sign-up and sign-in.
ANONYMOUS = {("POST", "/api/v1/members"), ("POST", "/api/v1/tokens")}

# Operators only: tests/api/test_authorization.py's OPERATOR_ONLY checks members and suppliers get 403 there.
OPERATORS = {
    (method, path.replace("{target}", "{member_id}").replace("{wallet}", "{code}")) for method, path, _ in OPERATOR_ONLY
}


def _token_of(world, name: str) -> str:
    """A Bearer token of one of the world's members."""
    known = {"owner": world.owner_token, "intruder": world.intruder_token, "lender": world.lender_token}
    return known.get(name) or token_for(getattr(world, name))


@pytest.fixture
def api(app):
    return ApiClient(app.test_client())


# ---------------------------------------------------------------- the table covers the whole API


def test_every_api_operation_is_classified(app):
    classified = (
        {(m, p) for m, p, *_ in OWNED}
        | {("GET", p) for p, *_ in SCOPED}
        | set(PUBLIC)
        | set(CREATES)
        | ANONYMOUS
        | OPERATORS
    )
    documented = {(method, path) for method, path, _ in openapi_operations(app)}
    assert documented - classified == set(), "classify these operations in tests/security/test_idor_api.py"
    assert classified - documented == set(), "these classified operations are gone from the OpenAPI document"


def test_every_api_route_is_in_the_openapi_document(app):
    """So the classification above, made from the document, is a classification of every route."""
    documented = {(method, path) for method, path, _ in openapi_operations(app)}
    routes = {
        (method, openapi_template(rule))
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1/")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert routes - documented == set()


def test_bearer_security_is_documented_on_every_member_operation(app):
    for method, path, operation in openapi_operations(app):
        if (method, path) in ANONYMOUS:
            assert not operation.get("security"), (method, path)
        else:
            assert operation.get("security") == [{"bearerAuth": []}], (method, path)


# ---------------------------------------------------------------- another member's objects


def _owned_cases():
    for method, path, values, body, actors in OWNED:
        for actor in actors:
            label = "-".join(f"{k}={v}" for k, v in values.items())
            yield pytest.param(method, path, values, body, actor, id=f"{method} {path} {label} as {actor}".strip())


@pytest.mark.parametrize(("method", "path", "values", "body", "actor"), list(_owned_cases()))
def test_another_member_gets_403_or_404_and_nothing_changes(api, world, method, path, values, body, actor):
    url = openapi_path(path, world, **{k: world.ids[v] for k, v in values.items()})
    token = _token_of(world, actor)
    before = database_state()
    response = api.request(method, url, token=token, json_body=body)
    assert response.status_code in (403, 404), (method, url, response.status_code, response.get_json())
    assert response.get_json()["reason"] in ("forbidden", "not_found")
    text = response.get_data(as_text=True)
    assert world.owner.email not in text and OWNER_NOTE not in text
    assert_unchanged(before, f"{method} {url} as {actor}")


def test_the_owner_reads_every_object_the_table_names(api, world):
    """The table's URLs name real objects: the owner gets them (so a 404 above is not a typo)."""
    for method, path, values, _body, _actors in OWNED:
        if method != "GET":
            continue
        url = openapi_path(path, world, **{k: world.ids[v] for k, v in values.items()})
        assert api.get(url, token=world.owner_token).status_code == 200, url


# ---------------------------------------------------------------- lists scoped to the caller


def _items(body) -> list[dict]:
    if isinstance(body, list):
        return body
    if "parts" in body:
        return body["parts"]
    if "balances" in body:
        return [{"id": (row["currency"], row["balance"], row["held"]), **row} for row in body["balances"]]
    return [body]


@pytest.mark.parametrize(("path", "query", "holder"), SCOPED, ids=[p for p, *_ in SCOPED])
def test_lists_hold_only_the_callers_own(api, world, path, query, holder):
    url = openapi_path(path, world)
    holder_token = _token_of(world, holder)
    theirs = api.get(url, token=holder_token, query=query)
    assert theirs.status_code == 200
    their_ids = {
        item.get("id")
        for item in _items(theirs.get_json())
        if world.intruder.id not in {item.get(key) for key in MEMBER_KEYS}  # the organizer sees the intruder's too
    }
    assert their_ids, f"{url}: the {holder}'s list is empty, so the check below would prove nothing"
    before = database_state()
    mine = api.get(url, token=world.intruder_token, query=query)
    assert mine.status_code == 200
    assert their_ids.isdisjoint({item.get("id") for item in _items(mine.get_json())}), (url, mine.get_json())
    text = mine.get_data(as_text=True)
    assert world.owner.email not in text and OWNER_NOTE not in text and OWNER_TOKEN_NAME not in text
    for item in _items(mine.get_json()):
        for key in MEMBER_KEYS:
            assert item.get(key, world.intruder.id) == world.intruder.id, (url, item)
    assert_unchanged(before, url)


def test_the_wallet_is_the_callers_to_the_cent(api, world):
    body = api.get("/api/v1/wallet", token=world.intruder_token).get_json()
    assert body == {"balances": wallet.balances(world.intruder.id)}


def test_public_reads_do_not_leak_private_data(api, world):
    for method, path in PUBLIC:
        for values in ({}, {"pool_id": world.ids["awarded_pool"], "request_id": world.ids["borrowed_request"]}):
            response = api.request(method, openapi_path(path, world, **values), token=world.intruder_token)
            assert response.status_code == 200, (path, response.get_json())
            text = response.get_data(as_text=True)
            assert world.owner.email not in text and OWNER_NOTE not in text and OWNER_TOKEN_NAME not in text, path


# ---------------------------------------------------------------- creating: only ever for the caller


@pytest.mark.parametrize(("method", "path"), sorted(CREATES), ids=[f"{m} {p}" for m, p in sorted(CREATES)])
def test_a_body_cannot_act_for_another_member(api, world, method, path):
    body, actor = CREATES[(method, path)]
    token = _token_of(world, actor)
    url = openapi_path(path, world)
    before = database_state()
    for name in OWNER_FIELDS:
        response = api.request(method, url, token=token, json_body={**body, name: world.owner.id})
        assert response.status_code == 422, (url, name, response.get_json())
        assert name in response.get_json()["errors"], (url, name, response.get_json())
    assert_unchanged(before, url)
    plain = api.request(method, url, token=token, json_body=body)
    assert plain.status_code == 201, (url, plain.get_json())  # the body is valid without the extra field


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/wallet/withdrawals", {"amount": 500, "currency": "EUR"}),
        (
            "/api/v1/lending-offers",
            {"amount": 10_000, "currency": "EUR", "min_rate_bps": 5_000, "max_part": 10_000, "terms": [], "grades": []},
        ),
        ("/api/v1/loan-requests", {"amount": 10_000, "currency": "EUR", "term_months": 6, "max_rate_bps": 500}),
        ("/api/v1/wallet/deposits", {"amount": 500, "currency": "EUR"}),
    ],
)
def test_an_idempotency_key_never_replays_another_members_answer(api, world, path, body):
    key = {"Idempotency-Key": "shared-key-1"}
    first = api.post(path, body, token=world.owner_token, headers=key)
    assert first.status_code == 201, first.get_json()
    second = api.post(path, body, token=world.intruder_token, headers=key)
    assert second.status_code == 201, second.get_json()
    assert second.get_json()["id"] != first.get_json()["id"]
    for field in ("borrower_id", "lender_id", "member_id"):
        if field in second.get_json():
            assert second.get_json()[field] == world.intruder.id
    assert world.owner.email not in second.get_data(as_text=True)
