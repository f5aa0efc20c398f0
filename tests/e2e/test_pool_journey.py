"""Journey 2: a buying pool from the organizer's form to the supplier's review, all in the browser.

A newcomer signs up on the sign-up page and deposits through the wallet page;
the organizer starts the pool; three members pledge (each through the
confirm step); a supplier bids through the tier editor; the organizer closes
the pool; every member sees the bid comparison and what they were charged;
the supplier confirms delivery and is paid; a member reviews the supplier.

Figures: 10 + 15 + 5 = 30 crates clear at the 20+ tier's 9.50 EUR, 285.00
EUR in all; the 1 % platform fee (2.85 EUR) comes off the supplier's pay.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from marketplace.extensions import db
from marketplace.pools import services as pools
from tests.helpers import wallet_of

from .conftest import flash_text, person, sign_in, snap

pytestmark = pytest.mark.e2e

FUNDS = {"EUR": 100_000}  # 1,000.00 EUR each


def pledge(page, pool_url: str, quantity: str, price: str, held: str, available: str) -> None:
    """Pledge through the form, check the confirm step's sentence, confirm."""
    page.goto(pool_url)
    form = page.locator("#pledge")
    form.get_by_label("Quantity").fill(quantity)
    form.get_by_label("Maximum unit price").fill(price)
    with page.expect_navigation():
        form.get_by_role("button", name="Review pledge").click()
    confirm = page.locator("#confirm-text")
    expect(confirm).to_be_visible()
    expect(confirm).to_contain_text(f"This will hold {held} from your wallet (available {available})")
    expect(confirm).to_contain_text(f"{quantity} units at up to {price} EUR each")
    with page.expect_navigation():
        page.get_by_role("button", name=f"Confirm: hold {held}").click()
    assert "is held in your wallet until the pool closes" in flash_text(page)
    mine = page.locator("#my-pledges tbody tr")
    expect(mine).to_have_count(1)
    expect(mine.first.locator("td").nth(3)).to_have_text(held)


def sign_up_and_deposit(page, email: str, name: str, password: str, amount: str) -> None:
    """A visitor creates an account on the sign-up page, then deposits through the wallet page (sandbox)."""
    page.goto("/")
    with page.expect_navigation():
        page.get_by_role("link", name="Sign up").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Create your account")
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Display name").fill(name)
    page.get_by_label(re.compile(r"^Password")).fill(password)
    page.get_by_label("Repeat the password").fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Create account").click()
    assert f"Welcome, {name}! Your account is ready." in flash_text(page)
    with page.expect_navigation():
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Wallet").click()
    deposit = page.locator("form[action='/wallet/deposit']")
    deposit.get_by_label("Amount").fill(amount)
    deposit.get_by_label("Currency").select_option("EUR")
    with page.expect_navigation():
        deposit.get_by_role("button", name="Deposit").click()
    assert f"Deposited {amount} EUR. It is in your wallet now." in flash_text(page)
    expect(page.locator("#balance-EUR")).to_have_text(f"{amount} EUR")


def sees_outcome(page, pool_url: str, charged: str) -> None:
    """A member's view of the closed pool: the comparison table and the amount charged for the pledge."""
    page.goto(pool_url)
    expect(page.locator("#bid-comparison tbody tr")).to_have_count(2)
    expect(page.locator("#bid-comparison tr.winner-row th")).to_have_text("Crates Unlimited")
    mine = page.locator("#my-pledges tbody tr")
    expect(mine).to_have_count(1)
    expect(mine.first.locator("td").nth(4)).to_have_text("Filled")
    expect(mine.first.locator("td").nth(5)).to_have_text(charged)


def wallet_shows(page, balance: str, held: str) -> None:
    page.goto("/wallet")
    expect(page.locator("#balance-EUR")).to_have_text(balance)
    expect(page.locator("#held-EUR")).to_have_text(held)


def test_pool_from_creation_to_review(open_page):
    organizer = person(funds=FUNDS, name="Olga Organizer")
    alice = person(funds=FUNDS, name="Alice Buyer")
    bob = person(funds=FUNDS, name="Bob Buyer")
    supplier = person("supplier", name="Crates Unlimited")
    rival = person("supplier", name="Pricey Crates")

    # A newcomer signs up and puts money in the wallet (sandbox payments).
    carl_page = open_page()
    sign_up_and_deposit(carl_page, "carl@example.test", "Carl Newcomer", "a long pledge passphrase", "200.00")
    snap(carl_page, "01-signed-up-and-deposited")

    # The organizer starts the pool through the form.
    org = open_page()
    sign_in(org, organizer.email)
    org.goto("/pools")
    org.get_by_role("link", name="Start a pool").first.click()
    expect(org.get_by_role("heading", level=1)).to_have_text("Start a buying pool")
    org.get_by_label("Title").fill("Apple crates for the food co-op")
    org.get_by_label("Description").fill("Wooden crates, delivered to the co-op's shed.")
    org.get_by_label("Unit").fill("crate")
    org.get_by_label("Currency").select_option("EUR")
    org.get_by_label("Minimum volume").fill("20")
    expect(org.get_by_label("Deadline (UTC)")).not_to_have_value("")  # prefilled a week ahead
    with org.expect_navigation():
        org.get_by_role("button", name="Open the pool").click()
    assert "Your pool “Apple crates for the food co-op” is open." in flash_text(org)
    match = re.search(r"/pools/(\d+)$", org.url)
    assert match, org.url
    pool_id = int(match.group(1))
    pool_url = f"/pools/{pool_id}"
    expect(org.get_by_role("heading", level=1)).to_have_text("Apple crates for the food co-op")
    expect(org.locator(".pool-meta")).to_contain_text("Organised by Olga Organizer")
    snap(org, "02-pool-created")

    # Three members pledge, each through the confirm step; the hold is quantity x max price.
    alice_page = open_page()
    sign_in(alice_page, alice.email)
    pledge(alice_page, pool_url, "10", "12.00", held="120.00 EUR", available="1,000.00 EUR")
    wallet_shows(alice_page, balance="1,000.00 EUR", held="120.00 EUR")
    expect(alice_page.locator("#available-EUR")).to_have_text("880.00 EUR")

    bob_page = open_page()
    sign_in(bob_page, bob.email)
    pledge(bob_page, pool_url, "15", "10.00", held="150.00 EUR", available="1,000.00 EUR")
    wallet_shows(bob_page, balance="1,000.00 EUR", held="150.00 EUR")

    pledge(carl_page, pool_url, "5", "10.00", held="50.00 EUR", available="200.00 EUR")
    snap(carl_page, "03-third-pledge")

    # A supplier bids two tiers through the tier editor.
    sup = open_page()
    sign_in(sup, supplier.email)
    sup.goto(pool_url)
    expect(sup.locator("#pledge")).to_have_count(0)  # suppliers bid, they do not pledge
    editor = sup.locator("#bid")
    editor.get_by_label("Tier 1 minimum volume", exact=True).fill("10")
    editor.get_by_label("Tier 1 unit price", exact=True).fill("11.00")
    editor.get_by_label("Tier 2 minimum volume", exact=True).fill("20")
    editor.get_by_label("Tier 2 unit price", exact=True).fill("9.50")
    editor.get_by_label("Capacity (units)").fill("100")
    with sup.expect_navigation():
        editor.get_by_role("button", name="Place bid").click()
    assert "Your bid with 2 price tiers is in." in flash_text(sup)
    expect(sup.locator("#own-bid")).to_contain_text("10+ → 11.00 EUR; 20+ → 9.50 EUR; capacity 100 units")
    snap(sup, "04-supplier-bid")

    # A rival bids more expensively (through the services) so the comparison has two rows.
    pools.place_bid(pool_id, rival.id, tiers=[{"min_volume": 1, "unit_price": 1150}], capacity=1000)
    db.session.remove()

    # While open, the best price at the pledged volume (30) shows, without naming suppliers.
    org.goto(pool_url)
    expect(org.locator("#pledge-count")).to_have_text("3")
    expect(org.locator("#best-price")).to_have_text("9.50 EUR")
    expect(org.locator("main")).not_to_contain_text("Crates Unlimited")

    # The organizer closes the pool now (the page asks for a confirmation first).
    with org.expect_navigation():
        org.get_by_role("button", name="Close now").click()
    assert [d for d in org.watch.dialogs if "Close this pool now?" in d[1]], org.watch.dialogs
    assert "The pool was awarded: 30 crate at 9.50 EUR each." in flash_text(org)
    expect(org.locator("#award-winner")).to_have_text("Crates Unlimited")
    expect(org.locator("#award-price")).to_have_text("9.50 EUR")
    expect(org.locator("#award-volume")).to_have_text("30 units")
    expect(org.locator("#award-total")).to_have_text("285.00 EUR")
    expect(org.locator("#award-fee")).to_have_text("2.85 EUR")
    rows = org.locator("#bid-comparison tbody tr")
    expect(rows).to_have_count(2)
    expect(org.locator("#bid-comparison caption")).to_have_text("All 2 bids on this pool and their clearing outcome")
    winner = org.locator("#bid-comparison tr.winner-row")
    expect(winner).to_have_count(1)
    expect(winner.locator("th")).to_have_text("Crates Unlimited")
    expect(winner).to_contain_text("10+ → 11.00 EUR; 20+ → 9.50 EUR")
    expect(winner).to_contain_text("Winner")
    loser = rows.filter(has_text="Pricey Crates")
    expect(loser).to_contain_text("1+ → 11.50 EUR")
    expect(loser).to_contain_text("Could not clear")
    expect(org.locator("#manage")).to_have_count(0)  # nothing left for the organizer to do
    snap(org, "05-closed-and-awarded")

    # Every member sees the comparison and what they were charged: the clearing price times the quantity.
    sees_outcome(alice_page, pool_url, charged="95.00 EUR")
    sees_outcome(bob_page, pool_url, charged="142.50 EUR")
    sees_outcome(carl_page, pool_url, charged="47.50 EUR")
    snap(carl_page, "06-member-sees-outcome")
    with carl_page.expect_navigation():
        carl_page.get_by_role("navigation", name="Main").get_by_role("link", name="My pledges").click()
    row = carl_page.locator("#my-pledges tbody tr")
    expect(row).to_have_count(1)
    expect(row.first).to_contain_text("Apple crates for the food co-op")
    expect(row.first.locator("td").last).to_have_text("47.50 EUR")
    snap(carl_page, "07-my-pledges")

    # Every pledge was filled at the clearing price; the rest of each hold is released.
    wallet_shows(alice_page, balance="905.00 EUR", held="0.00 EUR")
    wallet_shows(bob_page, balance="857.50 EUR", held="0.00 EUR")
    wallet_shows(carl_page, balance="152.50 EUR", held="0.00 EUR")

    # The winning supplier confirms delivery and is paid the total less the fee.
    sup.goto(pool_url)
    with sup.expect_navigation():
        sup.get_by_role("button", name="Confirm delivery").click()
    assert "Delivery confirmed. 282.15 EUR was paid to your wallet (after the platform fee)." in flash_text(sup)
    expect(sup.locator("#award")).to_contain_text("Delivered")
    snap(sup, "08-delivery-confirmed")
    assert wallet_of(supplier.id, "EUR")["balance"] == 28215
    db.session.remove()

    # A filled member reviews the supplier; it shows on the pool and on the supplier's profile.
    alice_page.goto(pool_url)
    review = alice_page.locator("#review-form")
    expect(review).to_contain_text("Review Crates Unlimited")
    review.get_by_label("5 – excellent").check()
    review.get_by_label("Your review").fill("Sturdy crates, delivered a day early.")
    with alice_page.expect_navigation():
        review.get_by_role("button", name="Post review").click()
    assert "your review is posted" in flash_text(alice_page)
    expect(alice_page.locator("#review-form")).to_have_count(0)  # once per pool
    expect(alice_page.locator("#reviews .review")).to_contain_text("Sturdy crates, delivered a day early.")
    snap(alice_page, "09-reviewed")

    alice_page.get_by_role("link", name="Crates Unlimited").first.click()
    expect(alice_page.get_by_role("heading", level=1)).to_have_text("Crates Unlimited")
    expect(alice_page.locator("#pools-won")).to_have_text("1")
    expect(alice_page.locator("#pools-delivered")).to_have_text("1")
    expect(alice_page.locator("#rating")).to_contain_text("5")
    expect(alice_page.locator("#rating")).to_contain_text("1 review")
    five = alice_page.locator("#rating-histogram tbody tr").filter(has_text="5 stars")
    expect(five.locator("td").first).to_have_text("1")
    profile_review = alice_page.locator(".review-list .review")
    expect(profile_review).to_have_count(1)
    expect(profile_review).to_contain_text("Alice Buyer")
    expect(profile_review).to_contain_text("Apple crates for the food co-op")
    expect(profile_review).to_contain_text("5/5")
    expect(profile_review.get_by_role("img", name="5 out of 5 stars")).to_be_visible()
    expect(profile_review).to_contain_text("Sturdy crates, delivered a day early.")
    snap(alice_page, "10-supplier-profile")
