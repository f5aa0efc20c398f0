"""CSRF: every state-changing form of the app refuses a request without a valid token, and GETs change nothing.

The forms are not listed by hand: every rule of ``app.url_map`` that takes
POST/PUT/PATCH/DELETE outside the Bearer-token API (``/api/v1/``, which
cookies never authenticate: test_api_tokens.py) and Stripe's signed webhooks
is sent by the member it belongs to, with valid form data, but with no token,
a forged token and another session's token: 400 each time, and the whole
database unchanged. The same request with the session's own token is then
accepted (not 400), so the 400s were the token's doing.
"""

from __future__ import annotations

from marketplace.extensions import db
from tests.helpers import PASSWORD, ApiClient

from .conftest import (
    assert_unchanged,
    browser,
    changed_tables,
    database_state,
    openapi_operations,
    openapi_path,
    page_token,
    rule_path,
    signed_in,
)

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
# Reads that write on purpose: exporting the journal leaves a line in the audit log.
AUDITED_READS = {"operators.journal_csv": {"audit_log"}}
WEBHOOK_BLUEPRINTS = {"payments_webhooks"}

# endpoint: (who sends it, path parameters by world id name, form data that would be accepted with a token).
# Anything not listed: the owner, PATH_VALUES' objects, no data; operators' forms: the operator.
FORMS = {
    "main.set_language": ("owner", {}, {"locale": "es", "next": "/"}),
    "auth.login": (None, {}, {"email": "{email}", "password": PASSWORD}),
    "auth.signup": (
        None,
        {},
        {"email": "new@example.test", "display_name": "New", "password": PASSWORD, "confirm": PASSWORD},
    ),
    "auth.create_token": ("owner", {}, {"name": "csrf"}),
    "auth.save_language": ("owner", {}, {"locale": "fi"}),
    "wallet.deposit": ("owner", {}, {"deposit-amount": "10.00", "deposit-currency": "EUR"}),
    "wallet.withdraw": ("owner", {}, {"withdraw-amount": "1.00", "withdraw-currency": "EUR"}),
    "pools.create": (
        "owner",
        {},
        {"title": "T", "unit": "kg", "currency": "EUR", "min_volume": "5", "deadline": "2027-06-01T10:00"},
    ),
    "pools.pledge": ("intruder", {}, {"quantity": "1", "max_unit_price": "5.00", "confirm": "1"}),
    "pools.bid": ("supplier", {}, {"tiers-0-min_volume": "1", "tiers-0-unit_price": "8.00", "capacity": "50"}),
    "pools.deliver": ("supplier", {"pool_id": "awarded_pool"}, {}),
    "conversation.add_pool_comment": ("owner", {}, {"body": "hello"}),
    "conversation.add_review": ("owner", {"pool_id": "awarded_pool"}, {"rating": "5", "body": "good"}),
    "lending.borrow": (
        "owner",
        {},
        {"amount": "200.00", "currency": "EUR", "term_months": "12", "max_rate": "5", "purpose": "x"},
    ),
    "lending.lend": ("owner", {}, {"amount": "100.00", "currency": "EUR", "min_rate": "30", "max_part": "100.00"}),
    "lending.add_comment": ("owner", {}, {"body": "hello"}),
    "lending.repay": ("owner", {}, {"amount": "10.00"}),
    "operators.kyc_decide": ("operator", {}, {"status": "rejected"}),
    "operators.payout_reject": ("operator", {}, {"reason": "no"}),
}


def state_changing_rules(app):
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        methods = sorted(rule.methods & UNSAFE)
        if not methods or rule.rule.startswith("/api/v1/") or rule.endpoint.split(".")[0] in WEBHOOK_BLUEPRINTS:
            continue
        for method in methods:
            yield rule, method


def _request(app, world, rule, method):
    """(client, token page, url, data) for sending this form as the member it belongs to."""
    default_actor = "operator" if rule.endpoint.startswith("operators.") else "owner"
    actor, params, data = FORMS.get(rule.endpoint, (default_actor, {}, {}))
    client = browser(app) if actor is None else signed_in(app, getattr(world, actor))
    url = rule_path(rule, world, **{name: world.ids[key] for name, key in params.items()})
    data = {key: value.format(email=world.owner.email) for key, value in data.items()}
    return client, "/login" if actor is None else "/settings", url, data


def _send(client, method, url, data):
    return client.open(url, method=method, data=data)


def test_the_sweep_finds_every_kind_of_form(app):
    endpoints = {rule.endpoint for rule, _ in state_changing_rules(app)}
    assert len(endpoints) >= 30
    assert {"auth.login", "auth.logout", "lending.repay", "pools.withdraw", "operators.kyc_decide"} <= endpoints
    assert set(FORMS) <= endpoints, "FORMS names endpoints that no longer take a form"


def test_every_form_refuses_a_missing_forged_or_foreign_token(app, world):
    problems = []
    accepted_with_token = {}
    for rule, method in state_changing_rules(app):
        client, token_page, url, data = _request(app, world, rule, method)
        foreign = page_token(browser(app), "/login")
        before = database_state()
        for label, token in (("no token", None), ("forged token", "forged"), ("another session's token", foreign)):
            sent = dict(data) if token is None else {**data, "csrf_token": token}
            response = _send(client, method, url, sent)
            changes = changed_tables(before, database_state())
            if response.status_code != 400 or changes:
                problems.append(f"{method} {url} with {label}: {response.status_code}, changed {changes}")
        response = _send(client, method, url, {**data, "csrf_token": page_token(client, token_page)})
        accepted_with_token[f"{method} {url}"] = response.status_code
    assert problems == [], "\n".join(problems)
    refused = {request: status for request, status in accepted_with_token.items() if status == 400}
    assert refused == {}, "with the session's own token these are still 400: the control proves nothing"


def test_the_refusal_is_the_friendly_expired_form_page(app, world):
    client = signed_in(app, world.owner)
    response = client.post(f"/loans/{world.ids['loan']}/payoff")
    assert response.status_code == 400 and response.mimetype == "text/html"
    assert "This form has expired" in response.get_data(as_text=True)


def test_no_page_changes_anything_on_get(app, world):
    """GET is safe, so the CSRF check on the unsafe methods covers every state change."""
    problems = []
    clients = {"owner": signed_in(app, world.owner), "operator": signed_in(app, world.operator), None: browser(app)}
    before = database_state()
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if "GET" not in rule.methods or rule.rule.startswith("/api/v1/"):
            continue
        url = rule_path(rule, world)
        for who, client in clients.items():
            response = client.get(url)
            after = database_state()
            changes = changed_tables(before, after)
            before = after
            for table in AUDITED_READS.get(rule.endpoint, ()):
                changes.pop(table, None)
            if changes or response.status_code >= 500:
                problems.append(f"GET {url} as {who}: {response.status_code}, changed {changes}")
    assert problems == [], "\n".join(problems)


def test_no_api_read_changes_anything(app, world):
    api = ApiClient(app.test_client())
    before = database_state()
    for method, path, _ in openapi_operations(app):
        if method == "GET":
            for token in (world.owner_token, world.intruder_token):
                assert api.get(openapi_path(path, world), token=token).status_code < 500, path
    db.session.expire_all()
    assert_unchanged(before, "GET on the API")
