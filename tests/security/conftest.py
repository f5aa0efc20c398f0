"""The security suite's world: an owner with one of everything, an intruder, and browsers for both.

``world`` builds, through the services, every kind of object a member can own
(wallet payments, API tokens, wallet and card pledges, an organised pool, an
awarded pool, a lending offer, an open loan request, a loan as borrower and a
loan as lender, a notification) plus a second verified member, the intruder,
with money and objects of its own. ``database_state()`` is every row of every
table, so "nothing changed" is checked on the whole database, not a guess at
which rows a request might touch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from flask import g
from flask.testing import FlaskClient
from sqlalchemy import select, text

from marketplace.accounts import services as accounts
from marketplace.db import transaction
from marketplace.extensions import db
from marketplace.ledger.services import wallet_account
from marketplace.lending import market
from marketplace.notifications.services import notify
from marketplace.payments import authorizations
from marketplace.payments.models import Payment, PayoutPart
from marketplace.pools import services as pools
from marketplace.wallet import services as wallet
from tests.helpers import csrf_token, login, make_member, set_clock

T0 = datetime(2027, 5, 3, 10, 0, tzinfo=UTC)
OWNER_NOTE = "NOTE-FOR-THE-OWNER-ONLY"
OWNER_TOKEN_NAME = "owner-private-bot"
OWNER_NAME = "Olive Owner"


class Browser(FlaskClient):
    """A test client whose every request starts with an empty ``g`` (the harness shares one app context)."""

    def open(self, *args, **kwargs):
        for key in list(g):
            g.pop(key)
        return super().open(*args, **kwargs)


def browser(app) -> Browser:
    return Browser(app, app.response_class, use_cookies=True)


def signed_in(app, member) -> Browser:
    client = browser(app)
    response = login(client, member.email)
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def page_token(client, path: str = "/settings") -> str:
    """A CSRF token of this browser's session (from a page that has a form)."""
    return csrf_token(client.get(path).get_data(as_text=True))


def database_state() -> dict[str, list[tuple]]:
    """Every row of every table, in primary-key order."""
    db.session.rollback()  # services commit; drop any snapshot this session still holds
    state = {}
    for table in db.metadata.sorted_tables:
        order = list(table.primary_key.columns) or list(table.columns)
        state[table.name] = [tuple(row) for row in db.session.execute(select(table).order_by(*order)).all()]
    db.session.rollback()
    return state


def changed_tables(before: dict, after: dict) -> dict[str, str]:
    """``{table: "n rows -> m rows, k differ"}`` for every table whose rows changed."""
    out = {}
    for name in before:
        old, new = before[name], after[name]
        if old != new:
            differing = sum(1 for a, b in zip(old, new, strict=False) if a != b)
            out[name] = f"{len(old)} rows -> {len(new)} rows, {differing} differ"
    return out


def assert_unchanged(before: dict, what: str = "") -> None:
    changes = changed_tables(before, database_state())
    assert not changes, f"{what}: the database changed: {changes}"


@dataclass(frozen=True)
class Person:
    """What the tests need of a member (the ORM row would go stale when the world is restored)."""

    id: int
    email: str
    display_name: str


@dataclass
class World:
    owner: Person
    intruder: Person
    lender: Person
    borrower: Person
    supplier: Person
    operator: Person
    owner_token: str
    intruder_token: str
    lender_token: str
    ids: dict = field(default_factory=dict)


def build_world() -> World:
    set_clock(T0)
    operator = make_member("operator", name="Opal Operator")
    owner = make_member(funds={"EUR": 500_000}, name=OWNER_NAME)
    intruder = make_member(funds={"EUR": 500_000, "GBP": 50_000}, name="Ivan Intruder")
    lender = make_member(funds={"EUR": 200_000}, name="Lou Lender")
    borrower = make_member(funds={"EUR": 20_000}, name="Bea Borrower")
    supplier = make_member("supplier", name="Sam Supplier")

    owner_token, owner_token_row = accounts.issue_token(owner.id, OWNER_TOKEN_NAME)
    intruder_token, _ = accounts.issue_token(intruder.id, "intruder-bot")
    lender_token, _ = accounts.issue_token(lender.id, "lender-bot")

    # Lending: the owner borrows from the lender, lends to the borrower, and has an open request and offer.
    market.create_offer(lender.id, amount=100_000, currency="EUR", min_rate_bps=800, max_part=100_000)
    borrowed = market.create_request(
        owner.id, amount=100_000, currency="EUR", term_months=12, max_rate_bps=1200, purpose="Owner's kitchen"
    )
    assert borrowed.status == "funded", borrowed.status
    to_fund = market.create_request(
        borrower.id, amount=50_000, currency="EUR", term_months=12, max_rate_bps=1200, purpose="Bea's roof"
    )
    offer = market.create_offer(owner.id, amount=80_000, currency="EUR", min_rate_bps=800, max_part=50_000)
    db.session.refresh(to_fund)
    assert to_fund.status == "funded" and offer.status == "open" and offer.remaining == 30_000
    open_request = market.create_request(
        owner.id, amount=20_000, currency="GBP", term_months=6, max_rate_bps=900, purpose="Owner's bike"
    )
    assert open_request.status == "open"

    # Pools: an open pool the owner organises (a wallet and a card pledge in it), and an awarded one.
    deadline = T0 + timedelta(days=7)
    pool = pools.create_pool(
        owner.id,
        title="Olive oil",
        description="",
        unit="litre",
        currency="EUR",
        min_volume=10,
        deadline=deadline,
    )
    pledge = pools.place_pledge(pool.id, owner.id, quantity=5, max_unit_price=1_000)
    card_pledge = pools.place_pledge(
        pool.id, owner.id, quantity=3, max_unit_price=1_000, funding="card", payment_method="pm_card_visa"
    )
    auth = authorizations.latest_for_pledge(card_pledge.id)
    intruder_pledge = pools.place_pledge(pool.id, intruder.id, quantity=2, max_unit_price=900)
    pools.place_bid(pool.id, supplier.id, tiers=[{"min_volume": 1, "unit_price": 900}], capacity=1_000)
    awarded = pools.create_pool(
        owner.id, title="Honey", description="", unit="jar", currency="EUR", min_volume=5, deadline=deadline
    )
    awarded_pledge = pools.place_pledge(awarded.id, owner.id, quantity=10, max_unit_price=1_000)
    pools.place_bid(awarded.id, supplier.id, tiers=[{"min_volume": 1, "unit_price": 800}], capacity=100)
    assert pools.close_pool(awarded.id, owner.id).status == "awarded"

    # Wallet: a withdrawal (its payout part waits for an operator), and a private notification.
    withdrawal = wallet.withdraw(owner.id, 1_000, "EUR")
    deposit_id = db.session.execute(
        select(Payment.id).where(Payment.member_id == owner.id, Payment.direction == "deposit").limit(1)
    ).scalar_one()
    part_id = db.session.execute(
        select(PayoutPart.id).where(PayoutPart.payment_id == withdrawal.id).limit(1)
    ).scalar_one()  # a refund of the deposit or a payout waiting for an operator
    with transaction():
        notify(owner.id, "security_test", OWNER_NOTE, "/wallet")
    wallet_code = wallet_account(owner.id, "EUR").code
    db.session.commit()

    ids = {
        "owner": owner.id,
        "intruder": intruder.id,
        "supplier": supplier.id,
        "token": owner_token_row.id,
        "deposit": deposit_id,
        "withdrawal": withdrawal.id,
        "part": part_id,
        "pool": pool.id,
        "pledge": pledge.id,
        "card_pledge": card_pledge.id,
        "auth": auth.id,
        "intruder_pledge": intruder_pledge.id,
        "awarded_pool": awarded.id,
        "awarded_pledge": awarded_pledge.id,
        "offer": offer.id,
        "open_request": open_request.id,
        "borrowed_request": borrowed.id,
        "loan": borrowed.loan_id,
        "lent_loan": to_fund.loan_id,
        "wallet_code": wallet_code,
        "entry": 1,
    }
    people = {
        name: Person(m.id, m.email, m.display_name)
        for name, m in (
            ("owner", owner),
            ("intruder", intruder),
            ("lender", lender),
            ("borrower", borrower),
            ("supplier", supplier),
            ("operator", operator),
        )
    }
    return World(**people, owner_token=owner_token, intruder_token=intruder_token, lender_token=lender_token, ids=ids)


# Path parameters by name: which of the world's objects a URL names (the owner's, unless said otherwise).
PATH_VALUES = {
    "pool_id": "pool",
    "pledge_id": "pledge",
    "offer_id": "offer",
    "request_id": "open_request",
    "loan_id": "loan",
    "auth_id": "auth",
    "payment_id": "deposit",
    "token_id": "token",
    "member_id": "intruder",
    "supplier_id": "supplier",
    "part_id": "part",
    "entry_id": "entry",
    "code": "wallet_code",
}
FIXED_PATH_VALUES = {"action": "switch", "filename": "css/app.css"}


def rule_path(rule, world: World, **overrides) -> str:
    """A concrete path for a url_map rule, its parameters naming the world's objects."""
    values = {}
    for name in rule.arguments:
        if name in overrides:
            values[name] = overrides[name]
        elif name in FIXED_PATH_VALUES:
            values[name] = FIXED_PATH_VALUES[name]
        else:
            assert name in PATH_VALUES, f"{rule.rule}: say in PATH_VALUES which object <{name}> should name"
            values[name] = world.ids[PATH_VALUES[name]]
    built = rule.build(values, append_unknown=False)
    assert built is not None, rule.rule
    return built[1]


def openapi_path(template: str, world: World, **overrides) -> str:
    """A concrete path for an OpenAPI path template (``/api/v1/pools/{pool_id}``)."""

    def value(match):
        name = match.group(1)
        if name in overrides:
            return str(overrides[name])
        assert name in PATH_VALUES, f"{template}: say in PATH_VALUES which object {{{name}}} should name"
        return str(world.ids[PATH_VALUES[name]])

    return re.sub(r"\{(\w+)\}", value, template)


def openapi_template(rule) -> str:
    """``/api/v1/pools/<int(min=1):pool_id>`` -> ``/api/v1/pools/{pool_id}``."""
    return re.sub(r"<(?:[^:>]+:)?(\w+)>", r"{\1}", rule.rule)


def openapi_operations(app) -> list[tuple[str, str, dict]]:
    """(METHOD, path template, operation) for every operation of the served OpenAPI document."""
    doc = app.test_client().get("/api/openapi.json").get_json()
    return [
        (method.upper(), path, operation)
        for path, item in doc["paths"].items()
        for method, operation in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]


@pytest.fixture
def fast_passwords(monkeypatch):
    """Members' password hashes with one PBKDF2 round: the world has many members and logins."""
    monkeypatch.setattr(accounts, "PASSWORD_METHOD", "pbkdf2:sha256:1")


def restore(state: dict) -> None:
    """Put ``database_state()``'s rows back into the emptied tables (and move PostgreSQL's sequences past them)."""
    with db.engine.begin() as conn:
        for table in db.metadata.sorted_tables:
            keys = [column.key for column in table.columns]
            if table.name == "pool_pledge_totals":
                continue  # the database's triggers make them anew from the pools and pledges put back
            if state[table.name]:
                conn.execute(table.insert(), [dict(zip(keys, row, strict=True)) for row in state[table.name]])
            if conn.dialect.name == "postgresql" and "id" in keys and state[table.name]:
                conn.execute(
                    text(
                        "SELECT setval(pg_get_serial_sequence(:table, 'id'), (SELECT max(id) FROM "
                        + f'"{table.name}"))'
                    ),
                    {"table": f'"{table.name}"'},
                )


_built: dict = {}


@pytest.fixture
def world(app, fast_passwords) -> World:
    """The world, built through the services once per session; later tests get the same rows back at once."""
    if "state" not in _built:
        built = build_world()
        _built.update(state=database_state(), world=built)
    else:
        restore(_built["state"])
    saved = _built["world"]
    return World(**{**saved.__dict__, "ids": dict(saved.ids)})
