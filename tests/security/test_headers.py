"""Security headers on every response, and pages the Content-Security-Policy does not have to loosen.

Every response the app can give is collected (every GET route of the url_map
as a member, an operator and a visitor; every GET of the OpenAPI document;
static files, /healthz, redirects, and the 400/401/404/405/422/429 errors of
pages and API) and each must carry: a CSP whose scripts are this site's only
(no 'unsafe-inline', no 'unsafe-eval', no wildcard) with frame-ancestors
'none'; ``X-Content-Type-Options: nosniff``; a Referrer-Policy that does not
leak paths to other sites. Every HTML page must then work under that policy:
no inline ``<script>`` bodies, no ``on*=`` handlers, no ``javascript:`` URLs
(the templates and scripts themselves: test_page_sources.py).
"""

from __future__ import annotations

import re

from marketplace.extensions import limiter
from tests.helpers import PASSWORD, ApiClient

from .conftest import browser, openapi_operations, openapi_path, page_token, rule_path, signed_in

SAFE_REFERRER_POLICIES = {"no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin"}


def csp_directives(value: str) -> dict[str, list[str]]:
    directives = {}
    for part in value.split(";"):
        tokens = part.split()
        if tokens:
            directives.setdefault(tokens[0].lower(), [t.lower() for t in tokens[1:]])
    return directives


def header_problems(response) -> list[str]:
    problems = []
    csp = response.headers.get("Content-Security-Policy")
    if not csp:
        return ["no Content-Security-Policy"]
    directives = csp_directives(csp)
    for name in ("script-src", "script-src-elem", "script-src-attr"):
        sources = directives.get(name)
        if sources is None and name == "script-src":
            sources = directives.get("default-src")
            if sources is None:
                problems.append("neither script-src nor default-src")
                continue
        for bad in ("'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", "*", "data:", "http:", "https:"):
            if bad in (sources or []):
                problems.append(f"{name} allows {bad}")
    if directives.get("frame-ancestors") != ["'none'"]:
        problems.append(f"frame-ancestors is {directives.get('frame-ancestors')}")
    if directives.get("object-src", directives.get("default-src")) not in (["'none'"], ["'self'"]):
        problems.append("object-src is not restricted")
    if response.headers.get("X-Content-Type-Options") != "nosniff":
        problems.append("no X-Content-Type-Options: nosniff")
    if response.headers.get("Referrer-Policy") not in SAFE_REFERRER_POLICIES:
        problems.append(f"Referrer-Policy {response.headers.get('Referrer-Policy')!r}")
    return problems


def inline_code_problems(html: str) -> list[str]:
    problems = []
    for match in re.finditer(r"<script\b([^>]*)>(.*?)</script\s*>", html, re.S | re.I):
        attributes, body = match.groups()
        src = re.search(r"""\bsrc\s*=\s*["']([^"']*)""", attributes, re.I)
        if not src:
            problems.append(f"inline script: {match.group(0)[:80]!r}")
        elif body.strip():
            problems.append(f"script with both src and a body: {match.group(0)[:80]!r}")
        elif not src.group(1).startswith("/") or src.group(1).startswith("//"):
            problems.append(f"script from elsewhere: {src.group(1)!r}")
    for match in re.finditer(r"<[a-zA-Z][^>]*?\son[a-z]+\s*=", html):
        problems.append(f"event handler attribute: {match.group(0)[:80]!r}")
    for match in re.finditer(r"""(?:href|src|action|formaction)\s*=\s*["']\s*javascript:""", html, re.I):
        problems.append(f"javascript: URL: {match.group(0)!r}")
    return problems


def collect_responses(app, world) -> list[tuple[str, object]]:
    """(label, response) for every kind of response the app gives."""
    out = []
    clients = {
        "member": signed_in(app, world.owner),
        "operator": signed_in(app, world.operator),
        "visitor": browser(app),
    }
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if "GET" in rule.methods and not rule.rule.startswith("/api/v1/"):
            url = rule_path(rule, world)
            for who, client in clients.items():
                out.append((f"GET {url} as {who}", client.get(url)))
    api = ApiClient(app.test_client())
    for method, path, _ in openapi_operations(app):
        if method == "GET":
            url = openapi_path(path, world)
            out.append((f"GET {url}", api.get(url, token=world.owner_token)))
    member = clients["member"]
    out += [
        ("static css", member.get("/static/css/app.css")),
        ("static js", member.get("/static/js/app.js")),
        ("missing static file", member.get("/static/nothing.js")),
        ("page 404", member.get("/no-such-page")),
        ("page 405", member.get("/logout")),
        ("page 400 (no CSRF token)", member.post("/settings/tokens", data={"name": "x"})),
        ("page 302", member.post("/notifications/read", data={"csrf_token": page_token(member)})),
        ("page 422", member.post("/settings/tokens", data={"name": " ", "csrf_token": page_token(member)})),
        ("API 401", api.get("/api/v1/wallet")),
        ("API 401 bad token", api.get("/api/v1/wallet", token="mkt_nonsense")),
        ("API 403", api.get("/api/v1/ledger/trial-balance", token=world.intruder_token)),
        ("API 404", api.get("/api/v1/no-such-thing", token=world.owner_token)),
        ("API 405", api.put("/api/v1/wallet", {}, token=world.owner_token)),
        ("API 400", api.request("POST", "/api/v1/wallet/deposits", data="{", token=world.owner_token)),
        ("API 422", api.post("/api/v1/wallet/deposits", {"amount": -1}, token=world.owner_token)),
        ("API 201", api.post("/api/v1/wallet/deposits", {"amount": 1, "currency": "EUR"}, token=world.owner_token)),
        ("API OPTIONS", api.request("OPTIONS", "/api/v1/wallet")),
        ("HEAD page", member.head("/wallet")),
        ("healthz", api.get("/healthz")),
        ("openapi", api.get("/api/openapi.json")),
    ]
    return out


def test_every_response_carries_the_security_headers(app, world):
    responses = collect_responses(app, world)
    assert len(responses) > 150
    problems = [f"{label} ({r.status_code}): {p}" for label, r in responses for p in header_problems(r)]
    assert problems == [], "\n".join(problems)
    assert {r.status_code for _, r in responses} >= {200, 201, 302, 400, 401, 403, 404, 405, 422}


def test_rate_limited_responses_carry_the_headers_too(app, world):
    old = app.config["LOGIN_RATE_LIMIT"]
    app.config["LOGIN_RATE_LIMIT"] = "1 per minute"
    limiter.reset()
    try:
        api = ApiClient(app.test_client())
        client = browser(app)
        token = page_token(client, "/login")
        responses = []
        for _ in range(2):
            responses.append(
                client.post("/login", data={"email": "x@example.test", "password": "p", "csrf_token": token})
            )
            responses.append(api.post("/api/v1/tokens", {"email": "x@example.test", "password": PASSWORD}))
    finally:
        app.config["LOGIN_RATE_LIMIT"] = old
        limiter.reset()
    assert [r.status_code for r in responses[2:]] == [429, 429]
    for response in responses:
        assert header_problems(response) == [], response.status_code


def test_the_card_deposit_page_keeps_a_strict_policy(app, world):
    """The deposit page loosens the CSP for Stripe.js: still no inline script, still no framing."""
    saved = {key: app.config.get(key) for key in ("PAYMENTS_PROVIDER", "STRIPE_PUBLISHABLE_KEY")}
    app.config.update(PAYMENTS_PROVIDER="stripe", STRIPE_PUBLISHABLE_KEY="pk_test_123")
    try:
        response = signed_in(app, world.intruder).get("/wallet/deposit")
    finally:
        app.config.update(saved)
    assert response.status_code == 200
    csp = csp_directives(response.headers["Content-Security-Policy"])
    assert "https://js.stripe.com" in csp["script-src"]
    assert header_problems(response) == []
    html = response.get_data(as_text=True)
    scripts = re.findall(r"<script\b[^>]*\bsrc=\"([^\"]+)\"", html)
    assert "https://js.stripe.com/v3/" in scripts
    assert [p for p in inline_code_problems(html) if "js.stripe.com" not in p] == []


def test_no_page_needs_inline_script_or_style(app, world):
    problems = []
    for label, response in collect_responses(app, world):
        if response.mimetype == "text/html":
            html = response.get_data(as_text=True)
            problems += [f"{label}: {p}" for p in inline_code_problems(html)]
            if re.search(r"<style\b|\sstyle\s*=", html):
                problems.append(f"{label}: inline style (style-src 'self' blocks it)")
    assert problems == [], "\n".join(problems)
