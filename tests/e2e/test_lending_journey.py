"""Journey 5: a member borrows from two others, pays an installment, and a lender sees it in the portfolio.

All through the pages, with what a person sees (labels, buttons, links):
the borrower asks on /borrow (with the live preview), a lender finds the
request in the book and posts an offer on /lend that funds half of it, a
second lender's offer funds the rest and the loan is paid out; the borrower
pays the first installment with the Pay form on /loans/<id>; the first
lender's /portfolio shows the interest and principal that came back.

Figures: 600.00 EUR over 12 months at most 10 %; Lena lends 300.00 at 7 %,
Leo 300.00 at 8 % (each at most 300.00 per loan). The loan's rate is their
average, 7.50 %; the 1 % origination fee is 6.00 EUR, so 594.00 EUR is paid
out. Each part is its lender's own annuity: the first month's interest is
300.00 × 7 % / 12 = 1.75 EUR for Lena and 300.00 × 8 % / 12 = 2.00 EUR for
Leo, 3.75 EUR in all.
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from marketplace.extensions import db
from marketplace.lending.models import Loan
from tests.helpers import wallet_of

from .conftest import flash_text, person, sign_in, snap

pytestmark = pytest.mark.e2e


def nav(page, name: str) -> None:
    """Follow a link of the main navigation, as a person would."""
    with page.expect_navigation():
        page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True).click()


def euros(text: str) -> Decimal:
    """``"1,234.56 EUR"`` -> ``Decimal("1234.56")`` (exact; never a float)."""
    match = re.fullmatch(r"\s*(-?[0-9,]+\.[0-9]{2}) EUR\s*", text)
    assert match, text
    return Decimal(match.group(1).replace(",", ""))


def post_offer(page, amount: str, min_rate: str, max_part: str) -> None:
    nav(page, "Lend")
    expect(page.get_by_role("heading", level=1)).to_have_text("Lend to other members")
    form = page.locator("#offer-form")
    form.get_by_label("Amount to lend").fill(amount)
    expect(form.get_by_role("combobox", name="Currency", exact=True)).to_have_value("EUR")
    form.get_by_label("Minimum interest rate (% a year)").fill(min_rate)
    form.get_by_label("Most per loan").fill(max_part)
    with page.expect_navigation():
        form.get_by_role("button", name="Post offer").click()


def portfolio_figures(page) -> dict[str, Decimal]:
    nav(page, "Portfolio")
    expect(page.get_by_role("heading", level=1)).to_have_text("My lending portfolio")
    return {
        name: euros(page.locator(f"#stat-{name}").inner_text())
        for name in ("invested", "outstanding", "interest", "principal", "waiting")
    }


def test_borrow_lend_fund_repay_and_portfolio(open_page):
    lena = person(funds={"EUR": 100_000}, name="Lena Lender")
    leo = person(funds={"EUR": 100_000}, name="Leo Lender")
    bea = person(verified=True, name="Bea Borrower")  # KYC-verified: only verified members borrow

    # The borrower asks for a loan; the live preview shows the worst case before she commits.
    borrower = open_page()
    sign_in(borrower, bea.email)
    nav(borrower, "Borrow")
    expect(borrower.get_by_role("heading", level=1)).to_have_text("Borrow from other members")
    expect(borrower.get_by_text("Verification needed before you borrow")).to_have_count(0)
    form = borrower.locator("#borrow-form")
    form.get_by_label("Amount", exact=True).fill("600.00")
    expect(form.get_by_role("combobox", name="Currency", exact=True)).to_have_value("EUR")
    form.get_by_role("combobox", name="Term", exact=True).select_option("12")
    form.get_by_label("Maximum interest rate (% a year)").fill("10")
    form.get_by_label("Purpose").fill("A cargo bike for deliveries.")
    form.get_by_label("Monthly income (optional)").fill("2,500.00")
    preview = borrower.locator("#preview-status")
    expect(preview).to_contain_text("At most 52.75 EUR a month for 12 months")  # 600.00 at 10 % over 12 months
    expect(borrower.locator("#preview-fee")).to_have_text("6.00 EUR")
    expect(borrower.locator("#preview-net")).to_have_text("594.00 EUR")
    snap(borrower, "01-borrow-preview")
    with borrower.expect_navigation():
        form.get_by_role("button", name="Ask for the loan").click()
    assert "Your loan request for 600.00 EUR is open: 0.00 EUR is offered so far." in flash_text(borrower)
    match = re.search(r"/loan-requests/(\d+)$", borrower.url)
    assert match, borrower.url
    request_url = match.group(0)
    expect(borrower.get_by_role("heading", level=1)).to_have_text("600.00 EUR over 12 months")
    expect(borrower.locator("#funded-amount")).to_have_text("0.00 EUR")
    expect(borrower.locator("#remaining-amount")).to_have_text("600.00 EUR")
    expect(borrower.locator(".request-purpose")).to_have_text("A cargo bike for deliveries.")
    snap(borrower, "02-request-open")

    # The first lender finds the request in the book, then posts an offer that funds half of it.
    first = open_page()
    sign_in(first, lena.email)
    nav(first, "Loan requests")
    card = first.locator(".request-card").filter(has_text="600.00 EUR over 12 months")
    expect(card).to_have_count(1)
    expect(card).to_contain_text("0.00 EUR of 600.00 EUR funded (0 %)")
    with first.expect_navigation():
        card.get_by_role("link", name="600.00 EUR over 12 months").click()
    assert first.url.endswith(request_url)
    expect(first.locator(".loan-meta")).to_contain_text("Asked by Bea Borrower")
    expect(first.locator(".loan-meta")).to_contain_text("Up to 10.00 % a year")
    before = portfolio_figures(first)
    assert before["invested"] == 0 and before["interest"] == 0
    post_offer(first, "400.00", "7", "300.00")
    assert (
        "Your offer of 400.00 EUR at 7.00 % or more is posted; the money is held in your wallet until it is lent "
        "out or you cancel. 300.00 EUR was matched with open loan requests at once."
    ) in flash_text(first)
    offer = first.locator("#offers-table tbody tr")
    expect(offer).to_have_count(1)
    expect(offer.locator("td").nth(0)).to_have_text("400.00 EUR")
    expect(offer.locator("td").nth(1)).to_have_text("100.00 EUR")  # not yet lent
    snap(first, "03-first-offer")

    borrower.reload()
    expect(borrower.locator("#funded-amount")).to_have_text("300.00 EUR")
    expect(borrower.locator("#remaining-amount")).to_have_text("300.00 EUR")
    expect(borrower.locator(".loan-progress-text")).to_contain_text("300.00 EUR of 600.00 EUR funded (50 %)")
    parts = borrower.locator("#request-parts tbody tr")
    expect(parts).to_have_count(1)
    expect(parts.first).to_contain_text("Lender 1")
    expect(parts.first.locator("td").nth(1)).to_have_text("7.00 %")
    snap(borrower, "04-request-half-funded")

    # The second lender's offer funds the rest: the loan is made and paid out.
    second = open_page()
    sign_in(second, leo.email)
    post_offer(second, "400.00", "8", "300.00")
    assert "300.00 EUR was matched with open loan requests at once." in flash_text(second)
    snap(second, "05-second-offer-funds-the-loan")

    borrower.reload()
    expect(borrower.locator(".loan-meta .badge").first).to_have_text("Funded")
    expect(borrower.locator("#funded-amount")).to_have_text("600.00 EUR")
    expect(borrower.locator("#request-parts tbody tr")).to_have_count(2)
    with borrower.expect_navigation():
        borrower.get_by_role("link", name=re.compile(r"^See loan \d+$")).click()
    match = re.search(r"/loans/(\d+)$", borrower.url)
    assert match, borrower.url
    loan_id = int(match.group(1))
    expect(borrower.get_by_role("heading", level=1)).to_have_text(f"Loan {loan_id}: 600.00 EUR over 12 months")
    expect(borrower.locator("#loan-rate")).to_have_text("7.50 %")
    expect(borrower.locator("#loan-fee")).to_have_text("6.00 EUR")
    expect(borrower.locator("#outstanding-principal")).to_have_text("600.00 EUR")
    expect(borrower.locator("#available")).to_have_text("594.00 EUR")  # paid out, less the fee
    expect(borrower.locator("#schedule-table tbody tr")).to_have_count(12)
    snap(borrower, "06-loan-funded")

    # The borrower pays the first installment with the Pay form (it suggests the installment's amount).
    pay = borrower.locator("#pay")
    amount = pay.get_by_label("Amount to pay")
    owed = amount.input_value()
    assert re.fullmatch(r"[0-9]+\.[0-9]{2}", owed), owed
    expect(borrower.locator("#next-payment")).to_contain_text(f"Next payment: {owed} EUR (installment 1)")
    with borrower.expect_navigation():
        pay.get_by_role("button", name="Pay EUR").click()
    principal = Decimal(owed) - Decimal("3.75")
    assert (
        f"Thank you: you paid {owed} EUR (3.75 EUR interest, {principal} EUR principal), shared among your lenders."
    ) in flash_text(borrower)
    first_row = borrower.locator("#schedule-table tbody tr").first
    expect(first_row.locator("td").last).to_contain_text("Paid")
    expect(first_row.locator("td").nth(4)).to_have_text(f"{owed} EUR")  # the paid column
    expect(borrower.locator("#outstanding-principal")).to_have_text(f"{Decimal('600.00') - principal} EUR")
    expect(borrower.locator("#available")).to_have_text(f"{Decimal('594.00') - Decimal(owed)} EUR")
    snap(borrower, "07-installment-paid")

    # The first lender's portfolio: the interest and the principal that came back.
    after = portfolio_figures(first)
    assert after["invested"] == Decimal("300.00")
    assert after["interest"] == Decimal("1.75"), after  # 300.00 x 7 % / 12
    assert after["principal"] > 0 and after["outstanding"] == Decimal("300.00") - after["principal"], after
    assert after["waiting"] == Decimal("100.00"), after
    row = first.locator("#portfolio-parts tbody tr")
    expect(row).to_have_count(1)
    expect(row.get_by_role("link")).to_have_text(f"Loan {loan_id}")
    cells = row.locator("td")
    expect(cells.nth(0)).to_have_text("300.00 EUR")
    expect(cells.nth(1)).to_have_text("7.00 %")
    expect(cells.nth(2)).to_have_text(f"{after['outstanding']} EUR")
    expect(cells.nth(3)).to_have_text(f"{after['principal']} EUR")
    expect(cells.nth(4)).to_have_text("1.75 EUR")
    expect(cells.nth(6)).to_have_text("Active")
    snap(first, "08-portfolio")

    # From the portfolio the lender opens the loan and sees its own part, the other lender's anonymous.
    with first.expect_navigation():
        row.get_by_role("link", name=f"Loan {loan_id}").click()
    own = first.locator("#loan-parts tr.own-row")
    expect(own).to_contain_text("You")
    expect(own.locator("td").nth(4)).to_have_text("1.75 EUR")
    other = first.locator("#loan-parts tbody tr").filter(has_text="Lender 1")
    expect(other.locator("td").nth(4)).to_contain_text("not shown")
    snap(first, "09-loan-as-lender")

    # The money agrees with the pages: the lenders got the payment, to the cent.
    loan = db.session.get(Loan, loan_id)
    received = {part.lender_id: (part.principal_received, part.interest_received) for part in loan.parts}
    db.session.remove()
    assert received[lena.id][1] == 175 and received[leo.id][1] == 200
    assert sum(p + i for p, i in received.values()) == int(Decimal(owed) * 100)
    assert wallet_of(lena.id)["balance"] == 100_000 - 30_000 + sum(received[lena.id])
    assert wallet_of(bea.id)["balance"] == 60_000 - 600 - int(Decimal(owed) * 100)
