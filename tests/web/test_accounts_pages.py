"""Sign-up, sign-in, sign-out, settings and API tokens through the browser pages (CSRF on)."""

from __future__ import annotations

import re

import pytest
from flask import render_template_string
from flask.testing import FlaskClient
from sqlalchemy import func, select

from marketplace.accounts.models import ApiToken, Member
from marketplace.extensions import db, limiter
from tests.helpers import PASSWORD, csrf_token, login, make_member

SKIP_LINK = '<a class="skip-link" href="#main">Skip to content</a>'


class IsolatedClient(FlaskClient):
    """Each request in its own app context, as in production.

    The harness keeps one app context pushed for the whole test, and a request
    reuses it: ``flask.g`` (where Flask-Login caches the user and Flask-WTF the
    CSRF token) would then leak from one request into the next.
    """

    def open(self, *args, **kwargs):
        with self.application.app_context():
            return super().open(*args, **kwargs)


@pytest.fixture
def client(app):
    app.test_client_class = IsolatedClient
    try:
        yield app.test_client()
    finally:
        app.test_client_class = None


@pytest.fixture
def api(client):
    from tests.helpers import ApiClient

    return ApiClient(client)


def _members() -> int:
    return db.session.execute(select(func.count(Member.id))).scalar_one()


def _token(client, path: str) -> str:
    return csrf_token(client.get(path).get_data(as_text=True))


def _signup(client, *, path: str = "/signup", **fields):
    data = {
        "email": "new@example.test",
        "display_name": "New Member",
        "password": PASSWORD,
        "confirm": PASSWORD,
        "role": "member",
    }
    data.update(fields)
    data["csrf_token"] = _token(client, "/signup")
    return client.post(path, data=data)


def _signed_in(client) -> bool:
    return client.get("/settings").status_code == 200


def _field_error(html: str, field_id: str) -> str:
    """The error block tied to the input: role=alert, referenced by aria-describedby."""
    match = re.search(rf'<div class="field-error" id="{field_id}-error" role="alert">(.*?)</div>', html, re.S)
    assert match, f"no error shown for {field_id}"
    input_tag = re.search(rf'<input[^>]*\bid="{field_id}"[^>]*>', html)
    assert input_tag, f"no input {field_id}"
    described = re.search(r'aria-describedby="([^"]*)"', input_tag.group(0))
    assert described and f"{field_id}-error" in described.group(1).split(), input_tag.group(0)
    assert 'aria-invalid="true"' in input_tag.group(0)
    return match.group(1)


# ---------- sign-up ----------


def test_signup_creates_member_and_signs_in(client):
    page = client.get("/signup")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert '<label for="email">' in html and 'id="email"' in html
    r = _signup(client, email="  Fresh@Example.TEST ", role="supplier")
    assert r.status_code == 302
    assert r.headers["Location"] == "/"
    member = db.session.execute(select(Member).where(Member.email == "fresh@example.test")).scalar_one()
    assert member.role == "supplier"
    assert member.kyc_status == "unverified"
    assert member.display_name == "New Member"
    home = client.get("/").get_data(as_text=True)
    assert "Welcome, New Member!" in home
    assert "Sign out" in home
    assert _signed_in(client)


def test_signup_follows_safe_next_only(client):
    r = _signup(client, path="/signup?next=/wallet", email="a@example.test")
    assert r.headers["Location"] == "/wallet"
    client.post("/logout", data={"csrf_token": _token(client, "/")})
    r = _signup(client, path="/signup?next=https://evil.example/x", email="b@example.test")
    assert r.headers["Location"] == "/"


def test_signup_duplicate_email_is_shown_next_to_the_field(client):
    existing = make_member()
    before = _members()
    r = _signup(client, email=existing.email.upper())
    assert r.status_code == 422
    html = r.get_data(as_text=True)
    assert "already exists" in _field_error(html, "email")
    assert "Sign in instead" in html
    assert _members() == before
    assert not _signed_in(client)


@pytest.mark.parametrize(
    ("fields", "field_id", "message"),
    [
        ({"password": "short", "confirm": "short"}, "password", "between 8 and 128 characters"),
        ({"confirm": PASSWORD + "x"}, "confirm", "do not match"),
        ({"email": "not-an-email"}, "email", "valid e-mail address"),
        ({"email": "two@@example.test"}, "email", "valid e-mail address"),
        ({"email": ""}, "email", "Enter your e-mail address"),
        ({"display_name": "   "}, "display_name", "Enter a display name"),
        ({"display_name": "x" * 81}, "display_name", "at most 80"),
    ],
)
def test_signup_validation_errors(client, fields, field_id, message):
    r = _signup(client, **fields)
    assert r.status_code == 422
    html = r.get_data(as_text=True)
    assert message in _field_error(html, field_id)
    assert _members() == 0
    assert SKIP_LINK in html


def test_signup_cannot_choose_operator_role(client):
    r = _signup(client, role="operator")
    assert r.status_code == 422
    assert "Not a valid choice" in r.get_data(as_text=True)
    assert _members() == 0


def test_signup_keeps_typed_values_but_never_the_password(client):
    r = _signup(client, email="kept@example.test", confirm="different-password")
    html = r.get_data(as_text=True)
    assert 'value="kept@example.test"' in html
    assert PASSWORD not in html


# ---------- sign-in / sign-out ----------


def test_login_success_sets_a_safe_session_cookie(client):
    member = make_member()
    r = login(client, member.email)
    assert r.status_code == 302
    assert r.headers["Location"] == "/"
    cookies = [c for c in r.headers.getlist("Set-Cookie") if c.startswith("session=")]
    assert cookies, r.headers
    assert "HttpOnly" in cookies[-1]
    assert "SameSite=Lax" in cookies[-1]
    assert f"Welcome back, {member.display_name}" in client.get("/").get_data(as_text=True)
    assert _signed_in(client)


def test_login_email_is_case_and_space_insensitive(client):
    member = make_member()
    assert login(client, f"  {member.email.upper()} ").status_code == 302
    assert _signed_in(client)


@pytest.mark.parametrize("case", ["wrong_password", "unknown_email"])
def test_bad_credentials_show_one_message_and_do_not_sign_in(client, case):
    member = make_member()
    email, password = (
        (member.email, "wrong-password") if case == "wrong_password" else ("nobody@example.test", PASSWORD)
    )
    r = login(client, email, password)
    assert r.status_code == 401
    html = r.get_data(as_text=True)
    assert re.search(r'<div class="form-errors" role="alert">\s*<p>The e-mail address or password is wrong.</p>', html)
    assert not _signed_in(client)


def test_login_with_empty_fields_shows_field_errors(client):
    r = client.post("/login", data={"email": "", "password": "", "csrf_token": _token(client, "/login")})
    assert r.status_code == 422
    html = r.get_data(as_text=True)
    assert "Enter your e-mail address" in _field_error(html, "email")
    assert "Enter your password" in _field_error(html, "password")


@pytest.mark.parametrize(
    ("next_value", "expected"),
    [
        ("/wallet", "/wallet"),
        ("/wallet?page=2", "/wallet?page=2"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("wallet", "/"),
    ],
)
def test_login_next_only_redirects_to_same_site_paths(client, next_value, expected):
    member = make_member()
    token = _token(client, "/login")
    r = client.post(
        "/login",
        query_string={"next": next_value},
        data={"email": member.email, "password": PASSWORD, "csrf_token": token},
    )
    assert r.status_code == 302
    assert r.headers["Location"] == expected


def test_login_required_pages_round_trip_through_next(client):
    member = make_member()
    r = client.get("/settings")
    assert r.status_code == 302
    assert r.headers["Location"].startswith("/login?next=")
    page = client.get(r.headers["Location"])
    html = page.get_data(as_text=True)
    assert "Please sign in to see that page." in html
    assert 'action="/login?next=/settings"' in html
    r = client.post(
        "/login?next=%2Fsettings", data={"email": member.email, "password": PASSWORD, "csrf_token": csrf_token(html)}
    )
    assert r.headers["Location"] == "/settings"


def test_login_is_rate_limited(app, client):
    member = make_member()
    limiter.reset()
    old = app.config["LOGIN_RATE_LIMIT"]
    app.config["LOGIN_RATE_LIMIT"] = "3 per minute"
    try:
        token = _token(client, "/login")
        for _ in range(3):
            r = client.post("/login", data={"email": member.email, "password": "wrong-password", "csrf_token": token})
            assert r.status_code == 401
        r = client.post("/login", data={"email": member.email, "password": PASSWORD, "csrf_token": token})
        assert r.status_code == 429
        html = r.get_data(as_text=True)
        assert r.mimetype == "text/html"
        assert "Too many sign-in attempts" in html
        assert SKIP_LINK in html
        assert not _signed_in(client)
        assert client.get("/login").status_code == 200  # only POSTs count
    finally:
        app.config["LOGIN_RATE_LIMIT"] = old
        limiter.reset()


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/login", {"email": "x@example.test", "password": PASSWORD}),
        ("/signup", {"email": "x@example.test", "display_name": "X", "password": PASSWORD, "confirm": PASSWORD}),
        ("/logout", {}),
    ],
)
def test_post_without_csrf_token_is_rejected(client, path, data):
    r = client.post(path, data=data)
    assert r.status_code == 400
    html = r.get_data(as_text=True)
    assert "This form has expired" in html
    assert SKIP_LINK in html
    assert _members() == 0


def test_post_with_a_forged_csrf_token_is_rejected(client):
    member = make_member()
    r = client.post("/login", data={"email": member.email, "password": PASSWORD, "csrf_token": "forged"})
    assert r.status_code == 400
    assert not _signed_in(client)


def test_logout_is_a_post_with_csrf(client):
    member = make_member()
    login(client, member.email)
    home = client.get("/").get_data(as_text=True)
    assert re.search(r'<form class="inline-form" method="post" action="/logout">', home)
    assert client.get("/logout").status_code == 405
    assert _signed_in(client)
    r = client.post("/logout", data={"csrf_token": csrf_token(home)})
    assert r.status_code == 302
    assert r.headers["Location"] == "/"
    assert "You are signed out" in client.get("/").get_data(as_text=True)
    assert not _signed_in(client)


def test_security_headers_on_pages(client):
    for path in ("/", "/login", "/signup", "/no-such-page"):
        r = client.get(path)
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["X-Frame-Options"] == "DENY"
        csp = r.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "style-src 'self'" in csp
        assert "unsafe-inline" not in csp


def test_pages_use_no_inline_scripts_or_styles(client):
    member = make_member(funds={"EUR": 100})
    login(client, member.email)
    for path in ("/", "/settings", "/wallet", "/no-such-page"):
        html = client.get(path).get_data(as_text=True)
        assert "<style" not in html
        assert " style=" not in html
        assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
        assert re.search(r"\son[a-z]+=", html) is None


# ---------- layout and accessibility ----------


def test_every_page_has_the_skip_link_and_landmarks(client):
    anonymous = ["/", "/login", "/signup", "/no-such-page"]
    for path in anonymous:
        html = client.get(path).get_data(as_text=True)
        assert SKIP_LINK in html, path
        assert '<main id="main"' in html and '<nav class="site-nav" aria-label="Main">' in html, path
        assert "<header" in html and "<footer" in html
    member = make_member()
    login(client, member.email)
    for path in ["/", "/settings", "/wallet", "/no-such-page"]:
        html = client.get(path).get_data(as_text=True)
        assert SKIP_LINK in html, path


def test_active_nav_link_has_aria_current(client):
    member = make_member()
    login(client, member.email)
    html = client.get("/settings").get_data(as_text=True)
    assert '<a class="nav-link" href="/settings" aria-current="page">Settings</a>' in html
    assert '<a class="nav-link" href="/wallet">Wallet</a>' in html
    html = client.get("/wallet").get_data(as_text=True)
    assert '<a class="nav-link" href="/wallet" aria-current="page">Wallet</a>' in html


def test_nav_link_renders_nothing_for_unregistered_endpoints(app):
    with app.test_request_context("/wallet"):
        assert render_template_string("{{ nav_link('nothing_here.index', 'Ghost') }}") == ""
        rendered = render_template_string("{{ nav_link('wallet.index', 'Wallet') }}")
        assert rendered == '<li class="nav-item"><a class="nav-link" href="/wallet" aria-current="page">Wallet</a></li>'
        escaped = render_template_string("{{ nav_link('main.index', '<b>Home</b>') }}")
        assert "&lt;b&gt;Home&lt;/b&gt;" in escaped and "aria-current" not in escaped


def test_nav_for_anonymous_and_signed_in(client):
    html = client.get("/").get_data(as_text=True)
    assert 'href="/login"' in html and 'href="/signup"' in html
    assert 'href="/wallet"' not in html.split("</header>")[0]
    assert 'href="/settings"' not in html
    member = make_member()
    login(client, member.email)
    header = client.get("/").get_data(as_text=True).split("</header>")[0]
    assert 'href="/wallet"' in header and 'href="/settings"' in header
    assert "Sign out" in header and 'href="/login"' not in header


def test_404_is_a_friendly_html_page(client):
    r = client.get("/no-such-page")
    assert r.status_code == 404
    assert r.mimetype == "text/html"
    html = r.get_data(as_text=True)
    assert "We could not find that page" in html
    assert 'href="/"' in html
    assert SKIP_LINK in html


def test_api_paths_keep_json_errors(client):
    r = client.get("/api/v1/no-such-thing")
    assert r.status_code == 404
    assert r.get_json()["reason"] == "not_found"


def test_home_page_explains_the_marketplace(client):
    html = client.get("/").get_data(as_text=True)
    assert "customers are in charge" in html
    assert "Buying pools" in html and "Person-to-person lending" in html
    assert 'href="/signup"' in html


# ---------- settings and API tokens ----------


def test_settings_shows_profile_and_kyc(client):
    member = make_member(verified=False, name="Una Verified")
    login(client, member.email)
    html = client.get("/settings").get_data(as_text=True)
    assert member.email in html and "Una Verified" in html
    assert '<span class="badge badge-warn" id="kyc-status">Unverified</span>' in html
    assert "Verification unlocks" in html
    assert "No API tokens yet" in html


def test_settings_shows_verified_badge(client):
    member = make_member(verified=True)
    login(client, member.email)
    html = client.get("/settings").get_data(as_text=True)
    assert '<span class="badge badge-ok" id="kyc-status">Verified</span>' in html


def _create_token(client, name: str):
    token = _token(client, "/settings")
    return client.post("/settings/tokens", data={"name": name, "csrf_token": token})


def test_create_token_shows_secret_once_and_it_works(client, api):
    member = make_member()
    login(client, member.email)
    r = _create_token(client, "My bot")
    assert r.status_code == 200
    assert r.headers["Cache-Control"] == "no-store"
    html = r.get_data(as_text=True)
    secret = re.search(r'id="new-token-secret" type="text" value="(mkt_[^"]+)"', html).group(1)
    assert "it will not be shown again" in html
    row = db.session.execute(select(ApiToken).where(ApiToken.member_id == member.id)).scalar_one()
    assert row.name == "My bot" and row.token_hash != secret and secret.startswith(row.prefix)
    me = api.get("/api/v1/members/me", token=secret)
    assert me.status_code == 200 and me.get_json()["id"] == member.id
    later = client.get("/settings").get_data(as_text=True)
    assert secret not in later
    assert "My bot" in later and f"{row.prefix}…" in later
    assert '<span class="badge badge-ok">Active</span>' in later


def test_create_token_needs_a_name(client):
    member = make_member()
    login(client, member.email)
    r = _create_token(client, "  ")
    assert r.status_code == 422
    assert "Give the token a name" in _field_error(r.get_data(as_text=True), "name")
    assert db.session.execute(select(func.count(ApiToken.id))).scalar_one() == 0


def test_revoke_token(client, api):
    member = make_member()
    login(client, member.email)
    html = _create_token(client, "Old script").get_data(as_text=True)
    secret = re.search(r'value="(mkt_[^"]+)"', html).group(1)
    token_id = db.session.execute(select(ApiToken.id)).scalar_one()
    r = client.post(f"/settings/tokens/{token_id}/revoke", data={"csrf_token": csrf_token(html)})
    assert r.status_code == 302 and r.headers["Location"] == "/settings"
    page = client.get("/settings").get_data(as_text=True)
    assert "is revoked" in page and '<span class="badge badge-bad">Revoked</span>' in page
    db.session.expire_all()
    assert db.session.get(ApiToken, token_id).revoked_at is not None
    assert api.get("/api/v1/members/me", token=secret).status_code == 401


def test_revoke_needs_csrf(client):
    member = make_member()
    login(client, member.email)
    _create_token(client, "t")
    token_id = db.session.execute(select(ApiToken.id)).scalar_one()
    assert client.post(f"/settings/tokens/{token_id}/revoke").status_code == 400
    db.session.expire_all()
    assert db.session.get(ApiToken, token_id).revoked_at is None


def test_member_cannot_revoke_someone_elses_token(client, api):
    from marketplace.accounts import services as accounts

    owner = make_member()
    secret, theirs = accounts.issue_token(owner.id, "owner's bot")
    intruder = make_member()
    login(client, intruder.email)
    token = _token(client, "/settings")
    r = client.post(f"/settings/tokens/{theirs.id}/revoke", data={"csrf_token": token})
    assert r.status_code == 404
    assert "We could not find that page" in r.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(ApiToken, theirs.id).revoked_at is None
    assert api.get("/api/v1/members/me", token=secret).status_code == 200
    assert "owner's bot" not in client.get("/settings").get_data(as_text=True)


def test_settings_requires_login(client):
    r = client.get("/settings")
    assert r.status_code == 302 and r.headers["Location"].startswith("/login")
    token = _token(client, "/login")
    r = client.post("/settings/tokens", data={"name": "x", "csrf_token": token})
    assert r.status_code == 302 and r.headers["Location"].startswith("/login")
    assert db.session.execute(select(func.count(ApiToken.id))).scalar_one() == 0


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        (403, "Only operators review KYC.", "Only operators review KYC."),
        (500, None, "something went wrong on our side"),
        (429, "3 per 1 minute", "Too many requests in a short time"),
        (405, "The method is not allowed for the requested URL.", "does not accept that kind of request"),
        (409, "The pool is not open.", "The pool is not open."),
    ],
)
def test_error_pages_are_friendly_with_a_way_home(app, status, message, expected):
    from marketplace.errors import render_error_page

    with app.test_request_context("/somewhere"):
        body, code = render_error_page(status, message)
    assert code == status
    assert expected in body
    assert SKIP_LINK in body
    assert 'href="/">Go to the home page</a>' in body


def test_operators_link_only_for_operators(app, client):
    member = make_member()
    login(client, member.email)
    header = client.get("/").get_data(as_text=True).split("</header>")[0]
    assert ">Operators</a>" not in header
    client.post("/logout", data={"csrf_token": csrf_token(client.get("/").get_data(as_text=True))})
    operator = make_member("operator")
    login(client, operator.email)
    header = client.get("/").get_data(as_text=True).split("</header>")[0]
    assert (">Operators</a>" in header) == ("operators.index" in app.view_functions)


def test_settings_language_preference_is_saved_with_csrf(client):
    from marketplace.i18n import LANGUAGES

    member = make_member()
    login(client, member.email)
    html = client.get("/settings").get_data(as_text=True)
    select = re.search(r'<select[^>]*\bid="locale"[^>]*>(.*?)</select>', html, re.S)
    assert select and '<label for="locale">' in html and 'action="/settings/language"' in html
    assert re.findall(r'value="([^"]*)"', select.group(1)) == ["", *LANGUAGES]
    assert '<option selected value="">' in select.group(1)  # no setting yet: follow the browser
    token = csrf_token(html)

    r = client.post("/settings/language", data={"locale": "fi", "csrf_token": token})
    assert r.status_code == 302 and r.headers["Location"] == "/settings"
    db.session.expire_all()
    assert db.session.get(Member, member.id).locale == "fi"
    page = client.get("/settings", headers={"Accept-Language": "es"}).get_data(as_text=True)
    assert '<html lang="fi">' in page and 'class="flash flash-success"' in page
    assert '<option lang="fi" selected value="fi">' in page

    # "Follow my browser" stores no locale, and forgets an earlier choice kept in the session.
    r = client.post("/settings/language", data={"locale": "", "csrf_token": token})
    assert r.status_code == 302
    db.session.expire_all()
    assert db.session.get(Member, member.id).locale is None
    assert '<html lang="it">' in client.get("/settings", headers={"Accept-Language": "it"}).get_data(as_text=True)

    # No CSRF token, or a language the site does not have: nothing changes.
    assert client.post("/settings/language", data={"locale": "es"}).status_code == 400
    r = client.post("/settings/language", data={"locale": "de", "csrf_token": token})
    assert r.status_code == 422
    rejected = r.get_data(as_text=True)
    assert '<div class="field-error" id="locale-error" role="alert">' in rejected
    assert re.search(r'<select aria-describedby="locale-hint locale-error" aria-invalid="true" id="locale"', rejected)
    db.session.expire_all()
    assert db.session.get(Member, member.id).locale is None


def test_settings_language_needs_sign_in(client):
    token = _token(client, "/login")
    r = client.post("/settings/language", data={"locale": "es", "csrf_token": token})
    assert r.status_code == 302 and r.headers["Location"].startswith("/login")
