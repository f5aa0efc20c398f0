"""The buying-pool pages through the test client, CSRF on: browse, start, pledge, bid, close, deliver."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape

from flask import g
from flask.testing import FlaskClient
from sqlalchemy import func, select

from marketplace.clock import now
from marketplace.extensions import db
from marketplace.pools import services as pools
from marketplace.pools.models import Bid, Pledge, Pool
from tests.helpers import csrf_token, login, make_member, wallet_of


class Browser(FlaskClient):
    """A test client whose every request starts with an empty ``g``.

    The test harness keeps one app context per test, so without this ``g``
    (Flask-Login's cached user, Flask-WTF's CSRF token) would leak from one
    client's request into another's.
    """

    def open(self, *args, **kwargs):
        for key in list(g):
            g.pop(key)
        return super().open(*args, **kwargs)


def browser(app) -> Browser:
    return Browser(app, app.response_class, use_cookies=True)


def signed_in(app, member):
    """A fresh test client with ``member`` signed in."""
    client = browser(app)
    response = login(client, member.email)
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def token(client, path="/pools") -> str:
    return csrf_token(client.get(path).get_data(as_text=True))


def text(response) -> str:
    """The page as text with tags dropped and whitespace collapsed (for sentence checks)."""
    return text_of(response.get_data(as_text=True))


def text_of(fragment: str) -> str:
    """Inline tags vanish, block tags become spaces, whitespace collapses."""
    inline = re.sub(r"</?(?:strong|span|a|em|time|code|b|i)\b[^>]*>", "", fragment)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", inline)))


def make_pool(organizer, *, title="Solar panels for the community hall", min_volume=100, hours=24, unit="panel"):
    return pools.create_pool(
        organizer.id,
        title=title,
        description="Bulk order",
        unit=unit,
        currency="EUR",
        min_volume=min_volume,
        deadline=now() + timedelta(hours=hours),
    )


def worked_example():
    """shared/DESIGN.md: pledges A 50@9.00, B 40@8.00, C 30@7.50, D 50@6.00; bids X and Y."""
    organizer = make_member(name="Olga Organizer")
    a, b, c, d = (make_member(funds={"EUR": 100_000}, name=f"Member {n}") for n in "ABCD")
    x = make_member("supplier", name="Xavier Supplies")
    y = make_member("supplier", name="Yolanda Supplies")
    pool = make_pool(organizer)
    for member, quantity, price in ((a, 50, 900), (b, 40, 800), (c, 30, 750), (d, 50, 600)):
        pools.place_pledge(pool.id, member.id, quantity=quantity, max_unit_price=price)
    tiers_x = [
        {"min_volume": 50, "unit_price": 900},
        {"min_volume": 100, "unit_price": 800},
        {"min_volume": 150, "unit_price": 700},
    ]
    pools.place_bid(pool.id, x.id, tiers=tiers_x, capacity=500)
    pools.place_bid(pool.id, y.id, tiers=[{"min_volume": 100, "unit_price": 750}], capacity=200)
    return {"pool": pool, "organizer": organizer, "a": a, "b": b, "c": c, "d": d, "x": x, "y": y}


def bid_data(rows, capacity, csrf):
    data = {"csrf_token": csrf, "capacity": capacity}
    for i, (volume, price) in enumerate(rows):
        data[f"tier-{i}-min_volume"] = volume
        data[f"tier-{i}-unit_price"] = price
    return data


def field_error(html: str, input_id: str) -> str:
    """The error text linked to an input through aria-describedby."""
    match = re.search(rf'<input[^>]*id="{re.escape(input_id)}"[^>]*>', html) or re.search(
        rf'<(?:textarea|select)[^>]*id="{re.escape(input_id)}"[^>]*>', html
    )
    assert match, f"no input {input_id}"
    assert 'aria-invalid="true"' in match.group(0), match.group(0)
    assert f"{input_id}-error" in match.group(0), match.group(0)
    error = re.search(rf'id="{re.escape(input_id)}-error"[^>]*>(.*?)</div>', html, re.S)
    assert error, f"no error element for {input_id}"
    return unescape(re.sub(r"<[^>]+>", " ", error.group(1))).strip()


# ---------------------------------------------------------------- browsing


def freeze_clock(moment=datetime(2027, 3, 1, 12, 0, tzinfo=UTC)):
    from marketplace.operators.services import set_test_clock

    set_test_clock(make_member("operator").id, moment)


def test_pool_list_tabs_search_and_card(app):
    client = browser(app)
    freeze_clock()
    organizer = make_member()
    far = make_pool(organizer, title="Heat pumps for Elm Street", hours=24 * 10, min_volume=40)
    make_pool(organizer, title="Solar panels bulk buy", hours=20)
    gone = make_pool(organizer, title="Bicycles for the school", hours=30)
    pools.cancel_pool(gone.id, organizer.id)
    member = make_member(funds={"EUR": 10_000})
    pools.place_pledge(far.id, member.id, quantity=10, max_unit_price=500)
    supplier = make_member("supplier")
    pools.place_bid(far.id, supplier.id, tiers=[{"min_volume": 5, "unit_price": 450}], capacity=100)

    page = client.get("/pools")  # anonymous users may browse
    assert page.status_code == 200
    body = text(page)
    assert "Heat pumps for Elm Street" in body and "Solar panels bulk buy" in body
    assert "Bicycles for the school" not in body
    # Open pools: soonest deadline first.
    assert body.index("Solar panels bulk buy") < body.index("Heat pumps for Elm Street")
    html = page.get_data(as_text=True)
    assert f'<progress class="progress" id="progress-{far.id}" max="40" value="10"' in html
    assert "10 of 40 units" in body and "0 of 100 units" in body
    assert "Pledges 1" in body
    assert "Best unit price 4.50 EUR" in body
    assert "closes in 10 days" in body and "closes in 20 hours" in body
    assert '<a href="/pools?tab=open" aria-current="page">Open</a>' in html

    closing = text(client.get("/pools?tab=closing"))
    assert "Solar panels bulk buy" in closing and "Heat pumps" not in closing and "Bicycles" not in closing

    closed = text(client.get("/pools?tab=closed"))
    assert "Bicycles for the school" in closed and "Cancelled" in closed
    assert "Solar panels bulk buy" not in closed

    found = text(client.get("/pools?q=heat"))
    assert "Heat pumps for Elm Street" in found and "Solar panels bulk buy" not in found
    assert "No open pools match “zeppelin”" in text(client.get("/pools?q=zeppelin"))
    assert "Bicycles" in text(client.get("/pools?tab=closed&q=bicy"))
    assert client.get("/pools?q=%00&tab=nonsense&page=x").status_code == 200


def test_pool_list_empty_state_and_pagination(app):
    client = browser(app)
    assert "No open pools yet — start one" in text(client.get("/pools"))
    organizer = make_member()
    for n in range(14):
        make_pool(organizer, title=f"Pool number {n:02d}", hours=10 + n)
    first = text(client.get("/pools"))
    assert "Pool number 00" in first and "Pool number 12" not in first
    assert "Showing 1–12 of 14" in first
    second = text(client.get("/pools?page=2"))
    assert "Pool number 12" in second and "Pool number 13" in second and "Pool number 00" not in second


# ---------------------------------------------------------------- starting a pool


def test_create_pool_form_success(app):
    member = make_member()
    client = signed_in(app, member)
    page = client.get("/pools/new")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'type="datetime-local"' in html and "read as UTC" in html
    for field in ("title", "description", "unit", "currency", "min_volume", "deadline"):
        assert f'<label for="{field}">' in html
    deadline = (now() + timedelta(days=3)).replace(second=0, microsecond=0)
    response = client.post(
        "/pools/new",
        data={
            "csrf_token": csrf_token(html),
            "title": "  Laptops for the co-op  ",
            "description": "14 inch",
            "unit": "laptop",
            "currency": "GBP",
            "min_volume": "25",
            "deadline": deadline.strftime("%Y-%m-%dT%H:%M"),
        },
    )
    assert response.status_code == 302
    pool = db.session.execute(select(Pool)).scalar_one()
    assert response.headers["Location"].endswith(f"/pools/{pool.id}")
    assert (pool.title, pool.unit, pool.currency, pool.min_volume) == ("Laptops for the co-op", "laptop", "GBP", 25)
    assert pool.deadline == deadline.astimezone(UTC) and pool.organizer_id == member.id
    detail = text(client.get(f"/pools/{pool.id}"))
    assert "Laptops for the co-op" in detail and "is open" in detail


def test_create_pool_validation_errors_next_to_fields(app):
    client = signed_in(app, make_member())
    csrf = token(client, "/pools/new")
    past = (now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(
        "/pools/new",
        data={
            "csrf_token": csrf,
            "title": "Pumps",
            "unit": "pump",
            "currency": "EUR",
            "min_volume": "10",
            "deadline": past,
        },
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "must be in the future" in field_error(html, "deadline").lower()

    response = client.post(
        "/pools/new",
        data={
            "csrf_token": csrf,
            "title": "",
            "unit": "pump",
            "currency": "XXX",
            "min_volume": "0",
            "deadline": "tomorrow",
        },
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "at least 1" in field_error(html, "min_volume")
    assert "title" in field_error(html, "title").lower()
    assert "date and time" in field_error(html, "deadline")
    select_tag = re.search(r'<select[^>]*id="currency"[^>]*>', html).group(0)
    assert 'aria-invalid="true"' in select_tag and "Not a valid choice" in field_error(html, "currency")
    assert 'value="pump"' in html  # what was typed is kept
    assert db.session.execute(select(func.count(Pool.id))).scalar_one() == 0


def test_unverified_member_sees_why_and_supplier_gets_403(app):
    client = signed_in(app, make_member(verified=False))
    page = client.get("/pools/new")
    assert page.status_code == 403
    body = text(page)
    assert "must be verified (KYC)" in body and "Verification needed" in body
    assert 'name="title"' not in page.get_data(as_text=True)
    csrf = token(client)
    refused = client.post(
        "/pools/new",
        data={
            "csrf_token": csrf,
            "title": "x",
            "unit": "u",
            "currency": "EUR",
            "min_volume": "5",
            "deadline": "2099-01-01T00:00",
        },
    )
    assert refused.status_code == 403
    assert db.session.execute(select(func.count(Pool.id))).scalar_one() == 0

    supplier_page = signed_in(app, make_member("supplier")).get("/pools/new")
    assert supplier_page.status_code == 403
    assert "Suppliers bid on pools" in text(supplier_page)

    anonymous = browser(app).get("/pools/new")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]


# ---------------------------------------------------------------- pledging


def test_pledge_confirm_step_holds_exactly_and_withdraw_releases(app):
    pool = make_pool(make_member())
    member = make_member(funds={"EUR": 100_000})
    client = signed_in(app, member)
    csrf = token(client, f"/pools/{pool.id}")

    preview = client.post(
        f"/pools/{pool.id}/pledge", data={"csrf_token": csrf, "quantity": "12", "max_unit_price": "7.50"}
    )
    assert preview.status_code == 200
    body = text(preview)
    assert "This will hold 90.00 EUR from your wallet (available 1,000.00 EUR)" in body
    assert 'name="confirm" value="1"' in preview.get_data(as_text=True)
    assert wallet_of(member.id)["held"] == 0  # nothing happens before the confirmation
    assert db.session.execute(select(func.count(Pledge.id))).scalar_one() == 0

    confirmed = client.post(
        f"/pools/{pool.id}/pledge",
        data={"csrf_token": csrf, "quantity": "12", "max_unit_price": "7.50", "confirm": "1"},
    )
    assert confirmed.status_code == 302
    assert wallet_of(member.id) == {"currency": "EUR", "balance": 100_000, "held": 9_000, "available": 91_000}
    pledge = db.session.execute(select(Pledge)).scalar_one()
    assert (pledge.quantity, pledge.max_unit_price, pledge.held_amount) == (12, 750, 9_000)
    page = client.get(f"/pools/{pool.id}")
    body = text(page)
    assert "Your pledges in this pool" in body and "12 of 100 units" in body
    assert "You pledged 12 panel at up to 7.50 EUR each: 90.00 EUR is held" in body

    withdrawn = client.post(f"/pools/{pool.id}/pledges/{pledge.id}/withdraw", data={"csrf_token": csrf})
    assert withdrawn.status_code == 302
    assert wallet_of(member.id) == {"currency": "EUR", "balance": 100_000, "held": 0, "available": 100_000}
    db.session.refresh(pledge)
    assert pledge.status == "withdrawn"
    assert "Pledge withdrawn: 90.00 EUR is available" in text(client.get(f"/pools/{pool.id}"))
    # Withdrawing twice: the service says no, the page says why, nothing breaks.
    again = client.post(
        f"/pools/{pool.id}/pledges/{pledge.id}/withdraw", data={"csrf_token": csrf}, follow_redirects=True
    )
    assert again.status_code == 200 and "already withdrawn" in text(again)


def test_pledge_with_insufficient_funds_shows_message_and_writes_nothing(app):
    pool = make_pool(make_member())
    member = make_member(funds={"EUR": 5_000})
    client = signed_in(app, member)
    csrf = token(client, f"/pools/{pool.id}")
    data = {"csrf_token": csrf, "quantity": "10", "max_unit_price": "7.50"}
    preview = client.post(f"/pools/{pool.id}/pledge", data=data)
    assert preview.status_code == 409
    message = field_error(preview.get_data(as_text=True), "max_unit_price")
    assert "Not enough money available: this pledge holds 75.00 EUR but you have 50.00 EUR available" in message
    assert 'name="confirm" value="1"' not in preview.get_data(as_text=True)
    forced = client.post(f"/pools/{pool.id}/pledge", data={**data, "confirm": "1"})
    assert forced.status_code == 409
    assert "Not enough money available" in field_error(forced.get_data(as_text=True), "max_unit_price")
    assert db.session.execute(select(func.count(Pledge.id))).scalar_one() == 0
    assert wallet_of(member.id) == {"currency": "EUR", "balance": 5_000, "held": 0, "available": 5_000}


def test_pledge_form_validation(app):
    pool = make_pool(make_member())
    client = signed_in(app, make_member(funds={"EUR": 5_000}))
    csrf = token(client, f"/pools/{pool.id}")
    response = client.post(
        f"/pools/{pool.id}/pledge", data={"csrf_token": csrf, "quantity": "0", "max_unit_price": "7.505"}
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "at least 1" in field_error(html, "quantity")
    assert "two decimal places" in field_error(html, "max_unit_price")
    response = client.post(
        f"/pools/{pool.id}/pledge", data={"csrf_token": csrf, "quantity": "1000000000", "max_unit_price": "1000000"}
    )
    assert response.status_code == 422
    assert "may not exceed" in field_error(response.get_data(as_text=True), "quantity")
    assert db.session.execute(select(func.count(Pledge.id))).scalar_one() == 0


def test_anonymous_reads_pool_page_but_cannot_act(app):
    client = browser(app)
    pool = make_pool(make_member())
    page = client.get(f"/pools/{pool.id}")
    assert page.status_code == 200
    body = text(page)
    assert "Sign in to pledge" in body
    assert f'action="/pools/{pool.id}/pledge"' not in page.get_data(as_text=True)
    csrf = csrf_token(client.get("/login").get_data(as_text=True))
    attempt = client.post(
        f"/pools/{pool.id}/pledge", data={"csrf_token": csrf, "quantity": "1", "max_unit_price": "1.00", "confirm": "1"}
    )
    assert attempt.status_code == 302 and "/login" in attempt.headers["Location"]
    assert db.session.execute(select(func.count(Pledge.id))).scalar_one() == 0


def test_my_pledges_page(app):
    member = make_member(funds={"EUR": 50_000})
    client = signed_in(app, member)
    empty = client.get("/pledges")
    assert empty.status_code == 200 and "You have not pledged yet" in text(empty)
    pool = make_pool(make_member(), title="Rainwater tanks")
    pools.place_pledge(pool.id, member.id, quantity=4, max_unit_price=12_345)
    page = client.get("/pledges")
    body = text(page)
    assert "Rainwater tanks" in body and "123.45 EUR" in body and "493.80 EUR" in body and "Active" in body
    assert f'href="/pools/{pool.id}"' in page.get_data(as_text=True)
    assert browser(app).get("/pledges").status_code == 302


# ---------------------------------------------------------------- bids


def test_supplier_bid_with_tier_editor(app):
    pool = make_pool(make_member())
    supplier = make_member("supplier")
    client = signed_in(app, supplier)
    page = client.get(f"/pools/{pool.id}")
    html = page.get_data(as_text=True)
    for i in range(5):
        assert f'<label class="visually-hidden" for="tier-{i}-min_volume">Tier {i + 1} minimum volume</label>' in html
        assert f'id="tier-{i}-unit_price"' in html
    assert 'id="tier-5-min_volume"' not in html
    assert f'href="/pools/{pool.id}?rows=8#bid"' in html
    assert 'id="tier-7-unit_price"' in client.get(f"/pools/{pool.id}?rows=8").get_data(as_text=True)
    assert 'id="tier-20-unit_price"' not in client.get(f"/pools/{pool.id}?rows=99").get_data(as_text=True)

    csrf = csrf_token(html)
    rows = [("50", "9.00"), ("", ""), ("100", "8.00"), ("150", "7")]
    response = client.post(f"/pools/{pool.id}/bid", data=bid_data(rows, "500", csrf))
    assert response.status_code == 302
    bid = db.session.execute(select(Bid)).scalar_one()
    assert [(t.min_volume, t.unit_price) for t in bid.tiers] == [(50, 900), (100, 800), (150, 700)]
    assert (bid.capacity, bid.supplier_id, bid.status) == (500, supplier.id, "active")
    page = client.get(f"/pools/{pool.id}")
    body = text(page)
    assert "Your current bid: 50+ → 9.00 EUR; 100+ → 8.00 EUR; 150+ → 7.00 EUR; capacity 500 units" in body
    assert 'value="8.00"' in page.get_data(as_text=True)  # the editor starts from the current bid

    # Replacing the bid keeps one active bid.
    client.post(f"/pools/{pool.id}/bid", data=bid_data([("40", "8.50")], "300", csrf))
    statuses = sorted(db.session.execute(select(Bid.status)).scalars())
    assert statuses == ["active", "replaced"]


def test_bid_errors_are_shown_next_to_the_right_inputs(app):
    pool = make_pool(make_member())
    supplier = make_member("supplier")
    client = signed_in(app, supplier)
    csrf = token(client, f"/pools/{pool.id}")

    # Row 1 is blank, so the service's tier 1 is the form's row 2.
    not_increasing = client.post(
        f"/pools/{pool.id}/bid", data=bid_data([("100", "9.00"), ("", ""), ("100", "8.00")], "500", csrf)
    )
    assert not_increasing.status_code == 422
    html = not_increasing.get_data(as_text=True)
    assert "greater than the previous tier's minimum volume" in field_error(html, "tier-2-min_volume")
    assert 'id="tier-0-min_volume"' in html and 'value="100"' in html

    rising = client.post(f"/pools/{pool.id}/bid", data=bid_data([("50", "7.00"), ("100", "8.00")], "500", csrf))
    assert rising.status_code == 422
    assert "not be higher than the previous tier's unit price" in field_error(
        rising.get_data(as_text=True), "tier-1-unit_price"
    )

    small = client.post(f"/pools/{pool.id}/bid", data=bid_data([("50", "7.00")], "20", csrf))
    assert small.status_code == 422
    assert "at least the first tier's minimum volume" in field_error(small.get_data(as_text=True), "capacity")

    typed = client.post(f"/pools/{pool.id}/bid", data=bid_data([("fifty", "7.001"), ("60", "")], "", csrf))
    assert typed.status_code == 422
    html = typed.get_data(as_text=True)
    assert "whole number" in field_error(html, "tier-0-min_volume")
    assert "two decimal places" in field_error(html, "tier-0-unit_price")
    assert "Enter a price" in field_error(html, "tier-1-unit_price")
    assert "Enter a number of units" in field_error(html, "capacity")

    blank = client.post(f"/pools/{pool.id}/bid", data=bid_data([], "10", csrf))
    assert blank.status_code == 422 and "Enter at least one tier" in text(blank)
    assert db.session.execute(select(func.count(Bid.id))).scalar_one() == 0


def test_non_supplier_cannot_bid(app):
    pool = make_pool(make_member())
    member = make_member()
    client = signed_in(app, member)
    html = client.get(f"/pools/{pool.id}").get_data(as_text=True)
    assert 'id="tier-editor"' not in html
    response = client.post(
        f"/pools/{pool.id}/bid", data=bid_data([("10", "1.00")], "100", csrf_token(html)), follow_redirects=True
    )
    assert response.status_code == 200
    assert "Only suppliers can bid on pools." in text(response)
    assert db.session.execute(select(func.count(Bid.id))).scalar_one() == 0


# ---------------------------------------------------------------- the pool page, closing and delivery


def test_pool_page_shows_progress_best_price_next_break_and_chart(app):
    organizer = make_member()
    member = make_member(funds={"EUR": 100_000})
    supplier = make_member("supplier", name="Secret Supplier Ltd")
    pool = make_pool(organizer)
    pools.place_pledge(pool.id, member.id, quantity=60, max_unit_price=900)
    pools.place_bid(
        pool.id,
        supplier.id,
        capacity=500,
        tiers=[{"min_volume": 50, "unit_price": 900}, {"min_volume": 100, "unit_price": 750}],
    )
    page = browser(app).get(f"/pools/{pool.id}")
    html = page.get_data(as_text=True)
    body = text(page)
    assert "60 of 100 units" in body
    assert '<progress class="progress" id="pool-progress" max="100" value="60"' in html
    assert "Best unit price at the current volume 9.00 EUR" in body
    assert "40 more units to reach the next price break of 7.50 EUR per unit." in body
    assert "Secret Supplier Ltd" not in body  # bidders are not named while the pool is open
    svg = re.search(r"<svg.*?</svg>", html, re.S).group(0)
    assert 'role="img"' in svg and "<title" in svg and "Best unit price by pooled volume" in svg
    assert 'data-volume="50" data-price="900"' in svg and 'data-volume="100" data-price="750"' in svg
    assert "Pooled now: 60 units, best price 9.00 EUR" in svg
    # The table alternative of the curve.
    assert "<caption>Best unit price by pooled volume</caption>" in html
    assert re.search(r"<td>100</td><td>500</td><td class=\"num\">7.50 EUR</td>", html)
    assert "Close now" not in body  # not the organizer
    organizer_page = text(signed_in(app, organizer).get(f"/pools/{pool.id}"))
    assert "Close now" in organizer_page and "Cancel pool" in organizer_page


def test_close_by_organizer_shows_award_and_every_bid(app):
    story = worked_example()
    pool = story["pool"]
    other = signed_in(app, story["a"])
    assert "Close now" not in text(other.get(f"/pools/{pool.id}"))
    refused = other.post(f"/pools/{pool.id}/close", data={"csrf_token": token(other)}, follow_redirects=True)
    assert "Only the pool's organizer or an operator can close it." in text(refused)
    assert db.session.get(Pool, pool.id).status == "open"

    client = signed_in(app, story["organizer"])
    page = client.get(f"/pools/{pool.id}")
    assert "170 of 100 units" in text(page)
    response = client.post(f"/pools/{pool.id}/close", data={"csrf_token": csrf_token(page.get_data(as_text=True))})
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/pools/{pool.id}#award")
    page = client.get(f"/pools/{pool.id}")
    html = page.get_data(as_text=True)
    body = text(page)
    assert "The pool was awarded: 120 panel at 7.50 EUR each." in body
    assert "Winner Yolanda Supplies" in body
    assert "Unit price 7.50 EUR" in body and "Volume 120 units" in body
    assert "Total 900.00 EUR" in body and "Platform fee (paid by the supplier) 9.00 EUR" in body

    table = re.search(r'<table class="data" id="bid-comparison">.*?</table>', html, re.S).group(0)
    assert "<caption>" in table and table.count('scope="col"') == 8
    rows = re.findall(r"<tr.*?</tr>", table.split("<tbody>")[1], re.S)
    assert len(rows) == 2
    x_row, y_row = (text_of(r) for r in rows)
    assert "Xavier Supplies" in x_row and "Could not clear" in x_row
    assert "50+ → 9.00 EUR; 100+ → 8.00 EUR; 150+ → 7.00 EUR" in x_row and "500" in x_row
    assert "at every volume it can serve its price is above what the last pledge in line accepts" in x_row
    assert "Yolanda Supplies" in y_row and "Winner" in y_row
    assert "100+ → 7.50 EUR" in y_row and "120" in y_row and "7.50 EUR" in y_row and "900.00 EUR" in y_row
    assert "Cleared 120 units at 7.50 for 3 pledges" in y_row
    assert f'href="/suppliers/{story["y"].id}"' in rows[1]
    assert "Close now" not in body

    # Anyone can compare, signed in or not.
    assert "Could not clear" in text(browser(app).get(f"/pools/{pool.id}"))
    # Closing twice: the message, not an error page.
    again = client.post(f"/pools/{pool.id}/close", data={"csrf_token": csrf_token(html)}, follow_redirects=True)
    assert again.status_code == 200 and "already awarded" in text(again)


def test_failed_pool_explains_every_bid(app):
    organizer = make_member()
    member = make_member(funds={"EUR": 10_000})
    supplier = make_member("supplier", name="Tiny Co")
    pool = make_pool(organizer)
    pools.place_pledge(pool.id, member.id, quantity=10, max_unit_price=500)
    pools.place_bid(pool.id, supplier.id, tiers=[{"min_volume": 1, "unit_price": 100}], capacity=1000)
    client = signed_in(app, organizer)
    response = client.post(f"/pools/{pool.id}/close", data={"csrf_token": token(client)}, follow_redirects=True)
    body = text(response)
    assert "no bid could clear it" in body
    assert "Could not clear only 10 units pledged, below the pool minimum of 100" in body
    assert wallet_of(member.id)["held"] == 0


def test_delivery_button_for_the_winner_only(app):
    story = worked_example()
    pool = story["pool"]
    pools.close_pool(pool.id, story["organizer"].id)
    winner = signed_in(app, story["y"])
    loser = signed_in(app, story["x"])
    member = signed_in(app, story["a"])
    assert "Confirm delivery" in text(winner.get(f"/pools/{pool.id}"))
    assert "Confirm delivery" not in text(loser.get(f"/pools/{pool.id}"))
    assert "Confirm delivery" not in text(member.get(f"/pools/{pool.id}"))

    refused = loser.post(f"/pools/{pool.id}/delivery", data={"csrf_token": token(loser)}, follow_redirects=True)
    assert "Only the winning supplier confirms delivery." in text(refused)
    assert db.session.get(Pool, pool.id).status == "awarded"

    done = winner.post(f"/pools/{pool.id}/delivery", data={"csrf_token": token(winner)}, follow_redirects=True)
    assert "Delivery confirmed. 891.00 EUR was paid to your wallet" in text(done)
    db.session.expire_all()
    assert db.session.get(Pool, pool.id).status == "delivered"
    assert wallet_of(story["y"].id)["balance"] == 89_100
    assert "Confirm delivery" not in text(winner.get(f"/pools/{pool.id}"))


def test_cancel_by_organizer_releases_every_hold(app):
    organizer = make_member()
    member = make_member(funds={"EUR": 10_000})
    pool = make_pool(organizer)
    pools.place_pledge(pool.id, member.id, quantity=10, max_unit_price=500)
    client = signed_in(app, organizer)
    response = client.post(f"/pools/{pool.id}/cancel", data={"csrf_token": token(client)}, follow_redirects=True)
    assert "The pool is cancelled." in text(response)
    assert wallet_of(member.id) == {"currency": "EUR", "balance": 10_000, "held": 0, "available": 10_000}
    assert db.session.get(Pool, pool.id).status == "cancelled"


def test_closed_pool_deadline_passed_takes_no_pledges(app):
    organizer = make_member()
    pool = make_pool(organizer, hours=1)
    from marketplace.operators.services import set_test_clock

    set_test_clock(make_member("operator").id, now() + timedelta(hours=2))
    member = make_member(funds={"EUR": 10_000})
    client = signed_in(app, member)
    page = client.get(f"/pools/{pool.id}")
    assert "deadline has passed" in text(page)
    assert "deadline passed, closing shortly" in text(page)
    response = client.post(
        f"/pools/{pool.id}/pledge",
        data={"csrf_token": token(client), "quantity": "1", "max_unit_price": "1.00", "confirm": "1"},
        follow_redirects=True,
    )
    assert "passed its deadline" in text(response)
    assert wallet_of(member.id)["held"] == 0


def test_unknown_pool_is_404(app):
    client = browser(app)
    assert client.get("/pools/999999").status_code == 404


def test_supplier_cannot_pledge(app):
    pool = make_pool(make_member())
    supplier = make_member("supplier", funds={"EUR": 10_000})
    client = signed_in(app, supplier)
    page = client.get(f"/pools/{pool.id}")
    assert f'action="/pools/{pool.id}/pledge"' not in page.get_data(as_text=True)
    response = client.post(
        f"/pools/{pool.id}/pledge",
        data={"csrf_token": csrf_token(page.get_data(as_text=True)), "quantity": "1", "max_unit_price": "1.00"},
        follow_redirects=True,
    )
    assert "Suppliers cannot pledge to pools" in text(response)
    assert db.session.execute(select(func.count(Pledge.id))).scalar_one() == 0
    assert wallet_of(supplier.id)["held"] == 0
