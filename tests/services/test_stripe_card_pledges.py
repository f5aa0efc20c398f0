"""Card-backed pledges through Stripe (localstripe): authorized at pledge time, captured in part at clearing,
cancelled when released, kept alive across the 7-day expiry, and swept so that no hold is ever leaked."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import stripe
from sqlalchemy import func, select

from marketplace.clock import now
from marketplace.extensions import db
from marketplace.notifications.models import Notification
from marketplace.operators.jobs import run_due
from marketplace.payments import authorizations
from marketplace.payments.models import CardAuthorization
from marketplace.payments.reconcile import reconcile_configured
from marketplace.payments.stripe_provider import StripeProvider
from marketplace.pools import services as pools
from marketplace.pools.models import Pledge

from ..helpers import assert_error, assert_ledger_invariants, make_member, set_clock, token_for, wallet_of
from ..stripe_helpers import (
    THREE_D_SECURE_CARD,
    account_balance,
    card_method,
    deliver,
    entries_of_kind,
    external_postings,
    free_port,
    intent_event,
    stripe_client,
    stripe_settings,
    stripe_transport,
)

pytest_plugins = ("tests.stripe_fixtures",)  # localstripe_url, stripe_app


# ---------------------------------------------------------------- helpers


def open_pool(*, days: float = 3, min_volume: int = 100):
    organizer = make_member(name="Olive Organizer")
    pool = pools.create_pool(
        organizer.id,
        title="Heat pumps",
        description="",
        unit="unit",
        currency="EUR",
        min_volume=min_volume,
        deadline=now() + timedelta(days=days),
    )
    return organizer, pool


def bid(pool, *pairs, capacity=500):
    supplier = make_member("supplier")
    pools.place_bid(
        pool.id, supplier.id, tiers=[{"min_volume": v, "unit_price": p} for v, p in pairs], capacity=capacity
    )
    return supplier


def pledge(api, member, pool, quantity, price, *, card: str | None = "pm_card_visa", **extra):
    body = {"quantity": quantity, "max_unit_price": price, **extra}
    if card:
        body.update(funding="card", payment_method=card)
    return api.post(f"/api/v1/pools/{pool.id}/pledges", body, token=token_for(member))


def intent_of(url: str, pledge_id: int) -> dict:
    auth = authorizations.latest_for_pledge(pledge_id)
    return stripe_client(url).v1.payment_intents.retrieve(auth.intent_id).to_dict()


def holds_at_stripe(url: str) -> list[str]:
    """Card holds Stripe (localstripe) still has: uncaptured pool-pledge PaymentIntents."""
    return sorted(
        intent.id
        for intent in stripe_client(url).v1.payment_intents.list(params={"limit": 100}).auto_paging_iter()
        if intent.status == "requires_capture"
    )


def live_authorizations() -> list[str]:
    """What our books say is held on cards: the authorizations of active card pledges."""
    db.session.expire_all()
    return sorted(
        db.session.execute(
            select(CardAuthorization.intent_id)
            .join(Pledge, Pledge.id == CardAuthorization.pledge_id)
            .where(CardAuthorization.status == "authorized", Pledge.status == "active", Pledge.funding == "card")
        ).scalars()
    )


def auth_status(pledge_id: int) -> str:
    db.session.expire_all()
    return authorizations.latest_for_pledge(pledge_id).status


def notes(member, kind: str) -> list[str]:
    db.session.expire_all()
    return list(
        db.session.execute(
            select(Notification.message).where(Notification.member_id == member.id, Notification.kind == kind)
        ).scalars()
    )


# ---------------------------------------------------------------- clearing


def test_filled_card_pledges_are_captured_in_part_and_released_ones_cancelled(stripe_app, api, localstripe_url):
    """DESIGN.md's worked example with card pledges: A, B, C filled at 7.50, D released."""
    organizer, pool = open_pool()
    a, b, c, d = (make_member(name=n) for n in "ABCD")
    from marketplace.wallet import services as wallet

    wallet.deposit(b.id, 40 * 800, "EUR")  # B pledges from the wallet
    ids = {}
    for member, qty, price, card in [
        (a, 50, 900, "pm_card_visa"),
        (b, 40, 800, None),
        (c, 30, 750, "pm_card_visa"),
        (d, 50, 600, "pm_card_visa"),
    ]:
        resp = pledge(api, member, pool, qty, price, card=card)
        assert resp.status_code == 201, resp.get_json()
        ids[member.display_name] = resp.get_json()["id"]
    body = api.get(f"/api/v1/pools/{pool.id}/pledges", token=token_for(a)).get_json()[0]
    assert (body["funding"], body["held_amount"], body["authorization"]["status"]) == ("card", 45_000, "authorized")
    assert intent_of(localstripe_url, ids["A"])["amount"] == 45_000
    assert wallet_of(a.id) == {"currency": "EUR", "balance": 0, "held": 0, "available": 0}  # nothing on the wallet
    assert len(holds_at_stripe(localstripe_url)) == 3
    bid(pool, (100, 750), capacity=200)

    resp = api.post(
        f"/api/v1/pools/{pool.id}/close", token=token_for(organizer), headers={"Idempotency-Key": "close-1"}
    )
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["award"]["total"] == 120 * 750
    # After the response the captures ran (the close committed first).
    for name, expected in [("A", "captured"), ("C", "captured"), ("D", "canceled")]:
        assert auth_status(ids[name]) == expected, name
    a_intent, c_intent, d_intent = (intent_of(localstripe_url, ids[n]) for n in "ACD")
    assert a_intent["status"] == "succeeded"
    assert c_intent["status"] == "succeeded"
    assert d_intent["status"] == "canceled"
    # A was authorized for 450.00 and charged 50 x 7.50: localstripe keeps the charge at 450.00 and refunds 75.00.
    refunds = stripe_client(localstripe_url).v1.refunds.list(params={"limit": 10}).data
    assert [(r.amount, r.charge) for r in refunds] == [(7_500, a_intent["latest_charge"]["id"])]
    assert authorizations.latest_for_pledge(ids["A"]).captured_amount == 37_500
    assert holds_at_stripe(localstripe_url) == []
    assert account_balance(f"pool:{pool.id}:escrow:EUR") == 90_000  # 375 + 300 (wallet) + 225
    assert external_postings() == [32_000, 37_500, 22_500]
    assert entries_of_kind("card_capture") == 2
    pledges_now = {
        p["id"]: p for p in api.get(f"/api/v1/pools/{pool.id}/pledges", token=token_for(organizer)).get_json()
    }
    assert [pledges_now[ids[n]]["status"] for n in "ABCD"] == ["filled", "filled", "filled", "released"]
    assert [pledges_now[ids[n]]["charged_amount"] for n in "ABCD"] == [37_500, 30_000, 22_500, 0]

    assert reconcile_configured().differences == []  # a partial capture reconciles too
    supplier_id = resp.get_json()["award"]["supplier_id"]
    pools.confirm_delivery(pool.id, supplier_id)
    assert wallet_of(supplier_id)["balance"] == 90_000 - 900
    assert_ledger_invariants()


def test_a_failed_pool_cancels_every_card_hold(stripe_app, api, localstripe_url):
    organizer, pool = open_pool(min_volume=1_000)
    members = [make_member() for _ in range(3)]
    ids = [pledge(api, m, pool, 10, 500).get_json()["id"] for m in members]
    bid(pool, (10, 400))
    assert len(holds_at_stripe(localstripe_url)) == 3
    closed = pools.close_pool(pool.id, organizer.id)
    assert closed.status == "failed"
    assert [auth_status(i) for i in ids] == ["canceled"] * 3
    assert holds_at_stripe(localstripe_url) == []
    assert external_postings() == []
    assert_ledger_invariants()


def test_withdrawn_and_cancelled_pool_card_pledges_release_their_holds(stripe_app, api, localstripe_url):
    organizer, pool = open_pool()
    member, other = make_member(), make_member()
    mine = pledge(api, member, pool, 5, 1_000).get_json()["id"]
    theirs = pledge(api, other, pool, 5, 1_000).get_json()["id"]
    resp = api.delete(f"/api/v1/pools/{pool.id}/pledges/{mine}", token=token_for(member))
    assert resp.get_json()["status"] == "withdrawn"
    assert auth_status(mine) == "canceled"
    assert intent_of(localstripe_url, mine)["status"] == "canceled"
    pools.cancel_pool(pool.id, organizer.id)
    assert auth_status(theirs) == "canceled"
    assert holds_at_stripe(localstripe_url) == []
    assert_ledger_invariants()


# ---------------------------------------------------------------- refusals leave nothing behind


def test_declined_card_pledge_is_402_and_records_nothing(stripe_app, api, localstripe_url):
    _, pool = open_pool()
    member = make_member()
    resp = pledge(api, member, pool, 5, 1_000, card="pm_card_chargeCustomerFail")
    assert_error(resp, 402, "card_declined")
    assert "declined" in resp.get_json()["message"]
    assert db.session.execute(select(func.count(Pledge.id))).scalar_one() == 0
    assert holds_at_stripe(localstripe_url) == []


def test_a_card_that_needs_3d_secure_cannot_back_a_pledge(stripe_app, api, localstripe_url):
    _, pool = open_pool()
    resp = pledge(api, make_member(), pool, 5, 1_000, card=card_method(localstripe_url, THREE_D_SECURE_CARD))
    assert_error(resp, 409, "card_authentication_required")
    assert db.session.execute(select(func.count(Pledge.id))).scalar_one() == 0
    intents = stripe_client(localstripe_url).v1.payment_intents.list(params={"limit": 10}).data
    assert [i.status for i in intents] == ["canceled"]


def test_bad_card_pledge_bodies_are_422(stripe_app, api):
    _, pool = open_pool()
    member = make_member()
    for extra in ({"funding": "cash"}, {"funding": "wallet", "payment_method": "pm_card_visa"}, {"payment_method": ""}):
        resp = pledge(api, member, pool, 5, 1_000, card=None, **extra)
        assert_error(resp, 422, "validation_error")
    assert db.session.execute(select(func.count(Pledge.id))).scalar_one() == 0


def test_a_pool_that_closes_while_the_card_is_authorized_gives_the_hold_back(
    stripe_app, api, localstripe_url, monkeypatch
):
    organizer, pool = open_pool()
    real = StripeProvider.authorize

    def authorize_then_the_pool_closes(self, **kwargs):
        result = real(self, **kwargs)
        pools.cancel_pool(pool.id, organizer.id)  # another request wins the race meanwhile
        return result

    monkeypatch.setattr(StripeProvider, "authorize", authorize_then_the_pool_closes)
    resp = pledge(api, make_member(), pool, 5, 1_000)
    assert_error(resp, 409, "pool_not_open")
    assert holds_at_stripe(localstripe_url) == []
    assert db.session.execute(select(func.count(CardAuthorization.id))).scalar_one() == 0


# ---------------------------------------------------------------- the 7-day rule


def test_an_authorization_that_expires_before_the_deadline_is_flagged(stripe_app, api):
    _, pool = open_pool(days=10)
    member = make_member()
    pledge(api, member, pool, 2, 1_000)
    (message,) = notes(member, "card_authorization_expiring")
    assert "Re-authorize your card after" in message and "switch the pledge to wallet funds" in message
    (listed,) = api.get("/api/v1/wallet/card-authorizations", token=token_for(member)).get_json()
    assert (listed["status"], listed["amount"], listed["expires_before_deadline"]) == ("authorized", 2_000, True)
    run_due()
    assert len(notes(member, "card_authorization_expiring")) == 1  # told once
    _, short = open_pool(days=3)
    pledge(api, member, short, 1, 500)
    assert len(notes(member, "card_authorization_expiring")) == 1  # this one lasts until its pool closes
    assert_ledger_invariants()


def test_reauthorizing_replaces_the_hold(stripe_app, api, localstripe_url):
    _, pool = open_pool(days=10)
    member = make_member()
    pledge_id = pledge(api, member, pool, 2, 1_000).get_json()["id"]
    old = authorizations.latest_for_pledge(pledge_id)
    set_clock(now() + timedelta(days=4))
    resp = api.post(
        f"/api/v1/wallet/card-authorizations/{old.id}/reauthorize",
        {},
        token=token_for(member),
        headers={"Idempotency-Key": "reauth-1"},
    )
    assert resp.status_code == 201, resp.get_json()
    fresh = resp.get_json()
    assert fresh["id"] != old.id and fresh["status"] == "authorized"
    assert fresh["expires_before_deadline"] is False  # 4 + 7 days reach past the 10-day deadline
    db.session.expire_all()
    assert db.session.get(CardAuthorization, old.id).status == "canceled"
    assert holds_at_stripe(localstripe_url) == [db.session.get(CardAuthorization, fresh["id"]).intent_id]
    # a cancelled one cannot be re-authorized again
    again = api.post(f"/api/v1/wallet/card-authorizations/{old.id}/reauthorize", {}, token=token_for(member))
    assert_error(again, 409)
    other = make_member()
    assert_error(
        api.post(f"/api/v1/wallet/card-authorizations/{fresh['id']}/reauthorize", {}, token=token_for(other)), 404
    )
    assert_ledger_invariants()


def test_switching_to_wallet_funds_cancels_the_card_hold(stripe_app, api, localstripe_url):
    _, pool = open_pool(days=10)
    member = make_member(funds={"EUR": 5_000})
    pledge_id = pledge(api, member, pool, 3, 1_000).get_json()["id"]
    auth = authorizations.latest_for_pledge(pledge_id)
    resp = api.post(f"/api/v1/wallet/card-authorizations/{auth.id}/switch-to-wallet", token=token_for(member))
    assert resp.status_code == 200, resp.get_json()
    assert (resp.get_json()["funding"], resp.get_json()["status"]) == ("wallet", "active")
    assert wallet_of(member.id)["held"] == 3_000
    assert auth_status(pledge_id) == "canceled"
    assert holds_at_stripe(localstripe_url) == []
    poor = make_member()
    poor_pledge = pledge(api, poor, pool, 3, 1_000).get_json()["id"]
    poor_auth = authorizations.latest_for_pledge(poor_pledge)
    resp = api.post(f"/api/v1/wallet/card-authorizations/{poor_auth.id}/switch-to-wallet", token=token_for(poor))
    assert_error(resp, 409, "insufficient_funds")
    assert auth_status(poor_pledge) == "authorized"  # nothing changed
    assert_ledger_invariants()


def test_the_sweep_moves_expired_authorizations_to_wallet_funds_or_withdraws_the_pledge(
    stripe_app, api, localstripe_url
):
    _, pool = open_pool(days=10)
    rich, poor = make_member(funds={"EUR": 10_000}), make_member()
    rich_pledge = pledge(api, rich, pool, 4, 1_000).get_json()["id"]
    poor_pledge = pledge(api, poor, pool, 4, 1_000).get_json()["id"]
    set_clock(now() + timedelta(days=7))
    report = run_due()["jobs"]["card_authorizations"]
    assert (report["lapsed"], report["canceled"]) == (2, 2)
    db.session.expire_all()
    assert (db.session.get(Pledge, rich_pledge).funding, db.session.get(Pledge, rich_pledge).status) == (
        "wallet",
        "active",
    )
    assert wallet_of(rich.id)["held"] == 4_000
    assert db.session.get(Pledge, poor_pledge).status == "withdrawn"
    assert "holds 40.00 EUR of your wallet instead" in notes(rich, "card_authorization_lapsed")[0]
    assert "the pledge was withdrawn" in notes(poor, "card_authorization_lapsed")[0]
    assert holds_at_stripe(localstripe_url) == []
    assert_ledger_invariants()


def test_stripe_cancelling_a_hold_is_handled_like_an_expiry(stripe_app, api, client, localstripe_url):
    _, pool = open_pool()
    member = make_member()
    pledge_id = pledge(api, member, pool, 2, 1_000).get_json()["id"]
    auth = authorizations.latest_for_pledge(pledge_id)
    stripe_client(localstripe_url).v1.payment_intents.cancel(auth.intent_id)  # expired at Stripe after 7 days
    answer = deliver(client, intent_event(localstripe_url, auth.intent_id, "payment_intent.canceled")).get_json()
    assert answer == {"received": True, "handled": True, "authorization_id": auth.id, "status": "canceled"}
    db.session.expire_all()
    assert db.session.get(Pledge, pledge_id).status == "withdrawn"
    assert_ledger_invariants()


class StripeCaptureRules(stripe.RequestsClient):
    """Stripe refuses to capture a PaymentIntent that is not ``requires_capture``; localstripe captures even a
    cancelled one. This transport answers such a capture as Stripe does (HTTP 400)."""

    def request(self, method, url, headers, post_data=None):
        if method.lower() == "post" and url.endswith("/capture"):
            intent_url = url[: -len("/capture")]
            content, status, response_headers = super().request("get", intent_url, headers)
            state = json.loads(content).get("status")
            if state != "requires_capture":
                error = {
                    "type": "invalid_request_error",
                    "code": "payment_intent_unexpected_state",
                    "message": f"This PaymentIntent could not be captured because it has a status of {state}.",
                }
                return json.dumps({"error": error}).encode(), 400, response_headers
        return super().request(method, url, headers, post_data)


def test_a_capture_the_card_refuses_is_paid_from_the_wallet_or_blocks_delivery(stripe_app, api, localstripe_url):
    organizer, pool = open_pool(min_volume=10)
    payer, broke = make_member(funds={"EUR": 50_000}), make_member()
    payer_pledge = pledge(api, payer, pool, 5, 1_000).get_json()["id"]
    broke_pledge = pledge(api, broke, pool, 5, 1_000).get_json()["id"]
    supplier = bid(pool, (10, 1_000))
    for pledge_id in (payer_pledge, broke_pledge):  # both holds vanish at Stripe before the close
        stripe_client(localstripe_url).v1.payment_intents.cancel(authorizations.latest_for_pledge(pledge_id).intent_id)
    with stripe_transport(StripeCaptureRules()):
        pools.close_pool(pool.id, organizer.id)
    assert auth_status(payer_pledge) == auth_status(broke_pledge) == "capture_failed"
    assert wallet_of(payer.id)["balance"] == 45_000  # paid from the wallet instead
    assert "paid from your wallet instead" in notes(payer, "card_capture_failed")[0]
    assert "does not cover it" in notes(broke, "card_capture_failed")[0]
    assert account_balance(f"pool:{pool.id}:escrow:EUR") == 5_000
    resp = api.post(f"/api/v1/pools/{pool.id}/delivery", token=token_for(supplier))
    assert_error(resp, 409, "payments_pending")
    assert_ledger_invariants()


# ---------------------------------------------------------------- no hold is ever leaked


def test_the_sweep_leaves_no_hold_behind(stripe_app, api, localstripe_url, monkeypatch):
    """Holds that escaped every normal path (Stripe down while cancelling, a crash before the pledge was
    recorded) are cancelled by run-due; afterwards Stripe holds exactly the active card pledges' authorizations."""
    monkeypatch.setattr(authorizations, "ORPHAN_GRACE", timedelta(0))
    organizer, pool = open_pool()
    members = [make_member() for _ in range(5)]
    pledge_ids = [pledge(api, m, pool, 3, 1_000).get_json()["id"] for m in members]
    assert holds_at_stripe(localstripe_url) == live_authorizations()
    assert len(holds_at_stripe(localstripe_url)) == 5

    # 1. Two members withdraw while Stripe is unreachable: the cancellations wait (cancel_due).
    with stripe_settings(stripe_app, STRIPE_API_BASE=f"http://127.0.0.1:{free_port()}"):
        for member, pledge_id in zip(members[:2], pledge_ids[:2], strict=True):
            resp = api.delete(f"/api/v1/pools/{pool.id}/pledges/{pledge_id}", token=token_for(member))
            assert resp.status_code == 200
    assert [auth_status(p) for p in pledge_ids[:2]] == ["cancel_due", "cancel_due"]
    # 2. A crash after Stripe authorized, before the pledge was recorded: a hold nobody tracks.
    orphan = StripeProvider.from_config(stripe_app.config).authorize(
        amount=777,
        currency="EUR",
        member_id=members[2].id,
        payment_method="pm_card_visa",
        metadata={"pool_id": str(pool.id)},
    )
    # 3. A pledge ended by a path that forgot its card (simulated: its status changed behind the service's back).
    db.session.execute(Pledge.__table__.update().where(Pledge.id == pledge_ids[2]).values(status="withdrawn"))
    db.session.commit()
    leaked = set(holds_at_stripe(localstripe_url)) - set(live_authorizations())
    assert len(leaked) == 4 and orphan.reference in leaked

    report = run_due()["jobs"]["card_authorizations"]
    assert (report["canceled"], report["stale"], report["orphans_canceled"]) == (3, 1, 1)
    assert holds_at_stripe(localstripe_url) == live_authorizations()
    assert len(live_authorizations()) == 2  # members 3 and 4 still pledge by card
    assert run_due()["jobs"]["card_authorizations"]["orphans_canceled"] == 0
    assert_ledger_invariants()


def test_young_holds_are_left_alone_while_a_pledge_may_still_be_in_flight(stripe_app, localstripe_url):
    orphan = StripeProvider.from_config(stripe_app.config).authorize(
        amount=500, currency="EUR", member_id=1, payment_method="pm_card_visa", metadata={"pool_id": "1"}
    )
    assert run_due()["jobs"]["card_authorizations"]["orphans_canceled"] == 0
    assert holds_at_stripe(localstripe_url) == [orphan.reference]
    stripe_client(localstripe_url).v1.payment_intents.cancel(orphan.reference)


# ---------------------------------------------------------------- the default app


def test_sandbox_card_pledges_work_offline(api):
    organizer, pool = open_pool(min_volume=10)
    member = make_member()
    resp = pledge(api, member, pool, 10, 1_000)
    assert resp.status_code == 201, resp.get_json()
    bid(pool, (10, 900))
    pools.close_pool(pool.id, organizer.id)
    assert auth_status(resp.get_json()["id"]) == "captured"
    assert account_balance(f"pool:{pool.id}:escrow:EUR") == 9_000
    assert account_balance("external:sandbox:EUR") == 9_000
    assert_ledger_invariants()


@pytest.mark.parametrize("card", ["pm_card_visa"])
def test_a_card_pledge_counts_in_the_pool_like_any_other(stripe_app, api, card):
    _, pool = open_pool()
    pledge(api, make_member(), pool, 7, 1_000, card=card)
    body = api.get(f"/api/v1/pools/{pool.id}", token=token_for(make_member())).get_json()
    assert (body["volume"], body["pledge_count"]) == (7, 1)
