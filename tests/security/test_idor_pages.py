"""No IDOR in the browser: another member gets 403/404 on every object page and form, and nothing changes.

Every endpoint of the app's url_map outside the JSON API is classified here;
a new page or form that is not fails ``test_every_page_and_form_is_classified``.
Operators' pages are found by their blueprint, so a new one is checked at once.
"""

from __future__ import annotations

import pytest

from marketplace.extensions import db
from marketplace.notifications.models import Notification

from .conftest import (
    OWNER_NAME,
    OWNER_NOTE,
    OWNER_TOKEN_NAME,
    assert_unchanged,
    database_state,
    page_token,
    rule_path,
    signed_in,
)

# endpoint: (METHOD, path template, form data, who tries). The object is the owner's.
OWNED = {
    "auth.revoke_token": [("POST", "/settings/tokens/{token}/revoke", {}, ("intruder",))],
    "wallet.withdrawal": [("GET", "/wallet/withdrawals/{withdrawal}", None, ("intruder",))],
    "wallet.authenticate": [("GET", "/wallet/deposits/{deposit}/authenticate", None, ("intruder",))],
    "wallet.card_hold": [
        ("POST", "/wallet/card-authorizations/{auth}/reauthorize", {}, ("intruder",)),
        ("POST", "/wallet/card-authorizations/{auth}/switch", {}, ("intruder",)),
    ],
    "pools.withdraw": [
        ("POST", "/pools/{pool}/pledges/{pledge}/withdraw", {}, ("intruder",)),
        ("POST", "/pools/{pool}/pledges/{card_pledge}/withdraw", {}, ("intruder",)),
    ],
    "pools.close": [("POST", "/pools/{pool}/close", {}, ("intruder",))],
    "pools.cancel": [("POST", "/pools/{pool}/cancel", {}, ("intruder",))],
    "pools.deliver": [("POST", "/pools/{awarded_pool}/delivery", {}, ("intruder",))],
    "conversation.add_review": [("POST", "/pools/{awarded_pool}/reviews", {"rating": "1", "body": "x"}, ("intruder",))],
    "lending.cancel_request": [("POST", "/loan-requests/{open_request}/cancel", {}, ("intruder", "lender"))],
    "lending.cancel_offer": [("POST", "/lend/offers/{offer}/cancel", {}, ("intruder", "lender"))],
    "lending.loan_detail": [
        ("GET", "/loans/{loan}", None, ("intruder",)),
        ("GET", "/loans/{lent_loan}", None, ("intruder",)),
    ],
    "lending.repay": [("POST", "/loans/{loan}/repay", {"amount": "10.00"}, ("intruder", "lender"))],
    "lending.payoff": [("POST", "/loans/{loan}/payoff", {}, ("intruder", "lender"))],
}

# Pages about the signed-in member only: (path, what the owner's page shows and nobody else's may).
SCOPED = {
    "main.index": ("/", [OWNER_NAME]),
    "auth.settings": ("/settings", ["{email}", OWNER_TOKEN_NAME, "/settings/tokens/{token}/revoke", OWNER_NAME]),
    "wallet.index": (
        "/wallet",
        ["/wallet/withdrawals/{withdrawal}", "/wallet/card-authorizations/{auth}/", OWNER_NAME],
    ),
    "wallet.deposit_page": ("/wallet/deposit", [OWNER_NAME]),
    "notifications.index": ("/notifications", [OWNER_NOTE, 'href="/loans/{loan}"', OWNER_NAME]),
    "pools.my_pledges": ("/pledges", ["Honey", OWNER_NAME]),
    "lending.my_loans": ("/loans", ['href="/loans/{loan}"', 'href="/loan-requests/{open_request}"', OWNER_NAME]),
    "lending.portfolio_page": ("/portfolio", ['href="/loans/{lent_loan}"', OWNER_NAME]),
    "lending.lend": ("/lend", ["/lend/offers/{offer}/cancel", OWNER_NAME]),
    "lending.borrow": ("/borrow", [OWNER_NAME]),
}

# Shared pages that show the owner's objects to everyone, but the owner's controls only to the owner.
SHARED_WITH_CONTROLS = {
    "pools.detail": [
        (
            "/pools/{pool}",
            [
                "/pools/{pool}/pledges/{pledge}/withdraw",
                "/pools/{pool}/pledges/{card_pledge}/withdraw",
                'action="/pools/{pool}/close"',
                'action="/pools/{pool}/cancel"',
            ],
        )
    ],
    "lending.request_detail": [
        ("/loan-requests/{open_request}", ['action="/loan-requests/{open_request}/cancel"']),
        ("/loan-requests/{borrowed_request}", ['href="/loans/{loan}"']),
    ],
}

# Everyone's (signed in or not) by design.
PUBLIC = {
    "static",
    "healthz",
    "docs.index",
    "api-docs.openapi_json",
    "pools.index",
    "lending.requests",
    "conversation.supplier",
    "wallet.stripe_payment_js",
    "lending.borrow_preview",
}
# Forms that act for the signed-in member only; they name no object of anyone else.
OWN_FORMS = {
    "main.set_language",
    "auth.create_token",
    "auth.save_language",
    "wallet.deposit",
    "wallet.withdraw",
    "pools.create",
    "pools.pledge",
    "pools.bid",
    "conversation.add_pool_comment",
    "lending.add_comment",
    "notifications.mark_all_read",
}
SIGN_IN = {"auth.login", "auth.signup", "auth.logout"}
OPERATOR_ONLY = {"lending.loan_book"}  # and every endpoint of the operators blueprint
WEBHOOKS = {"payments_webhooks.stripe_webhook"}  # signed by Stripe: tests/api/test_stripe_webhooks.py


def _is_api(rule) -> bool:
    return rule.rule.startswith("/api/v1/")  # tests/security/test_idor_api.py


def _fill(world, text: str) -> str:
    return text.format(email=world.owner.email, **world.ids)


def _call(client, method, path, data):
    if method == "GET":
        return client.get(path)
    return client.post(path, data={**(data or {}), "csrf_token": page_token(client)})


# ---------------------------------------------------------------- the tables cover every page and form


def test_every_page_and_form_is_classified(app):
    classified = (
        set(OWNED) | set(SCOPED) | set(SHARED_WITH_CONTROLS) | PUBLIC | OWN_FORMS | SIGN_IN | OPERATOR_ONLY | WEBHOOKS
    )
    endpoints = {
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if not _is_api(rule) and not rule.endpoint.startswith("operators.")
    }
    assert endpoints - classified == set(), "classify these endpoints in tests/security/test_idor_pages.py"
    assert classified - endpoints == set(), "these classified endpoints are gone from the app"


def test_the_table_paths_are_the_endpoints_routes(app, world):
    adapter = app.url_map.bind("localhost")
    for endpoint, cases in OWNED.items():
        for method, path, _data, _actors in cases:
            assert adapter.match(_fill(world, path), method=method)[0] == endpoint, path


# ---------------------------------------------------------------- another member's objects


def _owned_cases():
    for endpoint, cases in OWNED.items():
        for method, path, data, actors in cases:
            for actor in actors:
                yield pytest.param(endpoint, method, path, data, actor, id=f"{method} {path} as {actor}")


@pytest.mark.parametrize(("endpoint", "method", "path", "data", "actor"), list(_owned_cases()))
def test_another_member_is_refused_and_nothing_changes(app, world, endpoint, method, path, data, actor):
    client = signed_in(app, getattr(world, actor))
    url = _fill(world, path)
    before = database_state()
    response = _call(client, method, url, data)
    assert_unchanged(before, f"{method} {url} as {actor}")
    assert response.status_code in (403, 404), (url, response.status_code)
    assert response.mimetype == "text/html"
    text = response.get_data(as_text=True)
    assert world.owner.email not in text and OWNER_NOTE not in text


def test_the_owner_reaches_every_object_page(app, world):
    """The table's GET pages are the owner's real objects (so a 404 above is not a typo)."""
    client = signed_in(app, world.owner)
    for cases in OWNED.values():
        for method, path, _data, _actors in cases:
            if method == "GET" and "authenticate" not in path:  # a sandbox deposit has nothing to authenticate
                assert client.get(_fill(world, path)).status_code == 200, path


# ---------------------------------------------------------------- pages about oneself


@pytest.mark.parametrize("endpoint", sorted(SCOPED))
def test_own_pages_show_nobody_elses_things(app, world, endpoint):
    path, markers = SCOPED[endpoint]
    markers = [_fill(world, marker) for marker in markers]
    owners = signed_in(app, world.owner).get(path).get_data(as_text=True)
    assert [m for m in markers if m not in owners] == [], "the owner's page lacks these, so the check proves nothing"
    before = database_state()
    response = signed_in(app, world.intruder).get(path)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert [m for m in markers if m in html] == [], f"{path} shows the owner's things to another member"
    assert_unchanged(before, path)


@pytest.mark.parametrize("endpoint", sorted(SHARED_WITH_CONTROLS))
def test_shared_pages_show_the_owners_controls_to_the_owner_only(app, world, endpoint):
    owner, intruder = signed_in(app, world.owner), signed_in(app, world.intruder)
    for path, markers in SHARED_WITH_CONTROLS[endpoint]:
        url, markers = _fill(world, path), [_fill(world, m) for m in markers]
        owners = owner.get(url).get_data(as_text=True)
        assert [m for m in markers if m not in owners] == [], url
        response = intruder.get(url)
        assert response.status_code == 200
        html = response.get_data(as_text=True)
        assert [m for m in markers if m in html] == [], f"{url} shows the owner's controls to another member"
        assert OWNER_NOTE not in html and world.owner.email not in html


def test_marking_notifications_read_marks_only_ones_own(app, world):
    client = signed_in(app, world.intruder)
    response = client.post("/notifications/read", data={"csrf_token": page_token(client, "/notifications")})
    assert response.status_code == 302
    db.session.expire_all()
    unread = db.session.query(Notification).filter(
        Notification.member_id == world.owner.id, Notification.read_at.is_(None)
    )
    assert unread.count() >= 1 and any(n.message == OWNER_NOTE for n in unread)


# ---------------------------------------------------------------- operators' pages


def _operator_rules(app):
    return sorted(
        (
            rule
            for rule in app.url_map.iter_rules()
            if rule.endpoint.startswith("operators.") or rule.endpoint in OPERATOR_ONLY
        ),
        key=lambda r: r.rule,
    )


@pytest.mark.parametrize("role", ["member", "supplier"])
def test_operators_pages_and_forms_are_403_for_everyone_else(app, world, role):
    client = signed_in(app, world.intruder if role == "member" else world.supplier)
    token = page_token(client)
    checked = 0
    for rule in _operator_rules(app):
        url = rule_path(rule, world)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            before = database_state()
            if method == "GET":
                response = client.get(url)
            else:
                data = {"csrf_token": token, "decision": "verified", "status": "verified", "reason": "x"}
                response = client.post(url, data=data)
            assert response.status_code == 403, (method, url, response.status_code)
            assert_unchanged(before, f"{method} {url} as {role}")
            checked += 1
    assert checked >= 10
