"""API tokens: stored only as a digest, revocable with effect on the very next request, and the only key.

Swept over every operation of the served OpenAPI document that needs a
token: a revoked token, a browser's session cookie (the API is CSRF-exempt,
so cookies must never authenticate it), the stored digest and other schemes
all get 401, and nothing in the database changes.
"""

from __future__ import annotations

import hashlib
import re

import pytest
from sqlalchemy import select

from marketplace.accounts.models import ApiToken
from marketplace.extensions import db
from tests.helpers import PASSWORD, ApiClient, make_member

from .conftest import (
    assert_unchanged,
    changed_tables,
    database_state,
    openapi_operations,
    openapi_path,
    page_token,
    signed_in,
)

ANONYMOUS = {("POST", "/api/v1/members"), ("POST", "/api/v1/tokens")}


@pytest.fixture
def api(app):
    return ApiClient(app.test_client())


def _bearer_operations(app):
    return [(m, p) for m, p, op in openapi_operations(app) if (m, p) not in ANONYMOUS]


def _cells(state: dict) -> list[str]:
    out = []
    for rows in state.values():
        for row in rows:
            for value in row:
                if isinstance(value, (bytes, bytearray, memoryview)):
                    out.append(bytes(value).decode("utf-8", "replace"))
                elif value is not None:
                    out.append(str(value))
    return out


def _assert_refused_everywhere(app, world, send, what: str) -> None:
    """``send(method, url, body)`` gets 401 on every operation that needs a token, and changes nothing."""
    problems = []
    before = database_state()
    for method, path in _bearer_operations(app):
        url = openapi_path(path, world)
        response = send(method, url, {} if method in ("POST", "PUT") else None)
        if response.status_code != 401:
            problems.append(f"{method} {url}: {response.status_code}")
        elif response.get_json()["reason"] != "unauthorized":
            problems.append(f"{method} {url}: reason {response.get_json()['reason']}")
    assert problems == [], f"{what}:\n" + "\n".join(problems)
    assert_unchanged(before, what)
    assert len(_bearer_operations(app)) > 40


# ---------------------------------------------------------------- stored as a digest only


def test_no_token_is_stored_in_plain_text(app, api):
    member = make_member()
    secrets = []
    response = api.post("/api/v1/tokens", {"email": member.email, "password": PASSWORD, "name": "script"})
    assert response.status_code == 201
    assert set(response.get_json()) == {"token", "member"}
    secrets.append(response.get_json()["token"])
    client = signed_in(app, member)
    page = client.post("/settings/tokens", data={"name": "browser-made", "csrf_token": page_token(client)})
    secrets.append(re.search(r'id="new-token-secret" type="text" value="(mkt_[^"]+)"', page.get_data(as_text=True))[1])
    cells = _cells(database_state())
    rows = db.session.execute(select(ApiToken).order_by(ApiToken.id)).scalars().all()
    assert len(rows) == 2
    for secret, row in zip(secrets, rows, strict=True):
        assert len(secret) >= 40, "at least 32 random bytes"
        assert row.token_hash == hashlib.sha256(secret.encode()).hexdigest()
        secret_part = secret[len(row.prefix) :]
        assert len(secret_part) >= 32, "the shown prefix leaves most of the secret unstored"
        assert [c for c in cells if secret in c or secret_part in c] == []


def test_the_digest_prefix_or_a_near_miss_is_not_a_token(api, world):
    row = db.session.execute(select(ApiToken).where(ApiToken.member_id == world.owner.id)).scalar_one()
    secret = world.owner_token
    for candidate in (
        row.token_hash,
        row.prefix,
        secret[:-1],
        secret + "x",
        secret[:-1] + ("A" if secret[-1] != "A" else "B"),
        secret.upper(),
        " ",
    ):
        assert api.get("/api/v1/members/me", token=candidate).status_code == 401, candidate
    assert api.get("/api/v1/members/me", token=secret).get_json()["id"] == world.owner.id


def test_only_the_bearer_scheme_carries_a_token(api, world):
    secret = world.owner_token
    for headers, query in (
        ({"Authorization": f"Token {secret}"}, None),
        ({"Authorization": f"Basic {secret}"}, None),
        ({"Authorization": secret}, None),
        ({"X-Api-Key": secret}, None),
        ({}, {"access_token": secret}),
        ({}, {"token": secret}),
    ):
        response = api.get("/api/v1/wallet", headers=headers, query=query)
        assert response.status_code == 401, (headers, query)


# ---------------------------------------------------------------- revoking


def test_a_revoked_token_is_refused_at_once_everywhere(app, api, world):
    client = signed_in(app, world.owner)
    spare = api.post("/api/v1/tokens", {"email": world.owner.email, "password": PASSWORD}).get_json()["token"]
    assert api.get("/api/v1/members/me", token=world.owner_token).status_code == 200
    response = client.post(
        f"/settings/tokens/{world.ids['token']}/revoke", data={"csrf_token": page_token(client, "/settings")}
    )
    assert response.status_code == 302
    _assert_refused_everywhere(
        app,
        world,
        lambda method, url, body: api.request(method, url, token=world.owner_token, json_body=body),
        "a revoked token",
    )
    assert api.get("/api/v1/members/me", token=spare).get_json()["id"] == world.owner.id  # only that token


def test_revoking_twice_changes_nothing_and_keeps_it_revoked(app, api, world):
    client = signed_in(app, world.owner)
    url = f"/settings/tokens/{world.ids['token']}/revoke"
    client.post(url, data={"csrf_token": page_token(client)})
    before = database_state()
    assert client.post(url, data={"csrf_token": page_token(client)}).status_code == 302
    assert changed_tables(before, database_state()) == {}
    assert api.get("/api/v1/wallet", token=world.owner_token).status_code == 401


# ---------------------------------------------------------------- no other way in


def test_a_browser_session_never_authenticates_the_api(app, world):
    """The API is CSRF-exempt: if a cookie counted, any site could make a signed-in member's browser call it."""
    browser = signed_in(app, world.owner)
    assert browser.get("/settings").status_code == 200
    _assert_refused_everywhere(
        app,
        world,
        lambda method, url, body: browser.open(url, method=method, json=body, headers={"Accept": "application/json"}),
        "a session cookie without a token",
    )


def test_a_forged_token_is_refused_everywhere(app, api, world):
    _assert_refused_everywhere(
        app,
        world,
        lambda method, url, body: api.request(method, url, token="mkt_" + "A" * 43, json_body=body),
        "a forged token",
    )
