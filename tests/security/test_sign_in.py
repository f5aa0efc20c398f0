"""Sign-in: rate limited per client whatever the address tried, no account enumeration, a fresh session.

tests/web/test_accounts_pages.py already checks the page's limit with one
address, the one message for both mistakes and the session cookie's flags;
here: spraying many addresses, the token endpoint, a spoofed forwarding
header, byte-for-byte equal answers (page and API) and equal password work,
the session cookie at sign-in and sign-out, and the remember-me cookie.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from marketplace.accounts import services as accounts
from marketplace.accounts.models import ApiToken
from marketplace.extensions import db, limiter
from tests.helpers import PASSWORD, ApiClient, csrf_token, make_member

from .conftest import browser, page_token


@pytest.fixture
def strict_limit(app):
    old = app.config["LOGIN_RATE_LIMIT"]
    app.config["LOGIN_RATE_LIMIT"] = "3 per minute"
    limiter.reset()
    try:
        yield
    finally:
        app.config["LOGIN_RATE_LIMIT"] = old
        limiter.reset()


def _tokens() -> int:
    return db.session.execute(select(func.count(ApiToken.id))).scalar_one()


def _signed_in(client) -> bool:
    return client.get("/settings").status_code == 200


# ---------------------------------------------------------------- rate limits


def test_the_page_limit_counts_every_address_tried(app, strict_limit):
    """Trying three different addresses uses up the limit: spraying passwords over accounts is slowed too."""
    member = make_member()
    client = browser(app)
    token = page_token(client, "/login")
    for email in ("a@example.test", "b@example.test", member.email):
        response = client.post("/login", data={"email": email, "password": "wrong-password", "csrf_token": token})
        assert response.status_code == 401
    response = client.post("/login", data={"email": member.email, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 429
    assert not _signed_in(client)


def test_the_token_endpoint_is_rate_limited(app, strict_limit):
    member = make_member()
    api = ApiClient(app.test_client())
    for email in ("a@example.test", "b@example.test", member.email):
        assert api.post("/api/v1/tokens", {"email": email, "password": "wrong-password"}).status_code == 401
    response = api.post("/api/v1/tokens", {"email": member.email, "password": PASSWORD})
    assert response.status_code == 429
    body = response.get_json()
    assert body["reason"] == "limit_exceeded" and "token" not in body
    assert _tokens() == 0


def test_a_forged_forwarding_header_does_not_reset_the_limit(app, strict_limit):
    member = make_member()
    api = ApiClient(app.test_client())
    for n in range(3):
        headers = {"X-Forwarded-For": f"203.0.113.{n}", "X-Real-IP": f"203.0.113.{n}"}
        api.post("/api/v1/tokens", {"email": member.email, "password": "wrong"}, headers=headers)
    response = api.post(
        "/api/v1/tokens", {"email": member.email, "password": PASSWORD}, headers={"X-Forwarded-For": "198.51.100.7"}
    )
    assert response.status_code == 429
    assert _tokens() == 0


# ---------------------------------------------------------------- no account enumeration


def _page_answer(app, email: str, password: str) -> tuple[int, str, list[str]]:
    client = browser(app)
    token = page_token(client, "/login")
    response = client.post("/login", data={"email": email, "password": password, "csrf_token": token})
    html = response.get_data(as_text=True).replace(token, "TOKEN").replace(email, "EMAIL")
    html = re.sub(r'name="csrf_token" type="hidden" value="[^"]*"', 'name="csrf_token"', html)
    # A CSRF token is signed with the second it was made in: one made after the clock ticked differs.
    html = re.sub(r'name="csrf_token" value="[^"]*"', 'name="csrf_token" value="TOKEN"', html)
    cookies = sorted(c.split("=", 1)[0] for c in response.headers.getlist("Set-Cookie"))
    return response.status_code, html, cookies


def _other_members():
    """A member with a wrong password in each state the account can be in."""
    rejected = make_member(verified=False)
    accounts.set_kyc_status(make_member("operator").id, rejected.id, "rejected")
    return {"member": make_member(), "unverified": make_member(verified=False), "rejected": rejected}


def test_the_sign_in_page_answers_the_same_for_unknown_and_known_addresses(app):
    members = _other_members()
    unknown = _page_answer(app, "nobody-here@example.test", "wrong-password")
    assert unknown[0] == 401
    for state, member in members.items():
        assert _page_answer(app, member.email, "wrong-password") == unknown, state


def test_the_token_endpoint_answers_the_same_for_unknown_and_known_addresses(app):
    members = _other_members()
    api = ApiClient(app.test_client())
    unknown = api.post("/api/v1/tokens", {"email": "nobody-here@example.test", "password": "wrong-password"})
    assert unknown.status_code == 401
    for state, member in members.items():
        known = api.post("/api/v1/tokens", {"email": member.email, "password": "wrong-password"})
        assert (known.status_code, known.get_json()) == (unknown.status_code, unknown.get_json()), state
        assert sorted(known.headers.keys()) == sorted(unknown.headers.keys()), state


def test_an_unknown_address_costs_the_same_password_work(app, monkeypatch):
    """Timing: an unknown address still checks one password hash of the same kind as a member's."""
    member = make_member()
    checked = []
    real = accounts.check_password_hash

    def recording(pwhash, password):
        checked.append(pwhash.split("$", 1)[0])
        return real(pwhash, password)

    monkeypatch.setattr(accounts, "check_password_hash", recording)
    api = ApiClient(app.test_client())
    api.post("/api/v1/tokens", {"email": member.email, "password": "wrong-password"})
    known = list(checked)
    checked.clear()
    api.post("/api/v1/tokens", {"email": "nobody-here@example.test", "password": "wrong-password"})
    assert known == checked == [member.password_hash.split("$", 1)[0]]


# ---------------------------------------------------------------- the session


def _cookie(client, name: str = "session") -> str | None:
    cookie = client.get_cookie(name)
    return cookie.value if cookie is not None else None


def _set_cookie_attributes(response, name: str) -> list[str]:
    for header in response.headers.getlist("Set-Cookie"):
        if header.startswith(f"{name}="):
            return [part.strip() for part in header.split(";")[1:]]
    raise AssertionError(f"no {name} cookie set: {response.headers.getlist('Set-Cookie')}")


def _with_cookie(app, value: str, name: str = "session"):
    client = browser(app)
    client.set_cookie(name, value)
    return client


def test_signing_in_issues_a_new_session_and_the_old_one_stays_anonymous(app):
    member = make_member()
    client = browser(app)
    token = page_token(client, "/login")
    before = _cookie(client)
    assert before, "the sign-in page keeps its CSRF token in the session"
    response = client.post("/login", data={"email": member.email, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302
    after = _cookie(client)
    assert after and after != before
    attributes = _set_cookie_attributes(response, "session")
    assert "HttpOnly" in attributes and "SameSite=Lax" in attributes and "Path=/" in attributes
    assert not any(a.lower().startswith("domain=") for a in attributes)
    assert _signed_in(_with_cookie(app, after))
    assert not _signed_in(_with_cookie(app, before)), "a session fixed before sign-in must not be signed in"


def test_signing_up_issues_a_new_session_too(app):
    client = browser(app)
    token = page_token(client, "/signup")
    before = _cookie(client)
    data = {"email": "new@example.test", "display_name": "N", "password": PASSWORD, "confirm": PASSWORD}
    response = client.post("/signup", data={**data, "role": "member", "csrf_token": token})
    assert response.status_code == 302
    assert _cookie(client) != before
    assert not _signed_in(_with_cookie(app, before))
    assert {"HttpOnly", "SameSite=Lax"} <= set(_set_cookie_attributes(response, "session"))


def test_remember_me_cookie_is_httponly_and_samesite(app):
    member = make_member()
    client = browser(app)
    token = page_token(client, "/login")
    response = client.post(
        "/login", data={"email": member.email, "password": PASSWORD, "remember": "y", "csrf_token": token}
    )
    assert response.status_code == 302
    attributes = _set_cookie_attributes(response, "remember_token")
    assert "HttpOnly" in attributes and "SameSite=Lax" in attributes


def test_with_secure_cookies_on_the_remember_me_cookie_is_secure_too(app):
    """Production sets SESSION_COOKIE_SECURE=1 (README); the year-long remember-me cookie must follow it."""
    assert app.config["REMEMBER_COOKIE_SECURE"] == app.config["SESSION_COOKIE_SECURE"]
    member = make_member()
    saved = {key: app.config[key] for key in ("SESSION_COOKIE_SECURE", "REMEMBER_COOKIE_SECURE")}
    app.config.update(SESSION_COOKIE_SECURE=True, REMEMBER_COOKIE_SECURE=True)
    try:
        client = browser(app)
        page = client.get("/login", base_url="https://localhost").get_data(as_text=True)
        data = {"email": member.email, "password": PASSWORD, "remember": "y", "csrf_token": csrf_token(page)}
        https = {"base_url": "https://localhost", "headers": {"Referer": "https://localhost/login"}}  # SSL-strict CSRF
        response = client.post("/login", data=data, **https)
    finally:
        app.config.update(saved)
    assert "Secure" in _set_cookie_attributes(response, "session")
    assert "Secure" in _set_cookie_attributes(response, "remember_token")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_the_production_config_makes_the_remember_me_cookie_secure_with_the_session_cookie():
    """create_app derives REMEMBER_COOKIE_SECURE from SESSION_COOKIE_SECURE (a fresh app, in its own process)."""
    import subprocess
    import sys

    code = (
        "from marketplace import create_app\n"
        "app = create_app({'SQLALCHEMY_DATABASE_URI': 'sqlite://', 'SECRET_KEY': 'x', 'SESSION_COOKIE_SECURE': True})\n"
        "print(app.config['REMEMBER_COOKIE_SECURE'])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.split() == ["True"]


def test_signing_out_ends_the_session(app):
    member = make_member()
    client = browser(app)
    token = page_token(client, "/login")
    client.post("/login", data={"email": member.email, "password": PASSWORD, "csrf_token": token})
    response = client.post("/logout", data={"csrf_token": page_token(client, "/")})
    assert response.status_code == 302
    assert not _signed_in(client)


@pytest.mark.parametrize("cookie", ["session", "remember_token"])
def test_a_cookie_copied_before_sign_out_is_useless_after_it(app, cookie):
    member = make_member()
    client = browser(app)
    token = page_token(client, "/login")
    data = {"email": member.email, "password": PASSWORD, "remember": "y", "csrf_token": token}
    assert client.post("/login", data=data).status_code == 302
    stolen = _cookie(client, cookie)
    assert stolen
    client.post("/logout", data={"csrf_token": page_token(client, "/")})
    assert not _signed_in(client)
    assert not _signed_in(_with_cookie(app, stolen, cookie))
