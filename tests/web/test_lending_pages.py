"""The lending pages through the test client, CSRF on: borrow (with its preview), the request book,
a request's page and thread, lend, loans (repay, pay off), portfolio, the operators' loan book."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from marketplace.clock import now
from marketplace.conversation.models import Comment
from marketplace.extensions import db
from marketplace.lending import amortization, market, repayments
from marketplace.lending.models import LendingOffer, Loan, LoanRequest
from marketplace.money import fee, format_amount
from marketplace.operators.jobs import run_due
from marketplace.wallet import services as wallet
from tests.helpers import assert_ledger_invariants, make_member, set_clock, wallet_of
from tests.web.test_pool_pages import browser, field_error, signed_in, text, token

T0 = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _frozen_clock(app):
    set_clock(T0)


def borrow_data(csrf, **overrides):
    data = {
        "csrf_token": csrf,
        "amount": "600.00",
        "currency": "EUR",
        "term_months": "12",
        "max_rate": "10",
        "purpose": "A second-hand car",
        "monthly_income": "2,500.00",
        "monthly_debt": "",
        "action": "request",
    }
    data.update(overrides)
    return data


def offer_data(csrf, **overrides):
    data = {"csrf_token": csrf, "amount": "400.00", "currency": "EUR", "min_rate": "7", "max_part": "300.00"}
    data.update(overrides)
    return data


def two_offers():
    """Two lenders: 300.00 each at most per loan, at 7 % and 8 %."""
    first = make_member(funds={"EUR": 100_000}, name="Lena Lender")
    second = make_member(funds={"EUR": 100_000}, name="Leo Lender")
    market.create_offer(first.id, amount=40_000, currency="EUR", min_rate_bps=700, max_part=30_000)
    market.create_offer(second.id, amount=40_000, currency="EUR", min_rate_bps=800, max_part=30_000)
    return first, second


def funded_loan(term_months=12):
    """A 600.00 loan funded by two lenders (300.00 at 7 %, 300.00 at 8 %)."""
    first, second = two_offers()
    borrower = make_member(funds={"EUR": 10_000}, name="Bea Borrower")
    loan_request = market.create_request(
        borrower.id, amount=60_000, currency="EUR", term_months=term_months, max_rate_bps=1000, purpose="Car"
    )
    assert loan_request.status == "funded"
    return db.session.get(Loan, loan_request.loan_id), borrower, first, second


def open_request(borrower=None, amount=50_000):
    borrower = borrower or make_member(name="Olly Open")
    return market.create_request(
        borrower.id, amount=amount, currency="EUR", term_months=12, max_rate_bps=900, purpose="Roof repair"
    )


def count(model) -> int:
    return db.session.execute(select(func.count()).select_from(model)).scalar_one()


# ---------------------------------------------------------------- access


PAGES = ["/borrow", "/loan-requests", "/lend", "/loans", "/portfolio", "/operator/loans"]


def test_every_page_needs_sign_in(app):
    loan, *_ = funded_loan()
    anonymous = browser(app)
    for path in [*PAGES, f"/loan-requests/{loan.request_id}", f"/loans/{loan.id}"]:
        response = anonymous.get(path)
        assert response.status_code == 302, path
        assert "/login" in response.headers["Location"], path
    preview = anonymous.get("/borrow/preview?amount=600&term_months=12&max_rate_bps=700")
    assert preview.status_code == 401 and preview.get_json()["reason"] == "unauthorized"


def test_suppliers_and_operators_may_not_borrow_or_lend(app):
    for role in ("supplier", "operator"):
        client = signed_in(app, make_member(role))
        for path in ("/borrow", "/lend", "/portfolio", "/loans"):
            response = client.get(path)
            assert response.status_code == 403, (role, path)
            assert "cannot borrow or lend" in text(response), (role, path)
        assert client.get("/loan-requests").status_code == 200  # anyone signed in may read the book
        response = client.post("/borrow", data=borrow_data(token(client, "/loan-requests")))
        assert response.status_code == 403
    assert count(LoanRequest) == 0 and count(LendingOffer) == 0


def test_member_pages_render_with_empty_states(app):
    client = signed_in(app, make_member())
    assert client.get("/borrow").status_code == 200
    book = text(client.get("/loan-requests"))
    assert "No open loan requests — lenders, your offers will match the next one automatically" in book
    lend = text(client.get("/lend"))
    assert "You have no lending offers yet" in lend
    assert "You have no loans" in text(client.get("/loans"))
    portfolio = client.get("/portfolio")
    assert portfolio.status_code == 200 and "You have not lent EUR yet" in text(portfolio)
    assert client.get("/operator/loans").status_code == 403


def test_nav_links_for_members_and_suppliers(app):
    html = signed_in(app, make_member()).get("/pools").get_data(as_text=True)
    for href, label in (
        ("/loan-requests", "Loan requests"),
        ("/borrow", "Borrow"),
        ("/lend", "Lend"),
        ("/portfolio", "Portfolio"),
    ):
        assert f'href="{href}">{label}</a>' in html, label
    supplier = signed_in(app, make_member("supplier")).get("/pools").get_data(as_text=True)
    assert 'href="/loan-requests">Loan requests</a>' in supplier
    assert 'href="/borrow"' not in supplier and 'href="/lend"' not in supplier
    current = signed_in(app, make_member()).get("/borrow").get_data(as_text=True)
    assert 'href="/borrow" aria-current="page">Borrow</a>' in current


# ---------------------------------------------------------------- borrowing


def test_borrow_creates_an_open_request(app):
    member = make_member(name="Bea Borrower")
    client = signed_in(app, member)
    page = client.get("/borrow")
    html = page.get_data(as_text=True)
    assert 'data-preview-url="/borrow/preview"' in html and 'aria-live="polite"' in html
    assert '<label for="amount">' in html and '<label for="max_rate">' in html
    assert 'src="/static/js/lending.js"' in html and "<script>" not in html
    response = client.post("/borrow", data=borrow_data(token(client, "/borrow")))
    assert response.status_code == 302
    loan_request = db.session.execute(select(LoanRequest)).scalar_one()
    assert response.headers["Location"].endswith(f"/loan-requests/{loan_request.id}")
    assert (loan_request.amount, loan_request.term_months, loan_request.max_rate_bps) == (60_000, 12, 1000)
    assert loan_request.monthly_income == 250_000 and loan_request.monthly_debt == 0
    assert loan_request.purpose == "A second-hand car" and loan_request.status == "open"
    page = client.get(response.headers["Location"])
    body = text(page)
    assert "Your loan request for 600.00 EUR is open" in body
    assert "0.00 EUR of 600.00 EUR funded (0 %)" in body and "expires in 14 days" in body


def test_borrow_is_funded_at_once_when_offers_exist(app):
    two_offers()
    member = make_member(funds={"EUR": 1_000})
    client = signed_in(app, member)
    response = client.post("/borrow", data=borrow_data(token(client, "/borrow")))
    assert response.status_code == 302
    loan = db.session.execute(select(Loan)).scalar_one()
    assert response.headers["Location"].endswith(f"/loans/{loan.id}")
    body = text(client.get(response.headers["Location"]))
    assert "Your loan is funded: 600.00 EUR from 2 lenders at 7.50 % on average" in body
    assert "594.00 EUR was paid into your wallet after the 6.00 EUR origination fee" in body
    assert wallet_of(member.id)["balance"] == 1_000 + 60_000 - fee(60_000, 100)


def test_borrow_errors_beside_fields_and_values_kept(app):
    client = signed_in(app, make_member())
    csrf = token(client, "/borrow")
    bad = client.post("/borrow", data=borrow_data(csrf, amount="12,34.5x", max_rate="abc", purpose="Keep me"))
    assert bad.status_code == 422
    html = bad.get_data(as_text=True)
    assert "Enter the amount as a number" in field_error(html, "amount")
    assert "Enter the rate as a number of percent" in field_error(html, "max_rate")
    assert 'value="12,34.5x"' in html and 'value="abc"' in html and "Keep me</textarea>" in html
    assert '<option selected value="12">' in html

    over = client.post("/borrow", data=borrow_data(csrf, max_rate="100.5"))
    assert over.status_code == 422 and "at most 100 %" in field_error(over.get_data(as_text=True), "max_rate")
    decimals = client.post("/borrow", data=borrow_data(csrf, max_rate="7.255"))
    assert "at most two decimals" in field_error(decimals.get_data(as_text=True), "max_rate")
    small = client.post("/borrow", data=borrow_data(csrf, amount="99.99"))
    assert "at least 100.00" in field_error(small.get_data(as_text=True), "amount")
    term = client.post("/borrow", data=borrow_data(csrf, term_months="7"))
    assert term.status_code == 422 and field_error(term.get_data(as_text=True), "term_months")
    income = client.post("/borrow", data=borrow_data(csrf, monthly_income="lots"))
    assert "monthly income" in field_error(income.get_data(as_text=True), "monthly_income")
    assert count(LoanRequest) == 0


def test_preview_button_works_without_javascript(app):
    client = signed_in(app, make_member())
    response = client.post("/borrow", data=borrow_data(token(client, "/borrow"), action="preview", max_rate="7.25"))
    assert response.status_code == 200
    body = text(response)
    payment = amortization.monthly_payment(60_000, 725, 12)
    assert f"Monthly payment {format_amount(payment)} EUR" in body
    assert "Origination fee (1.00 %) 6.00 EUR" in body and "Your risk grade:" in body
    assert 'value="7.25"' in response.get_data(as_text=True)
    assert count(LoanRequest) == 0


def test_unverified_member_is_told_to_get_verified(app):
    member = make_member(verified=False)
    client = signed_in(app, member)
    page = client.get("/borrow")
    assert page.status_code == 200 and "Verification needed before you borrow" in text(page)
    preview = client.get("/borrow/preview?amount=600&term_months=12&max_rate_bps=700")
    assert preview.status_code == 200 and preview.get_json()["grade"]["letter"] in "ABCDE"
    response = client.post("/borrow", data=borrow_data(token(client, "/borrow")))
    assert response.status_code == 403
    assert "Only verified members can borrow" in text(response)
    assert 'value="600.00"' in response.get_data(as_text=True)
    assert count(LoanRequest) == 0


def test_preview_json_is_the_servers_arithmetic(app):
    member = make_member()
    client = signed_in(app, member)
    response = client.get("/borrow/preview?amount=1,000.00&term_months=24&max_rate_bps=725&currency=EUR")
    assert response.status_code == 200
    body = response.get_json()
    assert body["monthly_payment"] == amortization.monthly_payment(100_000, 725, 24)
    _, rows = amortization.loan_schedule([(100_000, 725)], 24)
    assert body["total_interest"] == sum(r.interest for r in rows)
    assert body["fee"] == fee(100_000, 100) == 1_000
    assert body["apr_bps"] == amortization.apr_bps(99_000, [r.total for r in rows])
    assert body["apr_bps"] > 725
    grade = market.assess(member.id, amount=100_000, term_months=24, max_rate_bps=725, monthly_income=None)
    assert body["grade"]["letter"] == grade.letter and len(body["grade"]["reasons"]) == len(grade.reasons)
    assert "preview-monthly-payment" in body["html"] and body["summary"].startswith("At most")
    # The form's own field names work too (what lending.js sends).
    same = client.get("/borrow/preview?amount=1000&term_months=24&max_rate=7.25&monthly_income=3000").get_json()
    assert same["monthly_payment"] == body["monthly_payment"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("amount=abc&term_months=12&max_rate_bps=700", "amount"),
        ("amount=&term_months=12&max_rate_bps=700", "amount"),
        ("amount=1e999999999&term_months=12&max_rate_bps=700", "amount"),
        ("amount=50&term_months=12&max_rate_bps=700", "amount"),
        ("amount=600&term_months=7&max_rate_bps=700", "term_months"),
        ("amount=600&term_months=x&max_rate_bps=700", "term_months"),
        ("amount=600&max_rate_bps=700", "term_months"),
        ("amount=600&term_months=12&max_rate_bps=0", "max_rate_bps"),
        ("amount=600&term_months=12&max_rate_bps=10001", "max_rate_bps"),
        ("amount=600&term_months=12&max_rate_bps=-5", "max_rate_bps"),
        ("amount=600&term_months=12&max_rate_bps=99999999999999999999", "max_rate_bps"),
        ("amount=600&term_months=12&max_rate=101", "max_rate"),
        ("amount=600&term_months=12", "max_rate"),
        ("amount=600&term_months=12&max_rate_bps=700&currency=XYZ", "currency"),
        ("amount=600&term_months=12&max_rate_bps=700&monthly_income=-1", "monthly_income"),
    ],
)
def test_preview_json_rejects_bad_input(app, query, field):
    client = signed_in(app, make_member())
    response = client.get(f"/borrow/preview?{query}")
    assert response.status_code == 422, response.get_data(as_text=True)
    body = response.get_json()
    assert body["reason"] == "validation_error" and field in body["errors"], body
    assert body["message"]


# ---------------------------------------------------------------- the request book and a request's page


def test_request_book_lists_open_requests_with_progress(app):
    lender = make_member(funds={"EUR": 100_000})
    market.create_offer(lender.id, amount=20_000, currency="EUR", min_rate_bps=600, max_part=20_000)
    partly = open_request(amount=50_000)
    untouched = open_request(amount=80_000)
    gone = open_request(amount=30_000)
    set_clock(T0 + timedelta(hours=1))
    market.cancel_request(gone.id, gone.borrower_id)
    client = signed_in(app, make_member())
    page = client.get("/loan-requests")
    body, html = text(page), page.get_data(as_text=True)
    assert "200.00 EUR of 500.00 EUR funded (40 %)" in body and "300.00 EUR to go" in body
    assert "0.00 EUR of 800.00 EUR funded (0 %)" in body
    assert f'<progress class="progress" id="funding-{partly.id}" max="50000" value="20000"' in html
    assert f"request-{untouched.id}" in html and f"request-{gone.id}" not in html
    assert "Up to 9.00 % a year" in body and "expires in 13 days 23 hours" in body
    assert "Risk grade" in body and 'href="/borrow"' in html and 'href="/lend"' in html
    cancelled = client.get("/loan-requests?status=cancelled").get_data(as_text=True)
    assert f"request-{gone.id}" in cancelled and f"request-{partly.id}" not in cancelled
    assert client.get("/loan-requests?status=nonsense").status_code == 200


def test_request_page_parts_grade_and_anonymous_lenders(app):
    own = make_member(funds={"EUR": 100_000})
    other = make_member(funds={"EUR": 100_000}, name="Secret Lender")
    market.create_offer(other.id, amount=10_000, currency="EUR", min_rate_bps=500, max_part=10_000)
    market.create_offer(own.id, amount=15_000, currency="EUR", min_rate_bps=600, max_part=15_000)
    loan_request = open_request(amount=50_000)
    page = signed_in(app, own).get(f"/loan-requests/{loan_request.id}")
    assert page.status_code == 200
    body = text(page)
    assert "250.00 EUR of 500.00 EUR funded (50 %)" in body
    assert "Lender 1 100.00 EUR 5.00 % Reserved" in body and "You 150.00 EUR 6.00 % Reserved" in body
    assert "Secret Lender" not in body
    assert "Parts 2" in body and "Remaining 250.00 EUR" in body and "expires in 14 days" in body
    for reason in loan_request.grade_reasons:
        assert reason["text"] in body
    assert f"Risk grade {loan_request.grade}" in body
    assert "Cancel request" not in body  # only its borrower may cancel


def test_borrower_cancels_open_request_and_parts_go_back(app):
    lender = make_member(funds={"EUR": 100_000})
    market.create_offer(lender.id, amount=10_000, currency="EUR", min_rate_bps=500, max_part=10_000)
    borrower = make_member()
    loan_request = open_request(borrower, amount=50_000)
    client = signed_in(app, borrower)
    page = client.get(f"/loan-requests/{loan_request.id}")
    assert "Cancel request" in text(page)
    csrf = token(client, f"/loan-requests/{loan_request.id}")
    stranger = signed_in(app, make_member())
    refused = stranger.post(f"/loan-requests/{loan_request.id}/cancel", data={"csrf_token": token(stranger, "/loans")})
    assert refused.status_code == 403
    response = client.post(f"/loan-requests/{loan_request.id}/cancel", data={"csrf_token": csrf})
    assert response.status_code == 302
    body = text(client.get(response.headers["Location"]))
    assert "is cancelled" in body and "Outcome Cancelled" in body and "Cancel request" not in body
    db.session.expire_all()
    assert db.session.get(LoanRequest, loan_request.id).status == "cancelled"
    assert db.session.get(LendingOffer, 1).remaining == 10_000
    again = client.post(f"/loan-requests/{loan_request.id}/cancel", data={"csrf_token": csrf})
    assert "not open" in text(client.get(again.headers["Location"]))


def test_funded_request_links_to_the_loan_for_those_who_may_see_it(app):
    loan, borrower, first, _ = funded_loan()
    assert f'href="/loans/{loan.id}"' in signed_in(app, first).get(f"/loan-requests/{loan.request_id}").get_data(
        as_text=True
    )
    stranger = signed_in(app, make_member()).get(f"/loan-requests/{loan.request_id}")
    assert f'href="/loans/{loan.id}"' not in stranger.get_data(as_text=True)
    assert f"it became loan {loan.id}" in text(stranger)
    assert signed_in(app, borrower).get("/loan-requests/424242").status_code == 404


def test_comment_on_a_loan_request(app):
    loan_request = open_request()
    client = signed_in(app, make_member(name="Carla Commenter"))
    path = f"/loan-requests/{loan_request.id}"
    assert "No comments yet" in text(client.get(path))
    csrf = token(client, path)
    response = client.post(f"{path}/comments", data={"csrf_token": csrf, "body": "What is <b>the car</b>?"})
    assert response.status_code == 302 and "#comment-" in response.headers["Location"]
    page = client.get(path)
    html = page.get_data(as_text=True)
    assert "What is &lt;b&gt;the car&lt;/b&gt;?" in html and "Carla Commenter" in text(page)
    comment = db.session.execute(select(Comment)).scalar_one()
    assert (comment.target_type, comment.target_id) == ("loan_request", loan_request.id)
    empty = client.post(f"{path}/comments", data={"csrf_token": csrf, "body": "  "})
    assert empty.status_code == 422
    assert "Write something first." in field_error(empty.get_data(as_text=True), "comment-body")
    borrower = signed_in(app, loan_request.borrower)
    borrower.post(f"{path}/comments", data={"csrf_token": token(borrower, path), "body": "A 2019 hatchback."})
    assert '<span class="badge badge-info">Borrower</span>' in client.get(path).get_data(as_text=True)
    assert client.post("/loan-requests/424242/comments", data={"csrf_token": csrf, "body": "x"}).status_code == 404
    assert count(Comment) == 2


# ---------------------------------------------------------------- lending


def test_lend_form_creates_offer_holds_money_and_cancel_releases(app):
    lender = make_member(funds={"EUR": 100_000})
    client = signed_in(app, lender)
    page = client.get("/lend")
    assert "Available in your wallet: 1,000.00 EUR" in text(page)
    data = offer_data(token(client, "/lend"), terms=["12", "24"], grades=["A", "B"])
    response = client.post("/lend", data=data)
    assert response.status_code == 302 and response.headers["Location"].endswith("/lend#my-offers")
    offer = db.session.execute(select(LendingOffer)).scalar_one()
    assert (offer.amount, offer.min_rate_bps, offer.max_part) == (40_000, 700, 30_000)
    assert offer.terms == [12, 24] and offer.grades == ["A", "B"]
    assert wallet_of(lender.id)["held"] == 40_000 and wallet_of(lender.id)["available"] == 60_000
    body = text(client.get("/lend"))
    assert "Your offer of 400.00 EUR at 7.00 % or more is posted" in body
    assert "#1" in body and "12, 24 months" in body and "A, B" in body and "Open" in body

    stranger = signed_in(app, make_member())
    refused = stranger.post(f"/lend/offers/{offer.id}/cancel", data={"csrf_token": token(stranger, "/lend")})
    assert refused.status_code == 403 and wallet_of(lender.id)["held"] == 40_000

    response = client.post(f"/lend/offers/{offer.id}/cancel", data={"csrf_token": token(client, "/lend")})
    assert response.status_code == 302
    body = text(client.get("/lend"))
    assert "Offer cancelled: 400.00 EUR not yet lent is available in your wallet again" in body
    assert wallet_of(lender.id)["held"] == 0 and wallet_of(lender.id)["available"] == 100_000
    assert f'action="/lend/offers/{offer.id}/cancel"' not in client.get("/lend").get_data(as_text=True)


def test_offer_matching_an_open_request_says_so(app):
    loan_request = open_request(amount=50_000)
    lender = make_member(funds={"EUR": 100_000})
    client = signed_in(app, lender)
    response = client.post("/lend", data=offer_data(token(client, "/lend"), amount="600.00", max_part="500.00"))
    body = text(client.get(response.headers["Location"]))
    assert "500.00 EUR was matched with open loan requests at once" in body
    db.session.expire_all()
    assert db.session.get(LoanRequest, loan_request.id).status == "funded"
    assert wallet_of(lender.id)["held"] == 10_000


def test_lend_form_errors(app):
    lender = make_member(funds={"EUR": 10_000})
    client = signed_in(app, lender)
    csrf = token(client, "/lend")
    short = client.post("/lend", data=offer_data(csrf, amount="150.00", max_part="100.00"))
    assert short.status_code == 409
    html = short.get_data(as_text=True)
    assert "Not enough money available" in field_error(html, "amount") and 'value="150.00"' in html
    bad = client.post("/lend", data=offer_data(csrf, min_rate="7,5", max_part="5.00", grades=["F"]))
    assert bad.status_code == 422
    html = bad.get_data(as_text=True)
    assert "Enter the rate as a number" in field_error(html, "min_rate")
    assert "at least 10.00" in field_error(html, "max_part")
    assert "Choose from the listed options" in html
    zero = client.post("/lend", data=offer_data(csrf, amount="50.00", min_rate="0", max_part="50.00"))
    assert zero.status_code == 302  # a 0 % minimum is allowed for offers
    assert count(LendingOffer) == 1 and wallet_of(lender.id)["held"] == 5_000


# ---------------------------------------------------------------- loans


def test_loan_page_shows_summary_schedule_and_pay_form(app):
    loan, borrower, first, _ = funded_loan()
    client = signed_in(app, borrower)
    listing = text(client.get("/loans"))
    assert f"Loan {loan.id}" in listing and "600.00 EUR" in listing and "Active" in listing
    page = client.get(f"/loans/{loan.id}")
    assert page.status_code == 200
    body, html = text(page), page.get_data(as_text=True)
    assert "Interest rate 7.50 %" in body and f"APR {format_amount(loan.apr_bps)} %" in body
    assert "Origination fee 6.00 EUR" in body and "Outstanding principal 600.00 EUR" in body
    assert html.count('class="schedule-row') == 12
    first_row = loan.installments[0]
    assert f"<td>{first_row.due_date.isoformat()}</td>" in html and first_row.due_date.isoformat() == "2027-04-01"
    owed = first_row.total
    assert f"Next payment: {format_amount(owed)} EUR (installment 1) due on 2027-04-01" in body
    assert f'value="{format_amount(owed)}"' in html  # the pay form suggests the next installment
    assert "Pay off now" in body and "Lender 1" in body and "Lender 2" in body


def test_repay_form_pays_from_the_wallet(app):
    loan, borrower, first, second = funded_loan()
    client = signed_in(app, borrower)
    before = wallet_of(borrower.id)["balance"]
    lenders_before = wallet_of(first.id)["balance"] + wallet_of(second.id)["balance"]
    owed = loan.installments[0].total
    response = client.post(
        f"/loans/{loan.id}/repay",
        data={"csrf_token": token(client, f"/loans/{loan.id}"), "amount": format_amount(owed)},
    )
    assert response.status_code == 302 and response.headers["Location"].endswith("#schedule")
    page = client.get(response.headers["Location"])
    assert f"Thank you: you paid {format_amount(owed, 'EUR')}" in text(page)
    assert wallet_of(borrower.id)["balance"] == before - owed
    assert wallet_of(first.id)["balance"] + wallet_of(second.id)["balance"] == lenders_before + owed
    assert "✓ Paid" in text(page)
    db.session.expire_all()
    assert db.session.get(Loan, loan.id).installments[0].status == "paid"
    assert_ledger_invariants()


def test_repay_form_errors(app):
    loan, borrower, first, _ = funded_loan()
    client = signed_in(app, borrower)
    csrf = token(client, f"/loans/{loan.id}")
    bad = client.post(f"/loans/{loan.id}/repay", data={"csrf_token": csrf, "amount": "abc"})
    assert bad.status_code == 422 and "Enter the amount" in field_error(bad.get_data(as_text=True), "amount")
    too_much = client.post(f"/loans/{loan.id}/repay", data={"csrf_token": csrf, "amount": "5,000.00"})
    assert too_much.status_code == 422
    assert "still owed on this loan" in field_error(too_much.get_data(as_text=True), "amount")
    wallet.withdraw(borrower.id, wallet_of(borrower.id)["available"], "EUR")
    broke = client.post(f"/loans/{loan.id}/repay", data={"csrf_token": csrf, "amount": "10.00"})
    assert broke.status_code == 409
    assert "Not enough money available" in field_error(broke.get_data(as_text=True), "amount")
    lender = signed_in(app, first)
    refused = lender.post(f"/loans/{loan.id}/repay", data={"csrf_token": token(lender, "/lend"), "amount": "1.00"})
    assert refused.status_code == 403


def test_payoff_button_repays_everything(app):
    loan, borrower, *_ = funded_loan()
    set_clock(T0 + timedelta(days=10))
    client = signed_in(app, borrower)
    page = client.get(f"/loans/{loan.id}")
    quote = repayments.payoff_quote(db.session.get(Loan, loan.id))
    assert quote["amount"] > 60_000
    amount = quote["amount"]
    assert f"Pay-off amount {format_amount(amount)} EUR" in text(page)
    wallet.deposit(borrower.id, amount, "EUR")
    before = wallet_of(borrower.id)["balance"]
    response = client.post(f"/loans/{loan.id}/payoff", data={"csrf_token": token(client, f"/loans/{loan.id}")})
    assert response.status_code == 302
    page = client.get(response.headers["Location"])
    assert "Your loan is paid off" in text(page) and "Repaid" in text(page)
    assert "Pay off now" not in text(page) and f'action="/loans/{loan.id}/repay"' not in page.get_data(as_text=True)
    assert wallet_of(borrower.id)["balance"] == before - amount
    db.session.expire_all()
    assert db.session.get(Loan, loan.id).status == "repaid"


def test_payoff_without_enough_money_is_explained(app):
    loan, borrower, *_ = funded_loan()
    wallet.withdraw(borrower.id, wallet_of(borrower.id)["available"], "EUR")
    client = signed_in(app, borrower)
    response = client.post(f"/loans/{loan.id}/payoff", data={"csrf_token": token(client, f"/loans/{loan.id}")})
    assert response.status_code == 302
    assert "Not enough money available: paying off the loan needs" in text(client.get(response.headers["Location"]))
    db.session.expire_all()
    assert db.session.get(Loan, loan.id).status == "active"


def test_loan_page_access(app):
    loan, borrower, first, _ = funded_loan()
    stranger = signed_in(app, make_member()).get(f"/loans/{loan.id}")
    assert stranger.status_code == 403 and "text/html" in stranger.content_type
    assert "Only the borrower, its lenders and operators can see a loan" in text(stranger)
    lender_page = signed_in(app, first).get(f"/loans/{loan.id}")
    assert lender_page.status_code == 200
    body = text(lender_page)
    assert "You (part" in body and "Pay off now" not in body and "Lender 1" in body
    assert signed_in(app, make_member("operator")).get(f"/loans/{loan.id}").status_code == 200
    assert signed_in(app, borrower).get("/loans/424242").status_code == 404


def test_late_installment_has_a_visible_badge(app):
    loan, borrower, *_ = funded_loan()
    wallet.withdraw(borrower.id, wallet_of(borrower.id)["available"], "EUR")
    set_clock(T0 + timedelta(days=32))
    run_due()
    page = signed_in(app, borrower).get(f"/loans/{loan.id}")
    body = text(page)
    assert "⚠ Late" in body and "was due on 2027-04-01" in body
    assert 'class="schedule-row schedule-late' in page.get_data(as_text=True)


# ---------------------------------------------------------------- portfolio and the loan book


def test_portfolio_shows_figures_chart_and_parts(app):
    loan, borrower, first, _ = funded_loan()
    set_clock(T0 + timedelta(days=31))
    run_due()  # the first installment is collected
    client = signed_in(app, first)
    page = client.get("/portfolio")
    assert page.status_code == 200
    body, html = text(page), page.get_data(as_text=True)
    part = next(p for p in db.session.get(Loan, loan.id).parts if p.lender_id == first.id)
    assert "Invested 300.00 EUR" in body
    outstanding = part.outstanding_principal
    assert f"Outstanding principal {format_amount(outstanding)} EUR" in body
    interest = part.interest_received
    assert interest > 0 and f"Interest received {format_amount(interest)} EUR" in body
    assert "Defaulted principal 0.00 EUR" in body and "Annualized return" in body
    assert re.search(r"Annualized return \d+\.\d\d %", body)
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="cash-flow-chart"' in html and 'role="img"' in html
    assert "<title" in html and "<desc" in html and 'id="cash-flow-table"' in html
    assert "2027-03 300.00 EUR 0.00 EUR 0.00 EUR" in body  # lent out in March
    assert f'href="/loans/{loan.id}"' in html
    assert "Waiting in open offers 100.00 EUR" in body


def test_portfolio_currency_switch(app):
    funded_loan()
    lender = make_member(funds={"EUR": 100_000, "GBP": 100_000})
    market.create_offer(lender.id, amount=20_000, currency="EUR", min_rate_bps=100, max_part=20_000)
    market.create_offer(lender.id, amount=20_000, currency="GBP", min_rate_bps=100, max_part=20_000)
    for currency in ("EUR", "GBP"):
        borrower = make_member()
        market.create_request(borrower.id, amount=20_000, currency=currency, term_months=6, max_rate_bps=500)
    client = signed_in(app, lender)
    html = client.get("/portfolio").get_data(as_text=True)
    assert 'aria-label="Currency"' in html and 'href="/portfolio?currency=GBP"' in html
    gbp = text(client.get("/portfolio?currency=GBP"))
    assert "Invested 200.00 GBP" in gbp
    assert client.get("/portfolio?currency=NOPE").status_code == 200


def test_no_annualized_return_without_parts_is_a_dash(app):
    body = text(signed_in(app, make_member()).get("/portfolio"))
    assert "Annualized return — " in body


def test_operator_loan_book(app):
    loan, borrower, *_ = funded_loan()
    wallet.withdraw(borrower.id, wallet_of(borrower.id)["available"], "EUR")
    set_clock(T0 + timedelta(days=45))
    run_due()
    operator = make_member("operator")
    client = signed_in(app, operator)
    page = client.get("/operator/loans")
    assert page.status_code == 200
    body, html = text(page), page.get_data(as_text=True)
    assert "Active 1 600.00 EUR 600.00 EUR" in body
    assert re.search(r"1–30 days 1 600\.00 EUR Loan " + str(loan.id), body)
    assert f'href="/loans/{loan.id}"' in html and "Late installments: 1" in body
    assert 'href="/operator/loans" aria-current="page">Loan book</a>' in html
    assert 'href="/operator/loans"' in client.get("/ops").get_data(as_text=True)  # in the operators' nav
    for who in (borrower, make_member("supplier")):
        assert signed_in(app, who).get("/operator/loans").status_code == 403


# ---------------------------------------------------------------- CSRF


def test_every_form_refuses_a_post_without_csrf(app):
    loan, borrower, first, _ = funded_loan()
    lender = make_member(funds={"EUR": 50_000})
    offer = market.create_offer(lender.id, amount=10_000, currency="EUR", min_rate_bps=2000, max_part=10_000)
    loan_request = open_request(borrower, amount=50_000)  # 200.00 of it is funded: it stays open
    posts = [
        (borrower, "/borrow", borrow_data("")),
        (lender, "/lend", offer_data("")),
        (lender, f"/lend/offers/{offer.id}/cancel", {}),
        (borrower, f"/loan-requests/{loan_request.id}/cancel", {}),
        (borrower, f"/loan-requests/{loan_request.id}/comments", {"body": "hello"}),
        (borrower, f"/loans/{loan.id}/repay", {"amount": "10.00"}),
        (borrower, f"/loans/{loan.id}/payoff", {}),
    ]
    balance = wallet_of(borrower.id)["balance"]
    for member, path, data in posts:
        client = signed_in(app, member)
        data = {key: value for key, value in data.items() if key != "csrf_token"}
        response = client.post(path, data=data)
        assert response.status_code == 400, path
    db.session.expire_all()
    assert count(LoanRequest) == 2 and count(LendingOffer) == 3 and count(Comment) == 0
    assert db.session.get(LoanRequest, loan_request.id).status == "open"
    assert db.session.get(LendingOffer, offer.id).status == "open"
    assert wallet_of(borrower.id)["balance"] == balance
    assert now() == T0
