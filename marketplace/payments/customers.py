"""A Stripe Customer per member: created the first time the member pays by card, then reused."""

from __future__ import annotations

from ..clock import now
from ..db import transaction
from ..extensions import db
from .models import StripeCustomer
from .providers import PaymentProvider
from .rows import insert_ignoring_conflict


def stored_customer(member_id: int) -> str:
    row = db.session.get(StripeCustomer, member_id)
    return row.customer_id if row is not None else ""


def customer_for(member_id: int, provider: PaymentProvider) -> str:
    """The member's customer id at ``provider`` ("" for a provider without customers).

    The provider call is idempotent per member, so two first payments racing
    get the same customer; the row is inserted once (the loser reads it back).
    """
    if not provider.uses_customers:
        return ""
    existing = stored_customer(member_id)
    if existing:
        return existing
    from ..accounts.services import get_member

    member = get_member(member_id)
    customer_id = provider.create_customer(member_id=member_id, email=member.email, name=member.display_name)
    with transaction() as session:
        insert_ignoring_conflict(
            StripeCustomer, {"member_id": member_id, "customer_id": customer_id, "created_at": now()}, ["member_id"]
        )
        return session.get(StripeCustomer, member_id, populate_existing=True).customer_id
