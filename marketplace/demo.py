"""Demo data for ``flask seed-demo``: safe to run again (it checks first).

Later capabilities add their own demo data through ``demo_step``.
"""

from __future__ import annotations

from collections.abc import Callable

from .accounts import services as accounts
from .db import transaction
from .extensions import db

DEMO_PASSWORD = "demo-pass-123"
OPERATOR = ("operator@demo.example", "Olivia Operator")
SUPPLIER = ("supplier@demo.example", "Sunrise Energy Co-op")
SUPPLIER_2 = ("supplier2@demo.example", "Northwind Power")
MEMBERS = [
    ("alice@demo.example", "Alice Archer", 5_000_000),
    ("bob@demo.example", "Bob Baker", 2_500_000),
    ("carol@demo.example", "Carol Chen", 4_000_000),
    ("dave@demo.example", "Dave Diaz", 1_500_000),
]

_STEPS: list[Callable[[dict], list[str]]] = []


def demo_step(func: Callable[[dict], list[str]]):
    """Register a later capability's demo data (gets the people created here)."""
    _STEPS.append(func)
    return func


def _member(email: str, name: str, role: str = "member", verified: bool = True):
    member = accounts.find_by_email(email)
    created = member is None
    if created:
        member = accounts.create_member(email, DEMO_PASSWORD, name, role=role)
    if verified and member.kyc_status != "verified":
        member.kyc_status = "verified"
    return member, created


def seed() -> list[str]:
    from .lending import demo as _lending_demo  # noqa: F401  (registers its step)
    from .pools import demo as _pools_demo  # noqa: F401  (registers its step)
    from .wallet import services as wallet

    lines: list[str] = []
    with transaction():
        operator = (
            accounts.create_operator(OPERATOR[0], DEMO_PASSWORD, OPERATOR[1])
            if accounts.find_by_email(OPERATOR[0]) is None
            else accounts.find_by_email(OPERATOR[0])
        )
        supplier, _ = _member(*SUPPLIER, role="supplier")
        supplier2, _ = _member(*SUPPLIER_2, role="supplier")
        people = {"operator": operator, "supplier": supplier, "supplier2": supplier2, "members": []}
        for email, name, funds in MEMBERS:
            member, created = _member(email, name)
            people["members"].append(member)
            if created:
                db.session.flush()
                wallet.deposit(member.id, funds, "EUR")
    for step in _STEPS:
        with transaction():
            lines.extend(step(people))
    lines.insert(0, f"Demo data ready. Every demo account's password is: {DEMO_PASSWORD}")
    lines.insert(1, f"  operator  {OPERATOR[0]}")
    lines.insert(2, f"  supplier  {SUPPLIER[0]}  and  {SUPPLIER_2[0]}")
    for email, _, _ in MEMBERS:
        lines.append(f"  member    {email}")
    return lines
