"""Journeys 6 and 7: accessibility on every main page, and no third-party assets.

One marketplace is built once for the module (an open pool, a delivered one
with reviews, a funded loan with a payment, an open loan request, comments,
notifications, an audit entry) and seen through five signed-in tabs: a
visitor, a member who pledges and lends, a borrower, a supplier and an
operator. The module's pages only read, so the tables are emptied once,
when the data is built, not before every test.

On every main page:

* axe-core (the copy shipped in axe-playwright-python, injected by
  Playwright: no CDN) finds no violation of impact "serious" or "critical";
  every violation of any impact is listed in the failure message and in
  ``artifacts/axe-report.txt``;
* every form control has an accessible name and the main ones are found by
  their label; there is exactly one ``h1``;
* the keyboard reaches the skip link first (it moves focus to the content);

and on representative pages every focusable control is reached with Tab
(in document order, starting with the skip link and the navigation) and
shows a focus indicator that contrasts at least 3:1 with the page.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from marketplace.clock import now
from marketplace.conversation import services as conversation
from marketplace.extensions import db
from marketplace.lending import loans, market, repayments
from marketplace.operators.services import record_audit_committed
from marketplace.pools import services as pools
from tests.conftest import _empty_tables
from tests.helpers import assert_ledger_invariants

from .conftest import ARTIFACTS, Browsing, artifact_name, has_failed, person, sign_in

pytestmark = pytest.mark.e2e

AXE_REPORT = ARTIFACTS / "axe-report.txt"
BLOCKING_IMPACTS = ("serious", "critical")

# Every main page: (id, who looks at it, path; {names} are filled from the data built below).
PAGES = [
    ("home", "visitor", "/"),
    ("sign-in", "visitor", "/login"),
    ("sign-up", "visitor", "/signup"),
    ("pools", "visitor", "/pools"),
    ("pool-open-visitor", "visitor", "/pools/{open_pool}"),
    ("api-docs", "visitor", "/api/docs"),
    ("not-found", "visitor", "/no-such-page"),
    ("home-member", "member", "/"),
    ("pools-member", "member", "/pools"),
    ("pool-new", "member", "/pools/new"),
    ("pool-open", "member", "/pools/{open_pool}"),
    ("pool-closed", "member", "/pools/{done_pool}"),
    ("pool-open-supplier", "supplier", "/pools/{open_pool}"),
    ("supplier-profile", "member", "/suppliers/{supplier}"),
    ("my-pledges", "member", "/pledges"),
    ("wallet", "member", "/wallet"),
    ("notifications", "member", "/notifications"),
    ("settings", "member", "/settings"),
    ("lend", "member", "/lend"),
    ("portfolio", "member", "/portfolio"),
    ("loan-requests", "member", "/loan-requests"),
    ("loan-request-funded", "member", "/loan-requests/{funded_request}"),
    ("loan-as-lender", "member", "/loans/{loan}"),
    ("borrow", "borrower", "/borrow"),
    ("borrow-preview", "borrower", "/borrow"),
    ("my-loans", "borrower", "/loans"),
    ("loan-request-open", "borrower", "/loan-requests/{open_request}"),
    ("loan-as-borrower", "borrower", "/loans/{loan}"),
    ("ops-dashboard", "operator", "/ops"),
    ("ops-journal", "operator", "/ops/journal"),
    ("ops-entry", "operator", "/ops/journal/{entry}"),
    ("ops-account", "operator", "/ops/accounts/member:{member}:wallet:EUR"),
    ("ops-trial-balance", "operator", "/ops/trial-balance"),
    ("ops-kyc", "operator", "/ops/kyc"),
    ("ops-loan-book", "operator", "/operator/loans"),
    ("ops-audit", "operator", "/ops/audit"),
]
STATUS = {"not-found": 404}

# Pages whose axe scan is known to fail on a rule that needs a template change (templates are
# not this suite's to edit); strict, so a fixed page turns the run red until the mark goes.
KNOWN_AXE_FAILURES: dict[str, str] = {}

# Each page's main inputs, found by their label (scoped to a CSS selector).
MAIN_INPUTS = {
    "sign-in": [("form", "E-mail address"), ("form", re.compile(r"^Password")), ("form", "Keep me signed in")],
    "sign-up": [("form", "E-mail address"), ("form", "Display name"), ("form", "Repeat the password")],
    "pools": [("form[role=search]", "Search pools by title")],
    "pools-member": [("form[role=search]", "Search pools by title")],
    "pool-new": [("form", "Title"), ("form", "Minimum volume"), ("form", "Deadline (UTC)")],
    "pool-open": [("#pledge", "Quantity"), ("#pledge", "Maximum unit price"), ("#discussion", "Your comment")],
    "pool-closed": [
        ("#review-form", "5 – excellent"),
        ("#review-form", "Your review"),
        ("#discussion", "Your comment"),
    ],
    "pool-open-supplier": [("#bid", "Tier 1 minimum volume"), ("#bid", "Tier 1 unit price"), ("#bid", "Capacity")],
    "wallet": [
        ("form[action='/wallet/deposit']", "Amount"),
        ("form[action='/wallet/deposit']", "Currency"),
        ("form[action='/wallet/withdraw']", "Amount"),
        ("form[action='/wallet/withdraw']", "Currency"),
    ],
    "lend": [
        ("#offer-form", "Amount to lend"),
        ("#offer-form", "Minimum interest rate"),
        ("#offer-form", "Most per loan"),
    ],
    "borrow": [("#borrow-form", "Amount"), ("#borrow-form", "Maximum interest rate"), ("#borrow-form", "Purpose")],
    "loan-request-funded": [("#comment-form", "Your comment")],
    "loan-as-borrower": [("#pay", "Amount to pay")],
    "ops-journal": [("form", "Account")],
    "ops-kyc": [("form", "KYC status")],
}

# Pages whose every focusable control is walked with the keyboard.
KEYBOARD_PAGES = ["home", "home-member", "pool-open", "borrow", "loan-as-borrower", "ops-journal"]

UNLABELLED_CONTROLS = """() => {
  const named = (el) => {
    if (el.labels && Array.from(el.labels).some((l) => l.textContent.trim())) return true;
    if ((el.getAttribute("aria-label") || "").trim()) return true;
    const ids = (el.getAttribute("aria-labelledby") || "").split(/\\s+/).filter(Boolean);
    return ids.some((id) => { const n = document.getElementById(id); return n && n.textContent.trim(); });
  };
  const controls = Array.from(document.querySelectorAll("input, select, textarea"))
    .filter((el) => el.type !== "hidden");
  const buttons = Array.from(document.querySelectorAll("button"))
    .filter((el) => !el.hidden && !el.textContent.trim() && !(el.getAttribute("aria-label") || "").trim());
  return {
    count: controls.length,
    unlabelled: controls.filter((el) => !named(el)).map((el) => el.outerHTML),
    nameless_buttons: buttons.map((el) => el.outerHTML),
  };
}"""

ASSET_URLS = """() => ({
  scripts: Array.from(document.querySelectorAll("script[src]")).map((el) => el.src),
  links: Array.from(document.querySelectorAll("link[href]")).map((el) => el.href),
  images: Array.from(document.querySelectorAll("img[src]")).map((el) => el.src),
  other: Array.from(document.querySelectorAll("[src]:not(script):not(img), [srcset], [poster]"))
    .map((el) => el.outerHTML),
  inline_scripts: Array.from(document.querySelectorAll("script:not([src])")).length,
})"""

# Every control the keyboard should stop at, in document order (one stop per radio group).
TAB_STOPS = """() => {
  const selector = "a[href], button:not([disabled]), input:not([type=hidden]):not([disabled]), "
    + "select:not([disabled]), textarea:not([disabled]), summary, [tabindex]:not([tabindex='-1'])";
  const seen = new Set();
  const stops = [];
  document.querySelectorAll(selector).forEach((el, index) => {
    if (!el.checkVisibility({visibilityProperty: true}) || el.closest("[inert]")) return;
    if (el.type === "radio") {
      if (seen.has(el.name)) return;
      seen.add(el.name);
    }
    el.setAttribute("data-tab-stop", String(stops.length));
    stops.push({key: el.type === "radio" ? "radio:" + el.name : String(stops.length),
                html: el.outerHTML.slice(0, 160)});
  });
  return stops;
}"""

# What has focus now, and whether its focus indicator shows (outline or box-shadow) and contrasts.
FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el);
  const rgb = (value) => (value.match(/[\\d.]+/g) || []).slice(0, 4).map(Number);
  const luminance = ([r, g, b]) => {
    const lin = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); };
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  };
  const backdrop = (node) => {
    for (let n = node.parentElement; n; n = n.parentElement) {
      const c = rgb(getComputedStyle(n).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const outline = style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2;
  const shadow = style.boxShadow !== "none";
  let contrast = null;
  if (outline) {
    const a = luminance(rgb(style.outlineColor)), b = luminance(backdrop(el));
    contrast = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  }
  // A date input's calendar button is a stop of its own; chromium draws its native ring around the
  // button and the input itself does not match :focus then.
  const picker = /^(date|datetime-local|time|month|week)$/.test(el.type) && !el.matches(":focus");
  return {
    picker: picker,
    stop: el.getAttribute("data-tab-stop"),
    radio: el.type === "radio" ? "radio:" + el.name : null,
    html: el.outerHTML.slice(0, 160),
    outline: outline ? style.outlineWidth + " " + style.outlineStyle + " " + style.outlineColor : null,
    shadow: shadow ? style.boxShadow : null,
    contrast: contrast,
  };
}"""


def css_references(css: str) -> list[str]:
    """Every ``url(...)`` and ``@import "..."`` target in a stylesheet."""
    return re.findall(r"""url\(\s*['"]?([^'")]+)""", css) + re.findall(r"""@import\s+['"]([^'"]+)""", css)


# ---------------------------------------------------------------- the marketplace, built once


def build_marketplace() -> dict:
    """The data every page needs, made through the services (ids only are kept)."""
    operator = person("operator", name="Oscar Operator")
    organizer = person(funds={"EUR": 50_000}, name="Olga Organizer")
    member = person(funds={"EUR": 200_000}, name="Mia Member")
    other_lender = person(funds={"EUR": 100_000}, name="Leo Lender")
    borrower = person(funds={"EUR": 10_000}, name="Bea Borrower")
    supplier = person("supplier", name="Crates Unlimited")
    person(verified=False, name="Ursula Unverified")  # the KYC queue is not empty

    # An open pool with a bid, a pledge and a comment.
    pool = pools.create_pool(
        organizer.id,
        title="Apple crates",
        description="Wooden crates for the co-op.",
        unit="crate",
        currency="EUR",
        min_volume=20,
        deadline=now() + timedelta(days=3),
    )
    pools.place_bid(pool.id, supplier.id, tiers=[{"min_volume": 10, "unit_price": 1100}], capacity=100)
    pools.place_pledge(pool.id, member.id, quantity=12, max_unit_price=1200)
    conversation.add_comment("pool", pool.id, organizer.id, "Delivery to the shed on Saturday mornings.")
    open_pool = pool.id

    # A delivered pool: the award, the comparison, a review and the member's review form.
    done = pools.create_pool(
        organizer.id,
        title="Oat sacks",
        description="",
        unit="sack",
        currency="EUR",
        min_volume=20,
        deadline=now() + timedelta(days=3),
    )
    pools.place_bid(done.id, supplier.id, tiers=[{"min_volume": 10, "unit_price": 1100}], capacity=100)
    pools.place_pledge(done.id, member.id, quantity=25, max_unit_price=1200)
    pools.place_pledge(done.id, organizer.id, quantity=5, max_unit_price=1200)
    pools.close_pool(done.id, organizer.id)
    pools.confirm_delivery(done.id, supplier.id)
    conversation.add_review(done.id, organizer.id, 4, "Good oats, one sack was torn.")
    done_pool = done.id

    # Lending: two offers fund a loan, one installment is paid; a second request stays open.
    market.create_offer(member.id, amount=40_000, currency="EUR", min_rate_bps=700, max_part=30_000)
    market.create_offer(other_lender.id, amount=40_000, currency="EUR", min_rate_bps=800, max_part=30_000)
    funded = market.create_request(
        borrower.id, amount=60_000, currency="EUR", term_months=12, max_rate_bps=1000, purpose="A cargo bike"
    )
    assert funded.status == "funded", funded.status
    loan = loans.get_loan(funded.loan_id)
    repayments.repay(loan.id, borrower.id, loans.next_installment(loan).owed)
    waiting = market.create_request(
        borrower.id, amount=20_000, currency="EUR", term_months=6, max_rate_bps=500, purpose="A new roof"
    )
    assert waiting.status == "open", waiting.status
    conversation.add_comment("loan_request", funded.id, member.id, "What is the bike for?")
    conversation.add_comment("loan_request", waiting.id, member.id, "Which roof?")
    record_audit_committed(
        operator.id, "kyc.set_status", "member", str(borrower.id), {"from": "unverified", "to": "verified"}
    )
    from marketplace.ledger.models import JournalEntry

    entry = db.session.query(JournalEntry.id).order_by(JournalEntry.id).first()[0]
    ids = {
        "open_pool": open_pool,
        "done_pool": done_pool,
        "supplier": supplier.id,
        "member": member.id,
        "loan": funded.loan_id,
        "funded_request": funded.id,
        "open_request": waiting.id,
        "entry": entry,
    }
    people = {"member": member, "borrower": borrower, "supplier": supplier, "operator": operator}
    db.session.remove()
    return {"ids": ids, "people": people}


@pytest.fixture(scope="module")
def module_tabs(browser, gunicorn_server):
    tabs = Browsing(browser, gunicorn_server, "test_accessibility")
    yield tabs
    tabs.close()


@pytest.fixture(scope="module")
def site(app, module_tabs):
    """The marketplace and one signed-in tab per person (a visitor's tab signs in as nobody)."""
    with app.app_context():
        _empty_tables(app)
        built = build_marketplace()
    tabs = {"visitor": module_tabs.open()}
    for role, who in built["people"].items():
        tabs[role] = module_tabs.open()
        sign_in(tabs[role], who.email)
    module_tabs.check()
    AXE_REPORT.unlink(missing_ok=True)
    return {"ids": built["ids"], "tabs": tabs}


@pytest.fixture(autouse=True)
def _clean_database(app):
    """This module's pages only read, so the tables are emptied once, by ``site``; the ledger stays sound."""
    ctx = app.app_context()
    ctx.push()
    try:
        yield
        db.session.remove()
        assert_ledger_invariants()
    finally:
        db.session.remove()
        ctx.pop()


@pytest.fixture(autouse=True)
def _watched(request, module_tabs):
    """The module's tabs are checked after every test: a failure leaves screenshots of them all."""
    module_tabs.start_test(artifact_name(request.node))
    yield
    if has_failed(request.node):
        module_tabs.screenshot_failure()
    module_tabs.check()


def visit(site, page_id: str):
    """The page's tab, on the page (the right status checked); ``borrow-preview`` fills the form too."""
    _, role, template = next(p for p in PAGES if p[0] == page_id)
    tab = site["tabs"][role]
    path = template.format(**site["ids"])
    response = tab.goto(path)
    assert response.status == STATUS.get(page_id, 200), (page_id, path, response.status)
    if page_id == "borrow-preview":
        form = tab.locator("#borrow-form")
        form.get_by_label("Amount", exact=True).fill("600.00")
        form.get_by_label("Maximum interest rate (% a year)").fill("10")
        form.get_by_label("Monthly income (optional)").fill("2,500.00")
        expect(tab.locator("#preview-monthly-payment")).to_have_text("52.75 EUR")
        expect(tab.locator("#preview-grade-reasons")).to_be_visible()
    return tab


def _page_params():
    for page_id, _, _ in PAGES:
        marks = []
        if page_id in KNOWN_AXE_FAILURES:
            marks.append(pytest.mark.xfail(strict=True, reason=f"axe: {KNOWN_AXE_FAILURES[page_id]}"))
        yield pytest.param(page_id, id=page_id, marks=marks)


def describe_violations(violations: list[dict]) -> str:
    lines = []
    for v in violations:
        lines.append(f"{v['id']} ({v['impact']}): {v['help']}")
        for node in v["nodes"]:
            lines.append(f"    {' '.join(map(str, node['target']))}  {node['html'][:140]}")
            summary = " ".join(node.get("failureSummary", "").split())
            if summary:
                lines.append(f"        {summary[:300]}")
    return "\n".join(lines)


# ---------------------------------------------------------------- the tests


@pytest.mark.parametrize("page_id", list(_page_params()))
def test_axe_finds_no_serious_or_critical_violation(site, page_id):
    from axe_playwright_python.sync_playwright import Axe

    tab = visit(site, page_id)
    results = Axe().run(tab).response
    violations = results["violations"]
    ARTIFACTS.mkdir(exist_ok=True)
    with AXE_REPORT.open("a", encoding="utf-8") as report:
        report.write(f"== {page_id} {tab.url} ({len(violations)} violations)\n")
        if violations:
            report.write(describe_violations(violations) + "\n")
    if violations:
        (ARTIFACTS / f"axe-{page_id}.json").write_text(json.dumps(violations, indent=1))
    blocking = [v for v in violations if v["impact"] in BLOCKING_IMPACTS]
    assert blocking == [], f"axe on {page_id} ({tab.url}):\n{describe_violations(violations)}"
    assert results["testEngine"]["name"] == "axe-core"


@pytest.mark.parametrize("page_id", [p[0] for p in PAGES])
def test_one_heading_labelled_controls_and_skip_link(site, page_id):
    tab = visit(site, page_id)
    page_url = tab.url
    where = f"{page_id} {page_url}"

    # Exactly one top-level heading.
    expect(tab.locator("h1"), where).to_have_count(1)

    # Every form control has an accessible name; the main ones are found by their label.
    report = tab.evaluate(UNLABELLED_CONTROLS)
    assert report["unlabelled"] == [], (where, report["unlabelled"])
    assert report["nameless_buttons"] == [], (where, report["nameless_buttons"])
    for scope, label in MAIN_INPUTS.get(page_id, []):
        control = tab.locator(scope).get_by_label(label)
        expect(control, f"{where}: {label}").to_have_count(1)
        expect(control, f"{where}: {label}").to_be_visible()
        expect(control, f"{where}: {label}").to_be_editable()

    # The skip link is the first stop of the keyboard, and it moves focus to the content.
    tab.goto(tab.url)  # a fresh load: nothing focused yet unless the page autofocuses
    assert tab.evaluate("() => document.activeElement === document.body"), where
    tab.keyboard.press("Tab")
    focused = tab.evaluate(
        "() => ({text: document.activeElement.textContent.trim(), href: document.activeElement.getAttribute('href')})"
    )
    assert focused == {"text": "Skip to content", "href": "#main"}, (where, focused)
    expect(tab.locator(".skip-link")).to_be_visible()  # shown when focused
    tab.keyboard.press("Enter")
    assert tab.evaluate("() => document.activeElement.id") == "main", where
    # No console errors (an error page's own status is reported by chromium as one; that is expected).
    errors = [e for e in tab.watch.console_errors if not (page_id in STATUS and e.endswith(" @ " + page_url))]
    assert errors == [], (where, errors)


@pytest.mark.parametrize("page_id", KEYBOARD_PAGES)
def test_keyboard_reaches_every_control_with_a_visible_focus(site, page_id):
    tab = visit(site, page_id)
    tab.goto(tab.url)  # a fresh load, nothing focused
    stops = tab.evaluate(TAB_STOPS)
    assert len(stops) > 5, stops
    nav_links = tab.get_by_role("navigation", name="Main").get_by_role("link")
    nav_hrefs = [nav_links.nth(i).get_attribute("href") for i in range(nav_links.count())]
    assert nav_hrefs, "no navigation links"

    reached: list[dict] = []
    for _ in range(2 * len(stops) + 10):  # scrolling regions may be stops of their own in chromium
        tab.keyboard.press("Tab")
        now_focused = tab.evaluate(FOCUSED)
        if now_focused is None or (reached and now_focused["html"] == reached[0]["html"]):
            break  # back to the top of the page
        reached.append(now_focused)
    where = f"{page_id} {tab.url}"

    # The skip link first, then the brand, then the navigation's links in their order.
    assert "Skip to content" in reached[0]["html"], (where, reached[0])
    hrefs = [re.search(r'href="([^"]*)"', r["html"]).group(1) if "href=" in r["html"] else None for r in reached]
    start = hrefs.index(nav_hrefs[0])
    assert hrefs[start : start + len(nav_hrefs)] == nav_hrefs, (where, hrefs[: start + len(nav_hrefs)])
    assert start <= 2, (where, hrefs[:start])

    # Every control was reached, in document order.
    # A date input is several stops (day, month, year, picker): one control. Scrolling regions that
    # chromium makes focusable are extra stops, not controls.
    keys: list[str] = []
    for r in reached:
        key = r["radio"] or r["stop"]
        if key is not None and (not keys or keys[-1] != key):
            keys.append(key)
    expected = [s["key"] for s in stops]
    missing = [s for s in stops if s["key"] not in keys]
    assert missing == [], (where, "not reachable with Tab", missing)
    assert keys[: len(expected)] == expected, (where, "Tab order differs from the document order")

    # Each shows a focus indicator; an outline contrasts at least 3:1 with what is behind it.
    invisible = [r for r in reached if not r["outline"] and not r["shadow"] and not r["picker"]]
    assert invisible == [], (where, "no visible focus", invisible)
    faint = [r for r in reached if r["contrast"] is not None and r["contrast"] < 3]
    assert faint == [], (where, "focus indicator below 3:1", faint)


def test_no_cdn_every_asset_is_local_and_served(site, live_server):
    checked: dict[str, str] = {}
    for page_id, _, _ in PAGES:
        tab = visit(site, page_id)
        assets = tab.evaluate(ASSET_URLS)
        assert assets["scripts"], (page_id, "no script found: the check would be vacuous")
        assert assets["links"], (page_id, "no stylesheet found: the check would be vacuous")
        assert assets["other"] == [], (page_id, assets["other"])
        assert assets["inline_scripts"] == 0, page_id  # the CSP forbids them anyway
        for url in assets["scripts"] + assets["links"] + assets["images"]:
            assert url.startswith(live_server + "/static/"), (page_id, url)
            if url in checked:
                continue
            response = tab.request.get(url)
            assert response.status == 200, (page_id, url, response.status)
            checked[url] = response.headers.get("content-type", "")
            if url.endswith(".css"):
                css = response.text()
                # Stylesheets pull nothing in from elsewhere either.
                remote = [ref for ref in css_references(css) if re.match(r"^(?:[a-z]+:)?//", ref, re.I)]
                assert remote == [], (url, remote)
    assert any(url.endswith(".css") and ctype.startswith("text/css") for url, ctype in checked.items()), checked
    assert any(url.endswith(".js") and "javascript" in ctype for url, ctype in checked.items()), checked
    for tab in site["tabs"].values():
        assert tab.watch.foreign_requests == []
        assert all(url.startswith(live_server + "/") for url in tab.watch.requests), tab.watch.requests


def test_dark_mode_colour_contrast_on_every_page(site):
    """The dark palette (prefers-color-scheme: dark) meets AA contrast too: axe's color-contrast rule."""
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()
    found = {}
    try:
        for tab in site["tabs"].values():
            tab.emulate_media(color_scheme="dark")
        for page_id, _, _ in PAGES:
            tab = visit(site, page_id)
            assert tab.evaluate("() => matchMedia('(prefers-color-scheme: dark)').matches")
            results = axe.run(tab, options={"runOnly": ["color-contrast"], "resultTypes": ["violations"]}).response
            if results["violations"]:
                found[page_id] = results["violations"]
    finally:
        for tab in site["tabs"].values():
            tab.emulate_media(color_scheme="light")
    with AXE_REPORT.open("a", encoding="utf-8") as report:
        for page_id, violations in found.items():
            report.write(f"== dark mode: {page_id}\n{describe_violations(violations)}\n")
    assert found == {}, "\n".join(f"{page_id}:\n{describe_violations(v)}" for page_id, v in found.items())


PHONE_PAGES = ("pool-closed", "wallet", "portfolio", "loan-as-borrower", "ops-journal", "ops-trial-balance", "api-docs")


def test_on_a_phone_wide_tables_scroll_by_keyboard_and_axe_stays_clean(site):
    """At 375 px, tables wider than the screen scroll inside a box that the keyboard can reach (app.js)."""
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()
    found = {}
    sizes = {role: tab.viewport_size for role, tab in site["tabs"].items()}
    try:
        for tab in site["tabs"].values():
            tab.set_viewport_size({"width": 375, "height": 740})
        for page_id in PHONE_PAGES:
            tab = visit(site, page_id)
            tab.wait_for_load_state("load")
            results = axe.run(tab, options={"resultTypes": ["violations"]}).response
            serious = [v for v in results["violations"] if v.get("impact") in ("serious", "critical")]
            if serious:
                found[page_id] = serious
            overflowing = tab.evaluate(
                "() => [...document.querySelectorAll('.table-wrap')]"
                ".filter(b => b.scrollWidth > b.clientWidth + 1)"
                ".filter(b => b.getAttribute('tabindex') !== '0' || !b.getAttribute('aria-label')).length"
            )
            assert overflowing == 0, f"{page_id}: a scrolling table box is not keyboard-reachable"
    finally:
        for role, tab in site["tabs"].items():
            if sizes[role]:
                tab.set_viewport_size(sizes[role])
    assert found == {}, "\n".join(f"{page_id}:\n{describe_violations(v)}" for page_id, v in found.items())
