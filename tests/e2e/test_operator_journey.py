"""Journey 4: an operator checks the ledger, approves a member's KYC, finds it in the audit log and
exports the journal as CSV."""

from __future__ import annotations

import csv
import re

import pytest
from playwright.sync_api import expect

from marketplace.accounts import services as accounts
from marketplace.extensions import db

from .conftest import flash_text, person, sign_in, snap

pytestmark = pytest.mark.e2e


def test_operator_trial_balance_kyc_audit_and_journal_csv(open_page):
    operator = person("operator", name="Oscar Operator")
    funded = person(funds={"EUR": 12_345, "GBP": 500})  # some ledger activity to balance
    waiting = person(verified=False, name="Ursula Unverified")
    other = person(verified=False, name="Walter Waiting")

    page = open_page()
    sign_in(page, operator.email)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Operators").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Operators' dashboard")
    expect(page.locator("#stat-kyc-waiting")).to_have_text("2")

    page.get_by_role("navigation", name="Operators").get_by_role("link", name="Trial balance").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Trial balance")
    expect(page.locator(".ops-verdict .badge")).to_have_text("Balanced")
    totals = page.locator("#totals tbody tr")
    expect(totals).to_have_count(2)
    eur = totals.filter(has_text="EUR")
    expect(eur.locator("td").nth(0)).to_have_text("123.45 EUR")  # debits
    expect(eur.locator("td").nth(1)).to_have_text("123.45 EUR")  # credits
    expect(eur.locator("td").nth(2)).to_have_text("0.00 EUR")
    expect(eur.locator("td").nth(3)).to_have_text("Balanced")
    expect(page.get_by_text("NOT balanced")).to_have_count(0)
    snap(page, "01-trial-balance")

    page.get_by_role("navigation", name="Operators").get_by_role("link", name="KYC review").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("KYC review")
    expect(page.get_by_label("KYC status", exact=True)).to_have_value("unverified")
    row = page.locator(f"#member-{waiting.id}")
    expect(row).to_contain_text("Ursula Unverified")
    expect(row).to_contain_text("unverified")
    expect(page.locator(f"#member-{other.id}")).to_be_visible()
    with page.expect_navigation():
        row.get_by_role("button", name="Approve").click()
    assert f"Ursula Unverified ({waiting.email}) is now verified." in flash_text(page)
    expect(page.locator(f"#member-{waiting.id}")).to_have_count(0)  # no longer waiting
    expect(page.locator(f"#member-{other.id}")).to_be_visible()
    snap(page, "02-kyc-approved")

    page.get_by_label("KYC status", exact=True).select_option("verified")
    with page.expect_navigation():
        page.get_by_role("button", name="Show").click()
    approved = page.locator(f"#member-{waiting.id}")
    expect(approved).to_contain_text("verified")
    expect(approved.get_by_role("button", name="Approve")).to_have_count(0)

    assert accounts.get_member(waiting.id).kyc_status == "verified"
    assert accounts.get_member(other.id).kyc_status == "unverified"
    db.session.remove()

    page.get_by_role("navigation", name="Operators").get_by_role("link", name="Audit log").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Audit log")
    entries = page.locator("table.ops-audit tbody tr")
    expect(entries).to_have_count(1)
    entry = entries.first
    cells = entry.locator("td")
    expect(cells.nth(1)).to_have_text(f"Oscar Operator <{operator.email}>")
    expect(cells.nth(2)).to_have_text("kyc.set_status")
    expect(cells.nth(3)).to_have_text(f"member {waiting.id}")
    expect(cells.nth(4)).to_contain_text("from")
    expect(cells.nth(4).locator("dd")).to_have_text(["unverified", "verified"])
    expect(cells.nth(5)).to_have_text("127.0.0.1")

    # The action link filters the log to that action.
    cells.nth(2).get_by_role("link").click()
    expect(page.get_by_label("Action", exact=True)).to_have_value("kyc.set_status")
    expect(page.locator("table.ops-audit tbody tr")).to_have_count(1)
    snap(page, "03-audit-log")

    # The journal, and its export as CSV: one row per posting, debits equal credits per currency.
    page.get_by_role("navigation", name="Operators").get_by_role("link", name="Journal").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Journal")
    expect(page.locator("#journal-count")).to_have_text("2 entries match.")
    expect(page.locator("tbody.ops-entry")).to_have_count(2)
    snap(page, "04-journal")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export CSV").click()
    download = download_info.value
    assert re.fullmatch(r"journal-\d{8}T\d{6}Z\.csv", download.suggested_filename), download.suggested_filename
    saved = page.artifact("journal.csv")  # kept next to the screenshots
    download.save_as(saved)
    with saved.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["entry_id", "created_at", "kind", "memo", "account", "currency", "debit", "credit"]
    postings = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    assert len(postings) == 4, postings  # two deposits, two postings each
    for currency, amount in (("EUR", 12_345), ("GBP", 500)):
        mine = [p for p in postings if p["currency"] == currency]
        assert sum(int(p["debit"]) for p in mine) == sum(int(p["credit"]) for p in mine) == amount, mine
    assert any(p["account"] == f"member:{funded.id}:wallet:EUR" for p in postings), postings

    # The export itself is audited.
    page.get_by_role("navigation", name="Operators").get_by_role("link", name="Audit log").click()
    newest = page.locator("table.ops-audit tbody tr").first.locator("td")
    expect(newest.nth(2)).to_have_text("ledger.export_csv")
    snap(page, "05-audit-export")
