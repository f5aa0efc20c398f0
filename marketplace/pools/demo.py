"""Demo pools for ``flask seed-demo``: two open pools and one delivered, reviewed pool."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from ..clock import now
from ..conversation import services as conversation
from ..demo import demo_step
from ..extensions import db
from . import services
from .models import Pool


def _tiers(*pairs):
    return [{"min_volume": v, "unit_price": p} for v, p in pairs]


@demo_step
def demo_pools(people: dict) -> list[str]:
    if db.session.execute(select(Pool.id).limit(1)).first() is not None:
        return ["Pools: demo pools already exist."]
    alice, bob, carol, dave = people["members"]
    supplier, supplier2 = people["supplier"], people["supplier2"]

    energy = services.create_pool(
        alice.id,
        title="Green electricity for community centres 2027",
        description="A year of certified renewable electricity for the co-op's community centres. "
        "Pledge the MWh your centre needs; suppliers compete on volume-tiered prices.",
        unit="MWh",
        currency="EUR",
        min_volume=100,
        deadline=now() + timedelta(days=10),
    )
    for member, qty, price in [(alice, 40, 9_500), (bob, 15, 9_000), (carol, 30, 9_200)]:
        services.place_pledge(energy.id, member.id, quantity=qty, max_unit_price=price)
    services.place_bid(energy.id, supplier.id, tiers=_tiers((50, 9_400), (100, 8_900), (200, 8_200)), capacity=400)
    services.place_bid(energy.id, supplier2.id, tiers=_tiers((80, 9_100), (150, 8_600)), capacity=300)

    laptops = services.create_pool(
        bob.id,
        title="Refurbished laptops for the school library",
        description="Grade-A refurbished laptops with a 3-year warranty.",
        unit="laptop",
        currency="EUR",
        min_volume=20,
        deadline=now() + timedelta(days=2),
    )
    services.place_pledge(laptops.id, bob.id, quantity=5, max_unit_price=32_000)
    services.place_pledge(laptops.id, dave.id, quantity=3, max_unit_price=30_000)

    heating = services.create_pool(
        carol.id,
        title="Heating oil, winter bulk order",
        description="Delivered to each member's address in December.",
        unit="100 litres",
        currency="EUR",
        min_volume=50,
        deadline=now() + timedelta(days=1),
    )
    for member, qty, price in [(alice, 20, 11_000), (carol, 25, 10_500), (dave, 10, 10_500)]:
        services.place_pledge(heating.id, member.id, quantity=qty, max_unit_price=price)
    services.place_bid(heating.id, supplier.id, tiers=_tiers((40, 10_400), (60, 9_900)), capacity=100)
    services.place_bid(heating.id, supplier2.id, tiers=_tiers((50, 10_200)), capacity=80)
    services.close_pool(heating.id, carol.id)
    pool = db.session.get(Pool, heating.id)
    if pool.status == "awarded":
        services.confirm_delivery(pool.id, pool.award_supplier_id)
        conversation.add_review(pool.id, alice.id, 5, "Delivered on time, and cheaper than last winter.")
        conversation.add_review(pool.id, carol.id, 4, "Good price; the driver came a day late.")
    conversation.add_comment("pool", energy.id, bob.id, "Does the certificate cover all 12 months?")
    conversation.add_comment("pool", energy.id, alice.id, "Yes — suppliers must show monthly guarantees of origin.")
    return [f"Pools: 2 open pools and 1 {pool.status} pool created."]
