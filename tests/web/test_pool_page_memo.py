"""The pool page's public summary is memoized (views._summary): it must show every change to the
pool at once, in the reader's language, and never carry anything of one viewer to another.

Runs on SQLite and (with TEST_DATABASE_URL) on PostgreSQL.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from marketplace.accounts.models import Member
from marketplace.clock import now
from marketplace.conversation import services as conversation
from marketplace.extensions import db
from marketplace.memo import Memo
from marketplace.pools import services as pools
from marketplace.pools import views as pool_views
from marketplace.pools.models import Pool
from tests.api.test_pool_read_memo import make_pool
from tests.helpers import make_member, set_clock
from tests.web.test_pool_pages import browser, signed_in, text


@pytest.fixture(autouse=True)
def _empty_memos():
    pool_views._SUMMARIES.clear()
    pool_views._VISITOR_PAGES.clear()


def page(client, pool_id, **headers):
    db.session.remove()  # as a real request starts: no session yet
    response = client.get(f"/pools/{pool_id}", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return response


def facts(response) -> dict:
    html = response.get_data(as_text=True)
    found = {name: re.search(rf'id="{name}">(.*?)</dd>', html, re.S) for name in ("pledge-count", "best-price")}
    return {name: (m.group(1).strip() if m else None) for name, m in found.items()}


def test_the_page_follows_every_change_to_the_pool(app):
    organizer_id = make_member(name="Olga Organizer").id
    alice_id = make_member(funds={"EUR": 1_000_000}).id
    supplier_id = make_member("supplier").id
    pool_id = make_pool(organizer_id)
    client = browser(app)
    assert facts(page(client, pool_id))["pledge-count"] == "0"
    assert facts(page(client, pool_id))["pledge-count"] == "0"  # the memoized summary

    pledge = pools.place_pledge(pool_id, alice_id, quantity=4, max_unit_price=9_000).id
    assert facts(page(client, pool_id))["pledge-count"] == "1"
    assert "4 of 10 units" in text(page(client, pool_id))
    pools.withdraw_pledge(pool_id, pledge, alice_id)
    assert facts(page(client, pool_id))["pledge-count"] == "0"
    pools.place_pledge(pool_id, alice_id, quantity=12, max_unit_price=9_000)
    assert "12 of 10 units" in text(page(client, pool_id))

    pools.place_bid(pool_id, supplier_id, tiers=[{"min_volume": 5, "unit_price": 8_000}], capacity=100)
    assert "80.00" in facts(page(client, pool_id))["best-price"]
    pools.place_bid(pool_id, supplier_id, tiers=[{"min_volume": 5, "unit_price": 7_500}], capacity=100)
    assert "75.00" in facts(page(client, pool_id))["best-price"]

    conversation.add_comment("pool", pool_id, alice_id, "Is delivery included?")
    assert "Is delivery included?" in text(page(client, pool_id))

    organizer = db.session.get(Member, organizer_id)
    organizer.display_name = "Olga Renamed"
    db.session.commit()
    assert "Organised by Olga Renamed" in text(page(client, pool_id))

    pools.close_pool(pool_id, organizer_id)
    closed = text(page(client, pool_id))
    assert "Awarded" in closed and "closes in" not in closed
    assert db.session.get(Pool, pool_id).status == "awarded"


def test_each_language_gets_its_own_summary(app):
    organizer_id = make_member(name="Olga Organizer").id
    pool_id = make_pool(organizer_id)
    client = browser(app)
    for _ in range(2):
        assert "Organised by Olga Organizer" in text(page(client, pool_id, **{"Accept-Language": "en"}))
        spanish = text(page(client, pool_id, **{"Accept-Language": "es"}))
        assert "Organizada por Olga Organizer" in spanish and "Organised by" not in spanish
        assert "Organised by Olga Organizer" in text(page(client, pool_id, **{"Accept-Language": "en"}))


def test_the_time_left_follows_the_clock(app):
    organizer_id = make_member().id
    start = now().replace(microsecond=0)
    set_clock(start)
    pool_id = make_pool(organizer_id, deadline=start + timedelta(hours=3))
    client = browser(app)
    assert "closes in 3 hours" in text(page(client, pool_id))
    set_clock(start + timedelta(hours=1, minutes=30))
    assert "closes in 1 hour 30 minutes" in text(page(client, pool_id))
    set_clock(start + timedelta(hours=4))
    assert "deadline passed, closing shortly" in text(page(client, pool_id))


@pytest.mark.parametrize("memo", ["_SUMMARIES", "_VISITOR_PAGES"])
def test_the_memos_stay_bounded(app, monkeypatch, memo):
    monkeypatch.setattr(pool_views, memo, Memo(2))
    organizer_id = make_member().id
    made = [make_pool(organizer_id, title=f"Pool number {n}") for n in range(4)]
    client = browser(app)
    for _ in range(2):
        for n, pool_id in enumerate(made):
            assert f"Pool number {n}" in text(page(client, pool_id))
    assert len(getattr(pool_views, memo)) == 2


def test_a_viewer_sees_only_their_own_pledges_and_forms(app):
    organizer_id = make_member().id
    alice = make_member(funds={"EUR": 1_000_000}, name="Alice")
    bob = make_member(funds={"EUR": 1_000_000}, name="Bob")
    pool_id = make_pool(organizer_id)
    pools.place_pledge(pool_id, alice.id, quantity=3, max_unit_price=9_100)
    alice_client, bob_client, visitor = signed_in(app, alice), signed_in(app, bob), browser(app)

    anonymous = page(visitor, pool_id).get_data(as_text=True)
    assert "Your pledges in this pool" not in anonymous and "91.00" not in anonymous
    assert len(re.findall(rf'href="/login\?next=/pools/{pool_id}"', anonymous)) == 2  # pledge, discussion
    mine = page(alice_client, pool_id).get_data(as_text=True)
    assert "Your pledges in this pool" in mine and "91.00" in mine and "Signed in as" in mine
    theirs = page(bob_client, pool_id).get_data(as_text=True)
    assert "Your pledges in this pool" not in theirs and "91.00" not in theirs
    assert 'id="comment-form"' in theirs and 'name="quantity"' in theirs  # Bob's own forms
    again = page(visitor, pool_id).get_data(as_text=True)
    assert "Signed in as" not in again and 'id="comment-form"' not in again and "Alice" not in again

    tokens = {re.search(r'name="csrf_token" value="([^"]+)"', html).group(1) for html in (mine, theirs, anonymous)}
    assert len(tokens) == 3  # each viewer's own CSRF token, never a memoized one


def test_unknown_pool_is_still_404(app):
    response = browser(app).get("/pools/999999")
    assert response.status_code == 404


# ---------------------------------------------------------------- the whole page a visitor sees (views._visitor_page)


def _masked(response) -> str:
    """The page with its CSRF tokens (signed anew each second) masked."""
    return re.sub(r'name="csrf_token" value="[^"]*"', 'name="csrf_token" value="T"', response.get_data(as_text=True))


def _fresh_and_memoized(client, pool_id, **headers) -> tuple[str, str]:
    """The visitor's page rendered anew (empty memo), then served from the memo."""
    pool_views._VISITOR_PAGES.clear()
    fresh = page(client, pool_id, **headers)
    memoized = page(client, pool_id, **headers)
    assert len(pool_views._VISITOR_PAGES) == 1
    return _masked(fresh), _masked(memoized)


def test_a_visitor_is_served_the_page_exactly_as_it_would_be_rendered(app):
    organizer_id = make_member(name="Olga Organizer").id
    alice_id = make_member(funds={"EUR": 1_000_000}, name="Alice").id
    supplier_id = make_member("supplier").id
    pool_id = make_pool(organizer_id)
    client = browser(app)
    seen = set()

    def check(**headers) -> str:
        fresh, memoized = _fresh_and_memoized(client, pool_id, **headers)
        assert memoized == fresh
        seen.add(fresh)
        return fresh

    check()
    pools.place_pledge(pool_id, alice_id, quantity=4, max_unit_price=9_000)
    check()
    pools.place_bid(pool_id, supplier_id, tiers=[{"min_volume": 5, "unit_price": 8_000}], capacity=100)
    check()
    conversation.add_comment("pool", pool_id, alice_id, "Is <b>delivery</b> included?")
    html = check()
    assert "Is &lt;b&gt;delivery&lt;/b&gt; included?" in html
    alice = db.session.get(Member, alice_id)
    alice.display_name = "Alice Renamed"  # a commenter's name is part of what the page shows
    db.session.commit()
    assert "Alice Renamed" in check()
    spanish = check(**{"Accept-Language": "es"})
    assert 'lang="es"' in spanish
    assert len(seen) == 6  # every change above changed the page


def test_a_visitors_page_follows_new_comments_authors_and_comment_pages(app):
    organizer_id = make_member().id
    alice_id = make_member(name="Alice").id
    pool_id = make_pool(organizer_id)
    client = browser(app)
    for n in range(pool_views.COMMENTS_PER_PAGE):
        conversation.add_comment("pool", pool_id, alice_id, f"Comment number {n}")
    assert "Comment number 0" in text(page(client, pool_id))
    conversation.add_comment("pool", pool_id, organizer_id, "The last word")
    last = text(page(client, pool_id))  # the newest page by default: now page 2
    assert "The last word" in last and "Comment number 0" not in last
    first = text(client.get(f"/pools/{pool_id}?cpage=1"))
    assert "Comment number 0" in first and "The last word" not in first
    alice = db.session.get(Member, alice_id)
    alice.display_name = "Alice Renamed"
    db.session.commit()
    assert "Alice Renamed" in text(client.get(f"/pools/{pool_id}?cpage=1"))


def test_each_visitor_gets_their_own_working_csrf_token(app):
    pool_id = make_pool(make_member().id)
    first, second = browser(app), browser(app)
    tokens = []
    for client in (first, second, first):
        html = page(client, pool_id).get_data(as_text=True)
        assert "csrf-slot-" not in html
        tokens.append(re.search(r'name="csrf_token" value="([^"]+)"', html).group(1))
    assert len(pool_views._VISITOR_PAGES) == 1  # one page served to both
    # Each token is its own session's: the language switch accepts it there, and only there.
    switched = first.post("/language", data={"csrf_token": tokens[2], "locale": "fi", "next": f"/pools/{pool_id}"})
    assert switched.status_code == 303
    assert 'lang="fi"' in page(first, pool_id).get_data(as_text=True)
    refused = second.post("/language", data={"csrf_token": tokens[0], "locale": "fi", "next": "/"})
    assert refused.status_code == 400


def test_a_visitor_with_a_message_to_show_gets_it_once(app):
    pool_id = make_pool(make_member().id)
    client = browser(app)
    page(client, pool_id)  # memoized, without any message
    with client.session_transaction() as session:
        session["_flashes"] = [("info", "A message for this visitor only")]
    assert "A message for this visitor only" in text(page(client, pool_id))
    assert "A message for this visitor only" not in text(page(client, pool_id))
    assert "A message for this visitor only" not in text(page(browser(app), pool_id))


def test_only_open_pools_are_served_from_the_visitors_memo(app):
    organizer_id = make_member().id
    pool_id = make_pool(organizer_id)
    client = browser(app)
    page(client, pool_id)
    assert len(pool_views._VISITOR_PAGES) == 1
    pools.cancel_pool(pool_id, organizer_id)
    pool_views._VISITOR_PAGES.clear()
    assert "cancelled" in text(page(client, pool_id))
    assert len(pool_views._VISITOR_PAGES) == 0


def test_the_language_switch_returns_a_visitor_to_the_address_they_came_by(app):
    pool_id = make_pool(make_member().id)
    client = browser(app)
    for path in (f"/pools/{pool_id}", f"/pools/{pool_id}?from=newsletter", f"/pools/{pool_id}"):
        html = client.get(path).get_data(as_text=True)
        expected = path if "?" in path else path + "?"  # request.full_path, as the layout writes it
        assert f'name="next" value="{expected}"' in html
