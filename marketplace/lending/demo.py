"""Demo lending for ``flask seed-demo``: offers, one funded loan with a repayment, one open request."""

from __future__ import annotations

from sqlalchemy import select

from ..conversation import services as conversation
from ..demo import demo_step
from ..extensions import db
from . import market, repayments
from .models import LendingOffer


@demo_step
def demo_lending(people: dict) -> list[str]:
    if db.session.execute(select(LendingOffer.id).limit(1)).first() is not None:
        return ["Lending: demo offers and loans already exist."]
    alice, bob, carol, dave = people["members"]
    market.create_offer(alice.id, amount=1_000_000, currency="EUR", min_rate_bps=650, max_part=50_000)
    market.create_offer(carol.id, amount=600_000, currency="EUR", min_rate_bps=800, max_part=30_000, terms=[12, 24, 36])
    market.create_offer(
        alice.id, amount=200_000, currency="EUR", min_rate_bps=1_100, max_part=20_000, grades=["C", "D", "E"]
    )
    funded = market.create_request(
        bob.id,
        amount=60_000,
        currency="EUR",
        term_months=12,
        max_rate_bps=1_200,
        purpose="A cargo bike for deliveries from the co-op shop",
        monthly_income=280_000,
        monthly_debt=20_000,
    )
    if funded.loan_id is not None:
        first = repayments.amount_owed(funded.loan_id)
        repayments.repay(funded.loan_id, bob.id, min(first, 10_000))
    waiting = market.create_request(
        dave.id,
        amount=2_500_000,
        currency="EUR",
        term_months=36,
        max_rate_bps=900,
        purpose="Solar panels and a heat pump for the family home",
        monthly_income=420_000,
    )
    conversation.add_comment("loan_request", waiting.id, carol.id, "Is the heat pump air-to-water or ground source?")
    conversation.add_comment("loan_request", waiting.id, dave.id, "Air-to-water; the quote is attached to my profile.")
    return [
        f"Lending: 3 offers; loan {funded.loan_id} funded for Bob; Dave's request "
        f"{waiting.id} is {waiting.funded_amount * 100 // waiting.amount} % funded."
    ]
