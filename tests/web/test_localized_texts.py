"""Texts that services store or raise reach a Spanish, Finnish or Italian reader in their language.

Notifications, the explanation of every bid, the reasons of a risk grade and
the refusals a page flashes are built as ``texts.Msg``: the JSON API keeps
the English sentence, the pages translate it for the reader. Rows written
before a text was kept (no parameters stored) still show their English text.
"""

from __future__ import annotations

import re

import pytest

from marketplace.accounts import services as accounts
from marketplace.conversation import services as conversation
from marketplace.errors import InsufficientFunds, ValidationFailed
from marketplace.extensions import db
from marketplace.i18n import localized_errors
from marketplace.lending import market
from marketplace.lending.models import LoanRequest
from marketplace.notifications import services as notifications
from marketplace.pools import services as pools
from marketplace.pools.models import Bid
from tests.helpers import ApiClient, make_member, token_for
from tests.web.test_pool_pages import browser, make_pool, signed_in, text, text_of, token, worked_example


def reader(app, member, locale: str):
    accounts.set_locale(member.id, locale)
    return signed_in(app, member)


def closed_worked_example():
    story = worked_example()
    pools.close_pool(story["pool"].id, story["organizer"].id)
    return story


def comparison_rows(page) -> list[str]:
    table = re.search(r'<table class="data" id="bid-comparison">.*?</table>', page.get_data(as_text=True), re.S)
    return [text_of(row) for row in re.findall(r"<tr.*?</tr>", table.group(0).split("<tbody>")[1], re.S)]


# ---------------------------------------------------------------- notifications


def test_stored_notifications_are_shown_in_the_readers_language(app):
    story = closed_worked_example()
    title = story["pool"].title

    body = text(reader(app, story["a"], "es").get("/notifications"))
    assert (
        f"La compra colectiva «{title}» se adjudicó a 7,50 EUR por panel: se te cobraron 375,00 EUR "
        "y se liberó el resto de tu retención." in body
    )
    assert "was awarded at" not in body and "7.50 EUR" not in body

    released = text(reader(app, story["d"], "it").get("/notifications"))
    assert "oltre il tuo prezzo massimo: il tuo impegno è stato svincolato" in released
    assert "above your maximum price" not in released

    lost = text(reader(app, story["x"], "fi").get("/notifications"))
    assert f"Tarjouksesi yhteisostoon ”{title}” ei voittanut. Ei kelvannut:" in lost
    assert "8,00 vs. 7,50" in lost  # the bid's explanation inside it, its prices in Finnish format
    assert "did not win" not in lost and "Could not clear" not in lost


def test_the_api_keeps_the_english_message(app):
    story = closed_worked_example()
    accounts.set_locale(story["a"].id, "es")
    response = ApiClient(app.test_client()).get(
        "/api/v1/notifications", token=token_for(story["a"]), headers={"Accept-Language": "es"}
    )
    (row,) = response.get_json()
    assert row["message"] == (
        f"Pool “{story['pool'].title}” was awarded at 7.50 EUR per panel: you were charged 375.00 EUR "
        "and the rest of your hold was released."
    )
    assert set(row) == {"id", "kind", "message", "link", "created_at", "read_at"}


def test_old_notifications_without_parameters_show_their_message(app):
    member = make_member()
    notifications.notify(member.id, "note", "Written before texts were kept.", "/wallet")
    db.session.commit()
    body = text(reader(app, member, "es").get("/notifications"))
    assert "Written before texts were kept." in body
    assert "Abrir" in body  # the link "Open" (a verb here), not a pool's status


# ---------------------------------------------------------------- bid explanations


def test_every_bid_is_explained_in_the_readers_language(app):
    story = closed_worked_example()
    x_row, y_row = comparison_rows(reader(app, make_member(), "es").get(f"/pools/{story['pool'].id}"))
    assert "No viable en todos los volúmenes que puede atender, su precio supera lo que acepta" in x_row
    assert "(con 120 unidades: 8,00 frente a 7,50)." in x_row
    assert "Ganador Viable con 120 unidades a 7,50 para 3 compromisos, total 900,00." in y_row
    assert "Could not clear" not in x_row and "Cleared" not in y_row

    # English readers see exactly the sentence the API gives.
    x_row, y_row = comparison_rows(browser(app).get(f"/pools/{story['pool'].id}"))
    assert "Cleared 120 units at 7.50 for 3 pledges, total 900.00." in y_row


def test_a_failed_pools_bids_are_explained_and_old_rows_fall_back(app):
    organizer = make_member()
    member = make_member(funds={"EUR": 10_000})
    supplier = make_member("supplier", name="Tiny Co")
    pool = make_pool(organizer, title="Small order")
    pools.place_pledge(pool.id, member.id, quantity=10, max_unit_price=500)
    pools.place_bid(pool.id, supplier.id, tiers=[{"min_volume": 1, "unit_price": 100}], capacity=1000)
    pools.close_pool(pool.id, organizer.id)
    client = reader(app, organizer, "it")
    (row,) = comparison_rows(client.get(f"/pools/{pool.id}"))
    assert "Non abbinabile solo 10 unità impegnate, sotto il minimo dell'acquisto collettivo di 100." in row

    bid = db.session.query(Bid).filter_by(pool_id=pool.id).one()
    bid.outcome_params = None  # closed before the explanation was kept as a text
    db.session.commit()
    (row,) = comparison_rows(client.get(f"/pools/{pool.id}"))
    assert "Non abbinabile only 10 units pledged, below the pool minimum of 100." in row


# ---------------------------------------------------------------- grade reasons


def test_grade_reasons_are_shown_in_the_readers_language(app):
    borrower = make_member(name="Bea Borrower")
    loan_request = market.create_request(
        borrower.id, amount=50_000, currency="EUR", term_months=12, max_rate_bps=900, monthly_income=300_000
    )
    assert loan_request.grade_reasons[0]["text"] == "Identity verified (+30 points)."
    body = text(reader(app, borrower, "es").get(f"/loan-requests/{loan_request.id}"))
    assert "Identidad verificada (+30 puntos)." in body
    assert "Miembro desde hace 0 días (0 puntos; 30 días suman 5 y 365 días suman 20)." in body
    assert "Aún no hay historial de reembolsos aquí (0 puntos)." in body
    assert "de los ingresos declarados" in body
    assert "Identity verified" not in body and "Member for" not in body

    # Requests stored before the reasons were kept as texts show their English sentences.
    db.session.get(LoanRequest, loan_request.id).grade_reasons = [
        {"factor": r["factor"], "points": r["points"], "text": r["text"]} for r in loan_request.grade_reasons
    ]
    db.session.commit()
    assert "Identity verified (+30 points)." in text(
        reader(app, borrower, "es").get(f"/loan-requests/{loan_request.id}")
    )


def test_the_api_and_the_preview_keep_english_reasons(app):
    borrower = make_member()
    accounts.set_locale(borrower.id, "fi")
    loan_request = market.create_request(borrower.id, amount=50_000, currency="EUR", term_months=12, max_rate_bps=900)
    body = ApiClient(app.test_client()).get(f"/api/v1/loan-requests/{loan_request.id}", token=token_for(borrower))
    reasons = body.get_json()["grade_reasons"]
    assert reasons[0] == {"factor": "kyc", "points": 30, "text": "Identity verified (+30 points)."}

    preview = signed_in(app, borrower).get("/borrow/preview?amount=1000&term_months=12&max_rate=9").get_json()
    assert preview["grade"]["reasons"][0]["text"] == "Identity verified (+30 points)."
    assert "Henkilöllisyys vahvistettu (+30 pistettä)." in text_of(preview["html"])


# ---------------------------------------------------------------- refusals flashed by pages


def test_flashed_refusals_are_in_the_readers_language(app):
    borrower = make_member()
    loan_request = market.create_request(borrower.id, amount=50_000, currency="EUR", term_months=12, max_rate_bps=900)
    client = reader(app, borrower, "es")
    csrf = token(client, f"/loan-requests/{loan_request.id}")
    client.post(f"/loan-requests/{loan_request.id}/cancel", data={"csrf_token": csrf})
    again = client.post(f"/loan-requests/{loan_request.id}/cancel", data={"csrf_token": csrf}, follow_redirects=True)
    body = text(again)
    assert "La solicitud de préstamo está cancelada, no abierta." in body and "not open" not in body

    story = closed_worked_example()
    organizer = reader(app, story["organizer"], "it")
    pool_id = story["pool"].id
    closed = organizer.post(
        f"/pools/{pool_id}/close", data={"csrf_token": token(organizer, f"/pools/{pool_id}")}, follow_redirects=True
    )
    assert f"L'acquisto collettivo {pool_id} è già aggiudicato." in text(closed)


def test_the_api_keeps_english_refusals(app):
    borrower = make_member()
    accounts.set_locale(borrower.id, "es")
    loan_request = market.create_request(borrower.id, amount=50_000, currency="EUR", term_months=12, max_rate_bps=900)
    market.cancel_request(loan_request.id, borrower.id)
    response = ApiClient(app.test_client()).request(
        "POST",
        f"/api/v1/loan-requests/{loan_request.id}/cancel",
        token=token_for(borrower),
        headers={"Accept-Language": "es"},
    )
    assert response.status_code == 409
    assert response.get_json()["message"] == "The loan request is cancelled, not open."


# ---------------------------------------------------------------- field errors beside the inputs


def delivered_example():
    story = closed_worked_example()
    pools.confirm_delivery(story["pool"].id, story["y"].id)
    return story


def test_a_services_field_error_is_shown_beside_the_input_in_the_readers_language(app, monkeypatch):
    # The page's form allows 4000 characters; the service's own limit is lowered so that it refuses.
    monkeypatch.setattr(conversation, "MAX_REVIEW", 10)
    story = delivered_example()
    pool_id = story["pool"].id
    client = reader(app, story["a"], "es")
    refused = client.post(
        f"/pools/{pool_id}/reviews",
        data={"csrf_token": token(client, f"/pools/{pool_id}"), "rating": "4", "body": "Panels arrived on time"},
    )
    assert refused.status_code == 422
    body = text(refused)
    assert "como máximo 10 caracteres" in body and "at most 10 characters" not in body
    assert conversation.pool_reviews(pool_id) == []


def test_the_api_keeps_the_english_field_error(app, monkeypatch):
    monkeypatch.setattr(conversation, "MAX_REVIEW", 10)
    story = delivered_example()
    accounts.set_locale(story["a"].id, "es")
    response = ApiClient(app.test_client()).post(
        f"/api/v1/pools/{story['pool'].id}/reviews",
        {"rating": 4, "body": "Panels arrived on time"},
        token=token_for(story["a"]),
        headers={"Accept-Language": "es"},
    )
    assert response.status_code == 422
    assert response.get_json() == {
        "code": 422,
        "status": "Unprocessable Entity",
        "message": "The request did not pass validation.",
        "reason": "validation_error",
        "errors": {"body": ["at most 10 characters"]},
    }


def test_field_errors_keep_english_and_localize_their_money(app):
    member = make_member(funds={"EUR": 300})
    with pytest.raises(InsufficientFunds) as caught:
        pools.place_pledge(make_pool(make_member()).id, member.id, quantity=10, max_unit_price=100)
    exc = caught.value
    assert exc.errors == {"amount": ["available balance is 300"]}  # what the API has always said
    with app.test_request_context(headers={"Accept-Language": "es"}):
        assert localized_errors(exc) == {"amount": ["el saldo disponible es 3,00 EUR"]}

    with pytest.raises(ValidationFailed) as caught:
        accounts.set_locale(member.id, "xx")
    assert caught.value.errors == {"locale": ["one of en, es, fi, it"]}
    with app.test_request_context(headers={"Accept-Language": "es"}):
        assert localized_errors(caught.value) == {"locale": ["uno de: en, es, fi, it"]}
