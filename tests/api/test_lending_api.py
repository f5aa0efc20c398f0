"""Person-to-person lending through the JSON API, held to shared/API.md to the cent.

Runs on SQLite and (with TEST_DATABASE_URL) on PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from marketplace.extensions import db
from marketplace.ledger.models import Account, Hold
from marketplace.lending import amortization
from marketplace.lending.models import LendingOffer, LoanPart, LoanRequest
from marketplace.money import fee
from tests.helpers import assert_error, assert_ledger_invariants, make_member, set_clock, token_for, wallet_of

REQUEST_KEYS = {
    "id",
    "borrower_id",
    "amount",
    "currency",
    "term_months",
    "max_rate_bps",
    "purpose",
    "grade",
    "status",
    "funded_amount",
    "loan_id",
}
OFFER_KEYS = {
    "id",
    "lender_id",
    "amount",
    "remaining",
    "currency",
    "min_rate_bps",
    "max_part",
    "terms",
    "grades",
    "status",
}
LOAN_KEYS = {
    "id",
    "request_id",
    "borrower_id",
    "amount",
    "currency",
    "term_months",
    "rate_bps",
    "apr_bps",
    "status",
    "disbursed_at",
    "outstanding_principal",
    "parts",
    "schedule",
}
PART_KEYS = {"id", "lender_id", "amount", "rate_bps", "outstanding_principal"}
ROW_KEYS = {"number", "due_date", "principal", "interest", "total", "paid", "status"}
T0 = datetime(2027, 1, 15, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _frozen_clock(app):
    set_clock(T0)


def request_body(**overrides) -> dict:
    body = {"amount": 100_000, "currency": "EUR", "term_months": 12, "max_rate_bps": 1200, "purpose": "New bicycle"}
    body.update(overrides)
    return body


def offer_body(**overrides) -> dict:
    body = {"amount": 60_000, "currency": "EUR", "min_rate_bps": 800, "max_part": 60_000, "terms": [], "grades": []}
    body.update(overrides)
    return body


@pytest.fixture
def borrower():
    member = make_member(funds={"EUR": 50_000})
    return member, token_for(member)


@pytest.fixture
def lenders():
    out = []
    for _ in range(3):
        member = make_member(funds={"EUR": 500_000})
        out.append((member, token_for(member)))
    return out


def test_request_is_graded_and_listed(api, borrower):
    member, token = borrower
    response = api.post("/api/v1/loan-requests", json=request_body(), token=token)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert set(body) >= REQUEST_KEYS
    assert body["status"] == "open" and body["funded_amount"] == 0 and body["loan_id"] is None
    assert body["grade"] in "ABCDE" and len(body["grade"]) == 1
    assert {r["factor"] for r in body["grade_reasons"]} == {"kyc", "membership", "history", "affordability"}
    listed = api.get("/api/v1/loan-requests", query={"status": "open"}, token=token).get_json()
    assert [r["id"] for r in listed] == [body["id"]]
    assert api.get(f"/api/v1/loan-requests/{body['id']}", token=token).get_json()["amount"] == 100_000
    assert api.get("/api/v1/loan-requests", query={"status": "funded"}, token=token).get_json() == []


def test_unverified_members_and_suppliers_cannot_borrow(api):
    unverified = make_member(verified=False)
    assert_error(
        api.post("/api/v1/loan-requests", json=request_body(), token=token_for(unverified)), 403, "not_verified"
    )
    supplier = make_member("supplier")
    assert_error(api.post("/api/v1/loan-requests", json=request_body(), token=token_for(supplier)), 403)
    assert db.session.execute(select(func.count(LoanRequest.id))).scalar_one() == 0


def test_offer_holds_its_amount_and_funds_a_request_pay_as_bid(api, borrower, lenders):
    (b, b_token), (l1, t1), (l2, t2), _ = borrower, *lenders
    o1 = api.post("/api/v1/lending-offers", json=offer_body(min_rate_bps=700, max_part=40_000), token=t1)
    assert o1.status_code == 201, o1.get_json()
    assert set(o1.get_json()) >= OFFER_KEYS
    assert wallet_of(l1.id)["held"] == 60_000
    o2 = api.post("/api/v1/lending-offers", json=offer_body(min_rate_bps=900, amount=80_000, max_part=80_000), token=t2)
    assert o2.status_code == 201

    created = api.post("/api/v1/loan-requests", json=request_body(), token=b_token).get_json()
    assert created["status"] == "funded" and created["funded_amount"] == 100_000
    loan = api.get(f"/api/v1/loans/{created['loan_id']}", token=b_token).get_json()
    assert set(loan) >= LOAN_KEYS
    assert loan["status"] == "active" and loan["request_id"] == created["id"]
    # Cheapest first, each capped by max_part, each at its own rate.
    parts = sorted((p["lender_id"], p["amount"], p["rate_bps"]) for p in loan["parts"])
    assert parts == sorted([(l1.id, 40_000, 700), (l2.id, 60_000, 900)])
    assert all(set(p) >= PART_KEYS for p in loan["parts"])
    assert loan["rate_bps"] == 820  # (40,000 x 700 + 60,000 x 900) / 100,000
    # Schedule: 12 rows, each the sum of the parts' own annuities; due monthly from disbursement.
    schedule = loan["schedule"]
    assert len(schedule) == 12 and all(set(r) >= ROW_KEYS for r in schedule)
    part_rows = [amortization.part_schedule(40_000, 700, 12), amortization.part_schedule(60_000, 900, 12)]
    for k, row in enumerate(schedule):
        assert row["principal"] == part_rows[0][k].principal + part_rows[1][k].principal
        assert row["interest"] == part_rows[0][k].interest + part_rows[1][k].interest
        assert row["total"] == row["principal"] + row["interest"]
        assert row["status"] == "due" and row["paid"] == 0
    assert sum(r["principal"] for r in schedule) == 100_000
    assert schedule[0]["due_date"] == "2027-02-15" and schedule[11]["due_date"] == "2028-01-15"
    # Money: lenders' holds captured, borrower credited less the origination fee.
    charge = fee(100_000, 100)
    assert wallet_of(b.id) == {
        "currency": "EUR",
        "balance": 50_000 + 100_000 - charge,
        "held": 0,
        "available": 150_000 - charge,
    }
    assert wallet_of(l1.id)["balance"] == 500_000 - 40_000 and wallet_of(l1.id)["held"] == 20_000
    assert wallet_of(l2.id)["balance"] == 500_000 - 60_000 and wallet_of(l2.id)["held"] == 20_000
    fees = db.session.execute(select(Account).where(Account.code == "platform:fees:EUR")).scalar_one()
    assert fees.balance == charge
    assert loan["apr_bps"] > loan["rate_bps"]  # the fee makes credit dearer
    offers = {o["id"]: o for o in api.get("/api/v1/lending-offers", token=t1).get_json()}
    assert offers[o1.get_json()["id"]]["remaining"] == 20_000
    assert_ledger_invariants()


def test_a_lender_never_funds_its_own_request(api, lenders):
    (lender, token), (other, other_token), _ = lenders
    db.session.get(type(lender), lender.id).kyc_status = "verified"
    db.session.commit()
    api.post("/api/v1/lending-offers", json=offer_body(amount=200_000, max_part=200_000), token=token)
    created = api.post("/api/v1/loan-requests", json=request_body(), token=token).get_json()
    assert created["status"] == "open" and created["funded_amount"] == 0
    api.post("/api/v1/lending-offers", json=offer_body(amount=100_000, max_part=100_000), token=other_token)
    again = api.get(f"/api/v1/loan-requests/{created['id']}", token=token).get_json()
    assert again["status"] == "funded"
    parts = db.session.execute(select(LoanPart).where(LoanPart.request_id == created["id"])).scalars().all()
    assert {p.lender_id for p in parts} == {other.id}
    assert_ledger_invariants()


def test_offer_filters_terms_grades_and_rate(api, borrower, lenders):
    (_, b_token), (l1, t1), (l2, t2), (l3, t3) = borrower, *lenders
    api.post("/api/v1/lending-offers", json=offer_body(terms=[24, 36]), token=t1)
    api.post("/api/v1/lending-offers", json=offer_body(grades=["Z"][:0] + ["A"]), token=t2)
    api.post("/api/v1/lending-offers", json=offer_body(min_rate_bps=1300), token=t3)
    created = api.post("/api/v1/loan-requests", json=request_body(), token=b_token).get_json()
    funded_by = {p.lender_id for p in db.session.execute(select(LoanPart)).scalars()}
    if created["grade"] != "A":
        assert l2.id not in funded_by
    assert l1.id not in funded_by and l3.id not in funded_by
    assert_ledger_invariants()


def test_cancel_request_returns_parts_to_their_offers(api, borrower, lenders):
    (_, b_token), (l1, t1), _, _ = borrower, *lenders
    offer = api.post("/api/v1/lending-offers", json=offer_body(amount=30_000, max_part=30_000), token=t1).get_json()
    created = api.post("/api/v1/loan-requests", json=request_body(), token=b_token).get_json()
    assert created["funded_amount"] == 30_000 and created["status"] == "open"
    assert api.get(f"/api/v1/lending-offers/{offer['id']}", token=t1).get_json()["remaining"] == 0
    # Only the borrower may cancel.
    assert_error(api.post(f"/api/v1/loan-requests/{created['id']}/cancel", token=t1), 403)
    cancelled = api.post(f"/api/v1/loan-requests/{created['id']}/cancel", token=b_token)
    assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "cancelled"
    assert cancelled.get_json()["funded_amount"] == 0
    back = api.get(f"/api/v1/lending-offers/{offer['id']}", token=t1).get_json()
    assert back["remaining"] == 30_000 and back["status"] == "open"
    assert wallet_of(l1.id)["held"] == 30_000
    assert_error(api.post(f"/api/v1/loan-requests/{created['id']}/cancel", token=b_token), 409, "invalid_state")
    held = db.session.execute(select(func.sum(Hold.amount)).where(Hold.status == "held")).scalar_one()
    assert held == 30_000
    assert_ledger_invariants()


def test_cancel_offer_releases_what_is_unmatched(api, lenders):
    (l1, t1), (l2, t2), _ = lenders
    offer = api.post("/api/v1/lending-offers", json=offer_body(), token=t1).get_json()
    assert_error(api.delete(f"/api/v1/lending-offers/{offer['id']}", token=t2), 403)
    assert_error(api.get(f"/api/v1/lending-offers/{offer['id']}", token=t2), 403)
    done = api.delete(f"/api/v1/lending-offers/{offer['id']}", token=t1)
    assert done.status_code == 200 and done.get_json()["status"] == "cancelled"
    assert wallet_of(l1.id) == {"currency": "EUR", "balance": 500_000, "held": 0, "available": 500_000}
    assert_error(api.delete(f"/api/v1/lending-offers/{offer['id']}", token=t1), 409, "invalid_state")
    assert_error(api.delete("/api/v1/lending-offers/999999", token=t1), 404)
    assert_ledger_invariants()


def test_expiry_returns_parts_and_a_part_of_a_cancelled_offer_goes_to_the_wallet(api, app, borrower, lenders):
    (_, b_token), (l1, t1), (l2, t2), _ = borrower, *lenders
    o1 = api.post("/api/v1/lending-offers", json=offer_body(amount=30_000, max_part=30_000), token=t1).get_json()
    o2 = api.post("/api/v1/lending-offers", json=offer_body(amount=20_000, max_part=20_000), token=t2).get_json()
    created = api.post("/api/v1/loan-requests", json=request_body(), token=b_token).get_json()
    assert created["funded_amount"] == 50_000
    api.delete(f"/api/v1/lending-offers/{o2['id']}", token=t2)
    assert wallet_of(l2.id)["held"] == 20_000  # its part stays reserved for the request
    set_clock(T0 + timedelta(days=app.config["LOAN_FUNDING_DAYS"], seconds=1))
    from marketplace.operators.jobs import run_due

    report = run_due()
    assert report["jobs"]["expire_loan_requests"] == {"expired": 1, "parts_returned": 2}
    assert api.get(f"/api/v1/loan-requests/{created['id']}", token=b_token).get_json()["status"] == "expired"
    assert api.get(f"/api/v1/lending-offers/{o1['id']}", token=t1).get_json()["remaining"] == 30_000
    assert wallet_of(l1.id)["held"] == 30_000
    assert wallet_of(l2.id) == {"currency": "EUR", "balance": 500_000, "held": 0, "available": 500_000}
    assert_ledger_invariants()


def test_offer_needs_available_funds(api):
    poor = make_member(funds={"EUR": 5_000})
    response = api.post("/api/v1/lending-offers", json=offer_body(amount=10_000), token=token_for(poor))
    assert_error(response, 409, "insufficient_funds")
    assert db.session.execute(select(func.count(LendingOffer.id))).scalar_one() == 0
    assert wallet_of(poor.id)["held"] == 0


def _funded_loan(api, borrower, lenders, **request):
    (_, b_token), (_, t1), (_, t2), _ = borrower, *lenders
    api.post("/api/v1/lending-offers", json=offer_body(min_rate_bps=700, max_part=40_000), token=t1)
    api.post("/api/v1/lending-offers", json=offer_body(min_rate_bps=900, amount=80_000, max_part=80_000), token=t2)
    created = api.post("/api/v1/loan-requests", json=request_body(**request), token=b_token).get_json()
    return api.get(f"/api/v1/loans/{created['loan_id']}", token=b_token).get_json()


def test_who_may_see_a_loan(api, borrower, lenders):
    loan = _funded_loan(api, borrower, lenders)
    (_, b_token), (_, t1), _, (_, t3) = borrower, *lenders
    assert api.get(f"/api/v1/loans/{loan['id']}", token=t1).status_code == 200  # a lender
    assert_error(api.get(f"/api/v1/loans/{loan['id']}", token=t3), 403)  # a stranger
    operator = make_member("operator")
    assert api.get(f"/api/v1/loans/{loan['id']}", token=token_for(operator)).status_code == 200
    assert_error(api.get("/api/v1/loans/999999", token=b_token), 404)
    # Only the borrower repays or pays off.
    assert_error(api.post(f"/api/v1/loans/{loan['id']}/repayments", json={"amount": 100}, token=t1), 403)
    assert_error(api.post(f"/api/v1/loans/{loan['id']}/payoff", token=t1), 403)
    assert_error(api.get(f"/api/v1/loans/{loan['id']}/payoff", token=t1), 403)


def test_manual_repayment_is_shared_to_the_cent(api, borrower, lenders):
    loan = _funded_loan(api, borrower, lenders)
    (_, b_token), (l1, _), (l2, _), _ = borrower, *lenders
    before = {lender.id: wallet_of(lender.id)["balance"] for lender in (l1, l2)}
    first = loan["schedule"][0]
    response = api.post(f"/api/v1/loans/{loan['id']}/repayments", json={"amount": first["interest"] + 1}, token=b_token)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["interest"] == first["interest"] and body["principal"] == 1
    received = {lender.id: wallet_of(lender.id)["balance"] - before[lender.id] for lender in (l1, l2)}
    assert sum(received.values()) == first["interest"] + 1
    row = body["loan"]["schedule"][0]
    assert row["paid"] == first["interest"] + 1 and row["status"] == "due"
    rest = first["total"] - row["paid"]
    body = api.post(f"/api/v1/loans/{loan['id']}/repayments", json={"amount": rest}, token=b_token).get_json()
    assert body["loan"]["schedule"][0]["status"] == "paid"
    assert body["loan"]["outstanding_principal"] == 100_000 - first["principal"]
    assert_ledger_invariants()


def test_repayment_above_what_is_owed_and_payoff_of_a_repaid_loan(api, borrower, lenders):
    loan = _funded_loan(api, borrower, lenders)
    _, b_token = borrower
    owed = sum(r["total"] for r in loan["schedule"])
    assert_error(
        api.post(f"/api/v1/loans/{loan['id']}/repayments", json={"amount": owed + 1}, token=b_token),
        422,
        field="amount",
    )
    quote = api.get(f"/api/v1/loans/{loan['id']}/payoff", token=b_token).get_json()
    assert quote["principal"] == 100_000 and quote["interest"] == 0  # disbursed today: nothing accrued yet
    paid = api.post(f"/api/v1/loans/{loan['id']}/payoff", token=b_token)
    assert paid.status_code == 201
    assert paid.get_json()["amount"] == 100_000 and paid.get_json()["loan"]["status"] == "repaid"
    assert_error(api.post(f"/api/v1/loans/{loan['id']}/payoff", token=b_token), 409, "invalid_state")
    assert_error(api.post(f"/api/v1/loans/{loan['id']}/repayments", json={"amount": 1}, token=b_token), 409)
    assert_ledger_invariants()


def test_portfolio(api, borrower, lenders):
    loan = _funded_loan(api, borrower, lenders)
    (_, b_token), (l1, t1), _, (_, t3) = borrower, *lenders
    api.post(f"/api/v1/loans/{loan['id']}/repayments", json={"amount": loan["schedule"][0]["total"]}, token=b_token)
    body = api.get("/api/v1/portfolio", token=t1).get_json()
    assert body["currency"] == "EUR" and body["invested"] == 40_000
    mine = [p for p in loan["parts"] if p["lender_id"] == l1.id][0]
    row = amortization.part_schedule(40_000, 700, 12)[0]
    assert body["interest_received"] == row.interest
    assert body["outstanding_principal"] == 40_000 - row.principal
    assert body["defaulted_principal"] == 0
    assert [p["id"] for p in body["parts"]] == [mine["id"]]
    assert body["currencies"]["EUR"]["invested"] == 40_000
    empty = api.get("/api/v1/portfolio", token=t3).get_json()
    assert empty["invested"] == 0 and empty["parts"] == [] and empty["annualized_return_bps"] is None


def test_loan_request_comments(api, borrower, lenders):
    (_, b_token), (_, t1), *_ = borrower, *lenders
    created = api.post("/api/v1/loan-requests", json=request_body(), token=b_token).get_json()
    posted = api.post(f"/api/v1/loan-requests/{created['id']}/comments", json={"body": "What is it for? <b>"}, token=t1)
    assert posted.status_code == 201 and posted.get_json()["body"] == "What is it for? <b>"
    listed = api.get(f"/api/v1/loan-requests/{created['id']}/comments", token=b_token).get_json()
    assert [c["body"] for c in listed] == ["What is it for? <b>"]
    assert_error(api.post("/api/v1/loan-requests/999999/comments", json={"body": "hi"}, token=t1), 404)


def test_idempotent_offer(api, lenders):
    (l1, t1), *_ = lenders
    headers = {"Idempotency-Key": "offer-1"}
    first = api.post("/api/v1/lending-offers", json=offer_body(), token=t1, headers=headers)
    again = api.post("/api/v1/lending-offers", json=offer_body(), token=t1, headers=headers)
    assert first.status_code == again.status_code == 201 and first.get_json() == again.get_json()
    assert wallet_of(l1.id)["held"] == 60_000
    other = api.post("/api/v1/lending-offers", json=offer_body(amount=1_000), token=t1, headers=headers)
    assert_error(other, 409, "idempotency_key_reused")


# ---------------------------------------------------------------- bad input

BAD_REQUESTS = [
    ("term_months", 2),
    ("term_months", 61),
    ("term_months", 0),
    ("term_months", -12),
    ("term_months", 12.5),
    ("term_months", "12"),
    ("term_months", None),
    ("max_rate_bps", 10_001),
    ("max_rate_bps", -1),
    ("max_rate_bps", 0),
    ("max_rate_bps", 1e3),
    ("max_rate_bps", True),
    ("amount", 9_999),
    ("amount", 100_000_001),
    ("amount", 0),
    ("amount", -10_000),
    ("amount", 10**13),
    ("amount", 50_000.5),
    ("amount", "50000"),
    ("currency", "XYZ"),
    ("currency", "eur"),
    ("currency", 978),
    ("currency", "€"),
    ("purpose", "x" * 10_000),
    ("purpose", 5),
    ("monthly_income", -1),
    ("monthly_income", "lots"),
]


@pytest.mark.parametrize(("field", "value"), BAD_REQUESTS)
def test_bad_loan_requests_are_422_and_write_nothing(api, borrower, field, value):
    _, token = borrower
    response = api.post("/api/v1/loan-requests", json=request_body(**{field: value}), token=token)
    assert_error(response, 422, field=field)
    assert db.session.execute(select(func.count(LoanRequest.id))).scalar_one() == 0


@pytest.mark.parametrize("field", ["amount", "currency", "term_months", "max_rate_bps"])
def test_missing_request_fields(api, borrower, field):
    _, token = borrower
    body = request_body()
    del body[field]
    assert_error(api.post("/api/v1/loan-requests", json=body, token=token), 422, field=field)


BAD_OFFERS = [
    ("terms", [2]),
    ("terms", [61]),
    ("terms", ["12"]),
    ("terms", [12, 12]),
    ("terms", "12"),
    ("terms", [None]),
    ("grades", ["F"]),
    ("grades", [""]),
    ("grades", ["a"]),
    ("grades", ["A", "A"]),
    ("grades", "A"),
    ("grades", [1]),
    ("max_part", 999),
    ("max_part", 0),
    ("max_part", -5),
    ("max_part", 1500.5),
    ("min_rate_bps", 10_001),
    ("min_rate_bps", -1),
    ("min_rate_bps", "700"),
    ("amount", 0),
    ("amount", -1),
    ("amount", 10**12 + 1),
    ("amount", 1.5),
    ("currency", "ABC"),
]


@pytest.mark.parametrize(("field", "value"), BAD_OFFERS)
def test_bad_offers_are_422_and_hold_nothing(api, lenders, field, value):
    (lender, token), *_ = lenders
    response = api.post("/api/v1/lending-offers", json=offer_body(**{field: value}), token=token)
    body = assert_error(response, 422)
    assert any(key == field or key.startswith(field + ".") for key in body["errors"]), body
    assert db.session.execute(select(func.count(LendingOffer.id))).scalar_one() == 0
    assert wallet_of(lender.id)["held"] == 0


@pytest.mark.parametrize("amount", [0, -1, 1.5, "10", None, 10**13])
def test_bad_repayment_amounts(api, borrower, lenders, amount):
    loan = _funded_loan(api, borrower, lenders)
    _, b_token = borrower
    response = api.post(f"/api/v1/loans/{loan['id']}/repayments", json={"amount": amount}, token=b_token)
    assert_error(response, 422, field="amount")


def test_malformed_json_and_no_token(api, borrower):
    _, token = borrower
    response = api.request("POST", "/api/v1/loan-requests", data="{not json", token=token)
    assert_error(response, 400)
    assert_error(api.post("/api/v1/loan-requests", json=request_body()), 401)
    assert_error(api.get("/api/v1/portfolio"), 401)


def test_portfolio_defaults_to_the_lenders_own_currency(api):
    lender = make_member(funds={"GBP": 300_000})
    borrower = make_member()
    token = token_for(lender)
    api.post("/api/v1/lending-offers", json=offer_body(currency="GBP", amount=100_000, max_part=100_000), token=token)
    created = api.post(
        "/api/v1/loan-requests", json=request_body(currency="GBP", amount=50_000), token=token_for(borrower)
    ).get_json()
    assert created["status"] == "funded"
    body = api.get("/api/v1/portfolio", token=token).get_json()
    assert body["currency"] == "GBP" and body["invested"] == 50_000 and set(body["currencies"]) == {"GBP"}
    eur = api.get("/api/v1/portfolio", query={"currency": "EUR"}, token=token).get_json()
    assert eur["currency"] == "EUR" and eur["invested"] == 0
    assert_error(api.get("/api/v1/portfolio", query={"currency": "XYZ"}, token=token), 422)


LENDING_OPERATIONS = {
    ("post", "/api/v1/loan-requests"): ("201", REQUEST_KEYS),
    ("get", "/api/v1/loan-requests"): ("200", REQUEST_KEYS),
    ("get", "/api/v1/loan-requests/{request_id}"): ("200", REQUEST_KEYS),
    ("post", "/api/v1/loan-requests/{request_id}/cancel"): ("200", REQUEST_KEYS),
    ("post", "/api/v1/lending-offers"): ("201", OFFER_KEYS),
    ("get", "/api/v1/lending-offers"): ("200", OFFER_KEYS),
    ("delete", "/api/v1/lending-offers/{offer_id}"): ("200", OFFER_KEYS),
    ("get", "/api/v1/loans/{loan_id}"): ("200", LOAN_KEYS),
    ("post", "/api/v1/loans/{loan_id}/repayments"): ("201", {"amount", "loan"}),
    ("post", "/api/v1/loans/{loan_id}/payoff"): ("201", {"amount", "loan"}),
    ("get", "/api/v1/portfolio"): (
        "200",
        {"invested", "outstanding_principal", "interest_received", "defaulted_principal", "parts"},
    ),
    ("get", "/api/v1/loan-requests/{request_id}/comments"): ("200", {"id", "author_id", "body", "created_at"}),
    ("post", "/api/v1/loan-requests/{request_id}/comments"): ("201", {"id", "author_id", "body", "created_at"}),
}


@pytest.mark.parametrize(("method", "path"), sorted(LENDING_OPERATIONS))
def test_openapi_describes_each_lending_endpoint(app, method, path):
    spec = app.test_client().get("/api/openapi.json").get_json()
    status, fields = LENDING_OPERATIONS[(method, path)]
    operation = spec["paths"][path][method]
    schema = operation["responses"][status]["content"]["application/json"]["schema"]
    if schema.get("type") == "array":
        schema = schema["items"]
    name = schema["$ref"].rsplit("/", 1)[-1]
    assert fields <= set(spec["components"]["schemas"][name]["properties"]), (path, name)
    assert operation["security"] == [{"bearerAuth": []}]
