"""Journeys 5 and 6: accessibility basics and no third-party assets on the key pages.

Key pages: home, the pool list, a pool's page, the wallet and the sign-in
page, each seen by a visitor and (where it differs) by a signed-in member.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from marketplace.clock import now
from marketplace.extensions import db
from marketplace.pools import services as pools

from .conftest import person, sign_in

pytestmark = pytest.mark.e2e

# Each page's main inputs, found by their label (scoped to a CSS selector).
MAIN_INPUTS = {
    "login": [("form", "E-mail address"), ("form", re.compile(r"^Password")), ("form", "Keep me signed in")],
    "home": [],
    "pools": [("form[role=search]", "Search pools by title")],
    "pool": [("#pledge", "Quantity"), ("#pledge", "Maximum unit price"), ("#discussion", "Your comment")],
    "pool-visitor": [],
    "pool-delivered": [
        ("#review-form", "5 – excellent"),
        ("#review-form", "Your review"),
        ("#discussion", "Your comment"),
    ],
    "wallet": [
        ("form[action='/wallet/deposit']", "Amount"),
        ("form[action='/wallet/deposit']", "Currency"),
        ("form[action='/wallet/withdraw']", "Amount"),
        ("form[action='/wallet/withdraw']", "Currency"),
    ],
}

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


def css_references(css: str) -> list[str]:
    """Every ``url(...)`` and ``@import "..."`` target in a stylesheet."""
    return re.findall(r"""url\(\s*['"]?([^'")]+)""", css) + re.findall(r"""@import\s+['"]([^'"]+)""", css)


@pytest.fixture
def site(open_page):
    """An open pool and a delivered one the member can review; a visitor's and the member's tabs."""
    organizer = person(funds={"EUR": 50_000}, name="Olga Organizer")
    member = person(funds={"EUR": 50_000}, name="Mia Member")
    supplier = person("supplier", name="Crates Unlimited")
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
    pool_id = pool.id
    # A second pool, delivered: its page has the award, the bid comparison and the review form.
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
    pools.close_pool(done.id, organizer.id)
    pools.confirm_delivery(done.id, supplier.id)
    done_id = done.id
    db.session.remove()

    visitor = open_page()
    signed_in = open_page()
    sign_in(signed_in, member.email)
    return {
        "pool_id": pool_id,
        "visitor": visitor,
        "member": signed_in,
        "pages": [
            (visitor, "login", "/login"),
            (visitor, "home", "/"),
            (visitor, "pools", "/pools"),
            (visitor, "pool-visitor", f"/pools/{pool_id}"),
            (signed_in, "home", "/"),
            (signed_in, "pools", "/pools"),
            (signed_in, "pool", f"/pools/{pool_id}"),
            (signed_in, "pool-delivered", f"/pools/{done_id}"),
            (signed_in, "wallet", "/wallet"),
        ],
    }


def test_accessibility_basics_on_key_pages(site, live_server):
    for tab, kind, path in site["pages"]:
        tab.watch.console_errors.clear()
        response = tab.goto(path)
        assert response.status == 200, (path, response.status)
        where = f"{kind} {path}"

        # Exactly one top-level heading.
        expect(tab.locator("h1"), where).to_have_count(1)

        # Every form control has an accessible name; the main ones are found by their label.
        report = tab.evaluate(UNLABELLED_CONTROLS)
        assert report["unlabelled"] == [], (where, report["unlabelled"])
        assert report["nameless_buttons"] == [], (where, report["nameless_buttons"])
        for scope, label in MAIN_INPUTS[kind]:
            control = tab.locator(scope).get_by_label(label)
            expect(control, f"{where}: {label}").to_have_count(1)
            expect(control, f"{where}: {label}").to_be_visible()
            expect(control, f"{where}: {label}").to_be_editable()

        # The skip link is the first stop of the keyboard, and it moves focus to the content.
        tab.goto(path)  # a fresh load: nothing focused yet unless the page autofocuses
        assert tab.evaluate("() => document.activeElement === document.body"), where
        tab.keyboard.press("Tab")
        focused = tab.evaluate(
            "() => ({text: document.activeElement.textContent.trim(), href: document.activeElement.getAttribute('href')})"
        )
        assert focused == {"text": "Skip to content", "href": "#main"}, (where, focused)
        expect(tab.locator(".skip-link")).to_be_visible()  # shown when focused
        tab.keyboard.press("Enter")
        assert tab.evaluate("() => document.activeElement.id") == "main", where

        # No console errors, and nothing was requested from anywhere but the live server.
        assert tab.watch.console_errors == [], (where, tab.watch.console_errors)
        foreign = [url for url in tab.watch.requests if not url.startswith(live_server + "/")]
        assert foreign == [], (where, foreign)
        assert tab.watch.foreign_requests == [], where


def test_no_cdn_every_asset_is_local_and_served(site, live_server):
    checked: dict[str, str] = {}
    for tab, kind, path in site["pages"]:
        tab.goto(path)
        where = f"{kind} {path}"
        assets = tab.evaluate(ASSET_URLS)
        assert assets["scripts"], (where, "no script found: the check would be vacuous")
        assert assets["links"], (where, "no stylesheet found: the check would be vacuous")
        assert assets["other"] == [], (where, assets["other"])
        assert assets["inline_scripts"] == 0, where  # the CSP forbids them anyway
        for url in assets["scripts"] + assets["links"] + assets["images"]:
            assert url.startswith(live_server + "/static/"), (where, url)
            if url in checked:
                continue
            response = tab.request.get(url)
            assert response.status == 200, (where, url, response.status)
            checked[url] = response.headers.get("content-type", "")
            if url.endswith(".css"):
                css = response.text()
                # Stylesheets pull nothing in from elsewhere either.
                remote = [ref for ref in css_references(css) if re.match(r"^(?:[a-z]+:)?//", ref, re.I)]
                assert remote == [], (url, remote)
    assert any(url.endswith(".css") and ctype.startswith("text/css") for url, ctype in checked.items()), checked
    assert any(url.endswith(".js") and "javascript" in ctype for url, ctype in checked.items()), checked
    for tab in (site["visitor"], site["member"]):
        assert tab.watch.foreign_requests == []
        assert all(url.startswith(live_server + "/") for url in tab.watch.requests), tab.watch.requests
