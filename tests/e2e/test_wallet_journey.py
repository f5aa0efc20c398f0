"""Journey 1: a visitor signs up, signs in again and uses the wallet."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from marketplace.accounts import services as accounts
from marketplace.extensions import db
from tests.helpers import wallet_of

from .conftest import flash_text, sign_in, sign_out, snap

pytestmark = pytest.mark.e2e

EMAIL = "wanda@example.test"
PASSWORD = "a long wallet passphrase"


def test_sign_up_sign_in_deposit_and_withdraw(page):
    page.goto("/")
    page.get_by_role("link", name="Sign up").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Create your account")

    page.get_by_label("E-mail address").fill(EMAIL)
    page.get_by_label("Display name").fill("Wanda Wallet")
    page.get_by_label(re.compile(r"^Password")).fill(PASSWORD)
    page.get_by_label("Repeat the password").fill(PASSWORD)
    expect(page.get_by_label("A member: I join buying pools, borrow or lend")).to_be_checked()
    with page.expect_navigation():
        page.get_by_role("button", name="Create account").click()
    assert "Welcome, Wanda Wallet! Your account is ready." in flash_text(page)
    snap(page, "01-signed-up")

    member = accounts.find_by_email(EMAIL)
    assert member is not None and member.role == "member" and member.kyc_status == "unverified"
    member_id = member.id
    db.session.remove()

    sign_out(page)
    sign_in(page, EMAIL, PASSWORD)
    assert "Welcome back, Wanda Wallet." in flash_text(page)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Wallet").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Wallet")
    expect(page.get_by_text("Your wallet is empty.")).to_be_visible()

    deposit = page.locator("form[action='/wallet/deposit']")
    deposit.get_by_label("Amount").fill("250.00")
    expect(deposit.get_by_label("Currency")).to_have_value("EUR")
    with page.expect_navigation():
        deposit.get_by_role("button", name="Deposit").click()
    assert "Deposited 250.00 EUR. It is in your wallet now." in flash_text(page)
    expect(page.locator("#balance-EUR")).to_have_text("250.00 EUR")
    expect(page.locator("#held-EUR")).to_have_text("0.00 EUR")
    expect(page.locator("#available-EUR")).to_have_text("250.00 EUR")
    snap(page, "02-deposited")

    history = page.locator("section[aria-labelledby='history-title'] tbody tr")
    expect(history).to_have_count(1)
    cells = history.first.locator("td")
    expect(cells.nth(1)).to_have_text("Deposit")
    expect(cells.nth(3)).to_have_text("+250.00 EUR")
    expect(cells.nth(4)).to_have_text("250.00 EUR")

    withdraw = page.locator("form[action='/wallet/withdraw']")
    withdraw.get_by_label("Amount").fill("250.01")
    with page.expect_navigation() as navigation:
        withdraw.get_by_role("button", name="Withdraw").click()
    assert navigation.value.status == 409
    error = withdraw.locator(".field-error")
    expect(error).to_contain_text("Not enough money available: you can withdraw at most 250.00 EUR.")
    expect(withdraw.get_by_label("Amount")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#balance-EUR")).to_have_text("250.00 EUR")
    expect(history).to_have_count(1)
    snap(page, "03-withdrawal-refused")

    # A withdrawal within the available money goes through and is listed newest first.
    withdraw.get_by_label("Amount").fill("40.50")
    with page.expect_navigation():
        withdraw.get_by_role("button", name="Withdraw").click()
    assert "Withdrew 40.50 EUR." in flash_text(page)
    expect(page.locator("#balance-EUR")).to_have_text("209.50 EUR")
    expect(history).to_have_count(2)
    newest = history.first.locator("td")
    expect(newest.nth(3)).to_have_text("\u221240.50 EUR")
    expect(newest.nth(4)).to_have_text("209.50 EUR")
    expect(history.nth(1).locator("td").nth(4)).to_have_text("250.00 EUR")
    snap(page, "04-withdrawn")

    assert wallet_of(member_id, "EUR") == {"currency": "EUR", "balance": 20950, "held": 0, "available": 20950}
