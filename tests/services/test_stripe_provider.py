"""The Stripe provider with the real ``stripe`` library against ``localstripe``.

localstripe (a stateful Stripe-compatible server) runs in a subprocess on a
free 127.0.0.1 port. Its own CLI listens on every interface and pickles its
state to /tmp, so the fixture runs its aiohttp app bound to loopback with the
disk store switched off. The app is the session ``app`` switched to
``PAYMENTS_PROVIDER="stripe"`` for one test at a time.

Test cards as localstripe implements them (resources.py, PaymentMethod):
``pm_card_visa`` succeeds, ``pm_card_chargeCustomerFail`` (4000000000000341)
is declined when charged, 4000002500003155 requires 3-D Secure, which the
test completes through localstripe's ``_authenticate`` endpoint (what
Stripe.js does in a browser). localstripe declines 4000000000000002
(``pm_card_visa_chargeDeclined``) only when it is attached to a customer, not
when charged, so it cannot stand for a declined deposit here.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import pytest
import stripe
from sqlalchemy import func, select

from marketplace.extensions import db
from marketplace.ledger.models import Account, JournalEntry, Posting
from marketplace.payments.models import Payment
from marketplace.payments.stripe_provider import StripeProvider, deposit_status, payout_status
from marketplace.wallet import services as wallet

from ..helpers import make_member, token_for, wallet_of

WEBHOOK_SECRET = "whsec_test"
WEBHOOK_URL = "/payments/stripe/webhook"
THREE_D_SECURE_CARD = "4000002500003155"

_LAUNCHER = """
import sys
from aiohttp import web
from localstripe import resources, server
resources.Store.dump_to_disk = lambda self: None
web.run_app(server.app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(url: str) -> bool:
    request = urllib.request.Request(url + "/v1/balance", headers={"Authorization": "Bearer sk_test_x"})
    try:
        with urllib.request.urlopen(request, timeout=1) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


@contextlib.contextmanager
def running_localstripe():
    """Start localstripe on a free loopback port, yield its URL, stop it; skip if it cannot start."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tempfile.TemporaryFile()
    try:
        process = subprocess.Popen([sys.executable, "-c", _LAUNCHER, str(port)], stdout=log, stderr=log)
    except OSError as exc:
        log.close()
        pytest.skip(f"localstripe could not start: {exc}")
    try:
        deadline = time.monotonic() + 20
        while not _answers(url):
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                output = log.read().decode("utf-8", "replace")[-800:]
                pytest.skip(f"localstripe did not start on {url} (exit code {process.poll()}): {output}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def localstripe_url():
    with running_localstripe() as url:
        yield url


_MISSING = object()


@contextlib.contextmanager
def stripe_settings(app, **settings):
    saved = {key: app.config.get(key, _MISSING) for key in settings}
    app.config.update(settings)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is _MISSING:
                app.config.pop(key, None)
            else:
                app.config[key] = value


def _stripe_config(url: str) -> dict:
    return {
        "PAYMENTS_PROVIDER": "stripe",
        "STRIPE_API_KEY": "sk_test_x",
        "STRIPE_API_BASE": url,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }


@pytest.fixture
def stripe_app(app, localstripe_url):
    """The session app paying through localstripe for this test only."""
    with stripe_settings(app, **_stripe_config(localstripe_url)):
        yield app


def stripe_client(url: str) -> stripe.StripeClient:
    return stripe.StripeClient("sk_test_x", base_addresses={"api": url})


def three_d_secure_method(url: str) -> str:
    card = {"number": THREE_D_SECURE_CARD, "exp_month": 12, "exp_year": 2030, "cvc": "123"}
    return stripe_client(url).v1.payment_methods.create(params={"type": "card", "card": card}).id


def authenticate(url: str, intent_id: str, *, success: bool) -> dict:
    """What Stripe.js does after the cardholder passes (or fails) 3-D Secure, in localstripe's dialect."""
    intent = stripe_client(url).v1.payment_intents.retrieve(intent_id)
    body = json.dumps({"key": "pk_test_x", "client_secret": intent.client_secret, "success": success}).encode()
    request = urllib.request.Request(
        f"{url}/v1/payment_intents/{intent_id}/_authenticate", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def intent_event(url: str, intent_id: str, event_type: str, **overrides) -> bytes:
    """A Stripe event around the intent as localstripe now has it."""
    intent = stripe_client(url).v1.payment_intents.retrieve(intent_id).to_dict(for_json=True)
    intent.update(overrides)
    event = {
        "id": f"evt_{intent_id}_{event_type}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "livemode": False,
        "data": {"object": intent},
    }
    return json.dumps(event).encode()


def signed(payload: bytes, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> dict:
    """Stripe's scheme: t=<unix time>,v1=<hex HMAC-SHA256 over "<t>.<payload>">."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={t},v1={digest}", "Content-Type": "application/json"}


def post_webhook(client, payload: bytes, headers: dict):
    return client.post(WEBHOOK_URL, data=payload, headers=headers)


def deposit_entries() -> int:
    return db.session.execute(select(func.count(JournalEntry.id)).where(JournalEntry.kind == "deposit")).scalar_one()


def external_postings(currency: str = "EUR") -> list[int]:
    """Signed amounts posted to external:stripe:<currency> (> 0 debit)."""
    return list(
        db.session.execute(
            select(Posting.amount)
            .join(Account, Posting.account_id == Account.id)
            .where(Account.code == f"external:stripe:{currency}")
            .order_by(Posting.id)
        ).scalars()
    )


def only_payment() -> Payment:
    db.session.expire_all()
    return db.session.execute(select(Payment)).scalar_one()


def deposit_via_api(api, member, amount: int, payment_method: str | None = None, currency: str = "EUR"):
    body = {"amount": amount, "currency": currency}
    if payment_method:
        body["payment_method"] = payment_method
    return api.post("/api/v1/wallet/deposits", token=token_for(member), json=body)


# --- mapping Stripe's states (pure) -------------------------------------------------


@pytest.mark.parametrize(
    ("intent_status", "expected"),
    [
        ("succeeded", "succeeded"),
        ("requires_action", "pending"),
        ("processing", "pending"),
        ("requires_payment_method", "failed"),
        ("requires_confirmation", "failed"),
        ("canceled", "failed"),
    ],
)
def test_intent_status_decides_the_deposit(intent_status, expected):
    assert deposit_status(intent_status) == expected


@pytest.mark.parametrize(
    ("stripe_status", "expected"),
    [
        ("paid", "succeeded"),
        ("pending", "pending"),
        ("in_transit", "pending"),
        ("failed", "failed"),
        ("canceled", "failed"),
    ],
)
def test_payout_status_decides_the_withdrawal(stripe_status, expected):
    assert payout_status(stripe_status) == expected


def test_provider_is_built_from_the_config_of_each_call(stripe_app, localstripe_url):
    from marketplace.payments.providers import get_provider

    provider = get_provider()
    assert isinstance(provider, StripeProvider)
    assert (provider.api_key, provider.api_base) == ("sk_test_x", localstripe_url)
    with stripe_settings(stripe_app, STRIPE_API_KEY=""), pytest.raises(RuntimeError, match="STRIPE_API_KEY"):
        get_provider()


# --- deposits -----------------------------------------------------------------------


def test_card_deposit_succeeds_and_credits_the_wallet_once(stripe_app, api, client, localstripe_url):
    member = make_member()
    resp = deposit_via_api(api, member, 12_345, "pm_card_visa")
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["status"] == "succeeded"
    assert wallet_of(member.id)["balance"] == 12_345
    payment = only_payment()
    assert (payment.provider, payment.status, payment.amount) == ("stripe", "succeeded", 12_345)
    assert payment.entry_id is not None
    assert external_postings() == [12_345]  # external:stripe:EUR debited

    intent = stripe_client(localstripe_url).v1.payment_intents.retrieve(payment.provider_ref)
    assert (intent.status, intent.amount, intent.currency) == ("succeeded", 12_345, "eur")
    assert intent.metadata["member_id"] == str(member.id)

    # Stripe also sends payment_intent.succeeded for it (maybe twice): nothing more is credited.
    payload = intent_event(localstripe_url, payment.provider_ref, "payment_intent.succeeded")
    for _ in range(2):
        resp = post_webhook(client, payload, signed(payload))
        assert resp.status_code == 200
        assert resp.get_json()["status"] == "succeeded"
    assert wallet_of(member.id)["balance"] == 12_345
    assert deposit_entries() == 1


def test_deposit_without_payment_method_uses_the_test_card_in_test_mode(stripe_app, localstripe_url):
    member = make_member()
    payment = wallet.deposit(member.id, 500, "GBP")
    assert payment.status == "succeeded"
    intent = stripe_client(localstripe_url).v1.payment_intents.retrieve(payment.provider_ref)
    assert (intent.amount, intent.currency, intent.status) == (500, "gbp", "succeeded")
    assert wallet_of(member.id, "GBP")["balance"] == 500


def test_live_mode_deposit_needs_a_payment_method(stripe_app, api):
    member = make_member()
    with stripe_settings(stripe_app, STRIPE_API_KEY="sk_live_x"):
        resp = deposit_via_api(api, member, 1_000)
    assert resp.status_code == 422
    assert "payment_method" in resp.get_json()["errors"]
    assert db.session.execute(select(func.count(Payment.id))).scalar_one() == 0


def test_declined_card_fails_the_deposit_and_credits_nothing(stripe_app, api, localstripe_url):
    member = make_member()
    resp = deposit_via_api(api, member, 7_000, "pm_card_chargeCustomerFail")
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["status"] == "failed"
    payment = only_payment()
    assert (payment.status, payment.entry_id) == ("failed", None)
    assert payment.settled_at is not None
    assert wallet_of(member.id)["balance"] == 0
    assert deposit_entries() == 0
    assert external_postings() == []
    intent = stripe_client(localstripe_url).v1.payment_intents.retrieve(payment.provider_ref)
    assert intent.status == "requires_payment_method"
    assert intent.last_payment_error.code == "card_declined"


def test_unknown_payment_method_is_422_and_records_nothing(stripe_app, api):
    member = make_member()
    resp = deposit_via_api(api, member, 1_000, "pm_does_not_exist")
    assert resp.status_code == 422
    assert resp.get_json()["reason"] == "validation_error"
    assert "payment_method" in resp.get_json()["errors"]
    assert db.session.execute(select(func.count(Payment.id))).scalar_one() == 0


def test_unreachable_stripe_is_503_and_records_nothing(stripe_app, api):
    member = make_member()
    with stripe_settings(stripe_app, STRIPE_API_BASE=f"http://127.0.0.1:{_free_port()}"):
        resp = deposit_via_api(api, member, 1_000, "pm_card_visa")
    assert resp.status_code == 503
    assert resp.get_json()["reason"] == "provider_unavailable"
    assert db.session.execute(select(func.count(Payment.id))).scalar_one() == 0
    assert wallet_of(member.id)["balance"] == 0


# --- pending deposits and the webhook ----------------------------------------------


def pending_deposit(api, url: str, amount: int = 4_200):
    member = make_member()
    resp = deposit_via_api(api, member, amount, three_d_secure_method(url))
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["status"] == "pending"
    payment = only_payment()
    assert payment.status == "pending"
    assert stripe_client(url).v1.payment_intents.retrieve(payment.provider_ref).status == "requires_action"
    return member, payment


def test_pending_deposit_is_credited_by_the_signed_webhook_exactly_once(stripe_app, api, client, localstripe_url):
    member, payment = pending_deposit(api, localstripe_url)
    assert wallet_of(member.id)["balance"] == 0
    assert deposit_entries() == 0

    assert authenticate(localstripe_url, payment.provider_ref, success=True)["status"] == "succeeded"
    payload = intent_event(localstripe_url, payment.provider_ref, "payment_intent.succeeded")
    resp = post_webhook(client, payload, signed(payload))
    assert resp.status_code == 200
    assert resp.get_json() == {"received": True, "handled": True, "payment_id": payment.id, "status": "succeeded"}
    assert wallet_of(member.id)["balance"] == 4_200
    assert external_postings() == [4_200]

    # Replays (same delivery, or re-signed later) credit nothing more.
    post_webhook(client, payload, signed(payload))
    resp = post_webhook(client, payload, signed(payload, timestamp=int(time.time()) + 1))
    assert resp.status_code == 200
    # A stray failure afterwards does not undo it.
    failed = intent_event(localstripe_url, payment.provider_ref, "payment_intent.payment_failed")
    assert post_webhook(client, failed, signed(failed)).get_json()["status"] == "succeeded"
    assert wallet_of(member.id)["balance"] == 4_200
    assert deposit_entries() == 1
    assert only_payment().status == "succeeded"


def test_failed_authentication_fails_the_pending_deposit(stripe_app, api, client, localstripe_url):
    member, payment = pending_deposit(api, localstripe_url)
    assert authenticate(localstripe_url, payment.provider_ref, success=False)["status"] == "requires_payment_method"
    payload = intent_event(localstripe_url, payment.provider_ref, "payment_intent.payment_failed")
    resp = post_webhook(client, payload, signed(payload))
    assert resp.status_code == 200
    assert resp.get_json()["status"] == "failed"
    # A late success for a deposit already failed is not credited (it is logged for the operators).
    late = intent_event(localstripe_url, payment.provider_ref, "payment_intent.succeeded")
    assert post_webhook(client, late, signed(late)).get_json()["status"] == "failed"
    assert only_payment().status == "failed"
    assert wallet_of(member.id)["balance"] == 0
    assert deposit_entries() == 0


def test_bad_signatures_are_400_and_change_nothing(stripe_app, api, client, localstripe_url):
    member, payment = pending_deposit(api, localstripe_url)
    authenticate(localstripe_url, payment.provider_ref, success=True)
    payload = intent_event(localstripe_url, payment.provider_ref, "payment_intent.succeeded")
    tampered = payload.replace(b'"amount": 4200', b'"amount": 4201')
    assert tampered != payload
    attempts = [
        signed(payload, secret="whsec_wrong"),
        {**signed(payload), "Stripe-Signature": "t=1,v1=" + "0" * 64},
        {"Content-Type": "application/json"},
        signed(payload, timestamp=int(time.time()) - 3600),  # outside Stripe's 5-minute tolerance
    ]
    for headers in attempts:
        resp = post_webhook(client, payload, headers)
        assert resp.status_code == 400, headers
        assert resp.get_json()["reason"] == "bad_signature"
    resp = post_webhook(client, tampered, signed(payload))
    assert resp.status_code == 400
    assert only_payment().status == "pending"
    assert wallet_of(member.id)["balance"] == 0
    # The genuine delivery still works afterwards.
    assert post_webhook(client, payload, signed(payload)).status_code == 200
    assert wallet_of(member.id)["balance"] == 4_200


def test_webhook_for_a_deposit_not_recorded_yet_asks_stripe_to_retry(stripe_app, client):
    ours = {"id": "pi_notyet", "object": "payment_intent", "amount": 100, "currency": "eur"}
    ours["metadata"] = {"purpose": "wallet_deposit", "member_id": "1"}
    payload = json.dumps({"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": ours}}).encode()
    assert post_webhook(client, payload, signed(payload)).status_code == 404

    foreign = {**ours, "id": "pi_foreign", "metadata": {}}
    payload = json.dumps({"id": "evt_2", "type": "payment_intent.succeeded", "data": {"object": foreign}}).encode()
    resp = post_webhook(client, payload, signed(payload))
    assert (resp.status_code, resp.get_json()["handled"]) == (200, False)

    other = json.dumps({"id": "evt_3", "type": "customer.created", "data": {"object": {"id": "cus_1"}}}).encode()
    assert post_webhook(client, other, signed(other)).get_json() == {"received": True, "handled": False}


def test_webhook_with_another_amount_is_not_applied(stripe_app, api, client, localstripe_url):
    member, payment = pending_deposit(api, localstripe_url)
    authenticate(localstripe_url, payment.provider_ref, success=True)
    payload = intent_event(localstripe_url, payment.provider_ref, "payment_intent.succeeded", amount=999_999)
    resp = post_webhook(client, payload, signed(payload))
    assert (resp.status_code, resp.get_json()["handled"]) == (200, False)
    assert only_payment().status == "pending"
    assert wallet_of(member.id)["balance"] == 0


def test_webhook_without_a_configured_secret_is_503(stripe_app, client):
    payload = b'{"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": {}}}'
    with stripe_settings(stripe_app, STRIPE_WEBHOOK_SECRET=""):
        assert post_webhook(client, payload, signed(payload)).status_code == 503


@pytest.mark.no_ledger_check  # checked at the end of the test, once the server thread is gone
def test_localstripe_delivers_a_webhook_that_the_app_accepts(app, api):
    """localstripe signs and POSTs its own payment_intent.succeeded to the app served on loopback."""
    from werkzeug.serving import make_server

    from ..helpers import assert_ledger_invariants

    with running_localstripe() as url, stripe_settings(app, **_stripe_config(url)):
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            hook = {"url": f"http://127.0.0.1:{server.server_port}{WEBHOOK_URL}", "secret": WEBHOOK_SECRET}
            hook["events"] = ["payment_intent.succeeded"]
            request = urllib.request.Request(
                f"{url}/_config/webhooks/marketplace", data=json.dumps(hook).encode(), method="POST"
            )
            request.add_header("Content-Type", "application/json")
            urllib.request.urlopen(request, timeout=5).close()

            member, payment = pending_deposit(api, url, amount=3_300)
            member_id, intent_id = member.id, payment.provider_ref
            db.session.remove()
            authenticate(url, intent_id, success=True)
            deadline = time.monotonic() + 20
            while only_payment().status == "pending" and time.monotonic() < deadline:
                db.session.remove()
                time.sleep(0.2)
        finally:
            server.shutdown()
            thread.join(timeout=10)
    assert only_payment().status == "succeeded"
    assert wallet_of(member_id)["balance"] == 3_300
    assert deposit_entries() == 1
    db.session.remove()
    assert_ledger_invariants()


# --- withdrawals --------------------------------------------------------------------


def test_withdrawal_creates_a_payout_and_debits_the_wallet(stripe_app, api, localstripe_url):
    member = make_member(funds={"EUR": 10_000})  # deposited through localstripe
    resp = api.post("/api/v1/wallet/withdrawals", token=token_for(member), json={"amount": 2_500, "currency": "EUR"})
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["status"] == "pending"  # Stripe pays out later (payout.paid)
    assert wallet_of(member.id)["balance"] == 7_500
    assert external_postings() == [10_000, -2_500]
    withdrawal = db.session.execute(select(Payment).where(Payment.direction == "withdrawal")).scalar_one()
    payout = stripe_client(localstripe_url).v1.payouts.retrieve(withdrawal.provider_ref)
    assert (payout.amount, payout.currency, payout.status) == (2_500, "eur", "pending")
    assert payout.metadata["member_id"] == str(member.id)
    assert payout.metadata["purpose"] == "wallet_withdrawal"


def test_refused_payout_rolls_the_withdrawal_back(stripe_app, api):
    # localstripe pays out only in EUR, so a GBP payout is refused (400) as Stripe refuses one it cannot make.
    member = make_member(funds={"GBP": 5_000})
    resp = api.post("/api/v1/wallet/withdrawals", token=token_for(member), json={"amount": 1_000, "currency": "GBP"})
    assert resp.status_code == 409
    assert resp.get_json()["reason"] == "payout_failed"
    assert wallet_of(member.id, "GBP")["balance"] == 5_000
    assert db.session.execute(select(func.count(Payment.id)).where(Payment.direction == "withdrawal")).scalar_one() == 0
