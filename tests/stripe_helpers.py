"""Helpers that speak Stripe for the tests: localstripe, test cards, signed events, ledger counts.

The fixtures that use them are in tests/stripe_fixtures.py (see there for
what localstripe does not do and how the tests deal with it).
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
import time
import urllib.error
import urllib.request

import pytest
import stripe
from sqlalchemy import func, select

from marketplace.extensions import db
from marketplace.ledger.models import Account, JournalEntry, Posting
from marketplace.payments.models import Payment

WEBHOOK_SECRET = "whsec_test"
WEBHOOK_URL = "/webhooks/stripe"
OLD_WEBHOOK_URL = "/payments/stripe/webhook"
API_KEY = "sk_test_x"
PUBLISHABLE_KEY = "pk_test_x"
THREE_D_SECURE_CARD = "4000002500003155"

_LAUNCHER = """
import sys
from aiohttp import web
from localstripe import resources, server
resources.Store.dump_to_disk = lambda self: None
web.run_app(server.app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(url: str) -> bool:
    request = urllib.request.Request(url + "/v1/balance", headers={"Authorization": f"Bearer {API_KEY}"})
    try:
        with urllib.request.urlopen(request, timeout=1) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


@contextlib.contextmanager
def running_localstripe():
    """Start localstripe on a free loopback port, yield its URL, stop it; skip if it cannot start."""
    port = free_port()
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


def flush_localstripe(url: str) -> None:
    """Forget every object localstripe holds (its ``DELETE /_config/data``): each test starts empty."""
    request = urllib.request.Request(f"{url}/_config/data", method="DELETE")
    urllib.request.urlopen(request, timeout=5).close()


def stripe_config(url: str) -> dict:
    return {
        "PAYMENTS_PROVIDER": "stripe",
        "STRIPE_API_KEY": API_KEY,
        "STRIPE_API_BASE": url,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_PUBLISHABLE_KEY": PUBLISHABLE_KEY,
        "STRIPE_JS_URL": f"{url}/js.stripe.com/v3/",  # localstripe's Stripe.js stand-in
    }


# ---------------------------------------------------------------- talking to localstripe


def stripe_client(url: str) -> stripe.StripeClient:
    return stripe.StripeClient(API_KEY, base_addresses={"api": url})


def card_method(url: str, number: str) -> str:
    card = {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"}
    return stripe_client(url).v1.payment_methods.create(params={"type": "card", "card": card}).id


def three_d_secure_method(url: str) -> str:
    return card_method(url, THREE_D_SECURE_CARD)


def _post_json(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def authenticate(url: str, intent_id: str, *, success: bool) -> dict:
    """What Stripe.js does after the cardholder passes (or fails) 3-D Secure, in localstripe's dialect."""
    intent = stripe_client(url).v1.payment_intents.retrieve(intent_id)
    body = {"key": PUBLISHABLE_KEY, "client_secret": intent.client_secret, "success": success}
    return _post_json(f"{url}/v1/payment_intents/{intent_id}/_authenticate", body)


def browser_card_token(url: str, number: str = "4242424242424242") -> str:
    """What localstripe's Stripe.js stand-in does for ``stripe.createToken(card)``: POST /v1/tokens with the
    publishable key (form-encoded, as the script sends it)."""
    fields = {
        "card[number]": number,
        "card[exp_month]": "12",
        "card[exp_year]": "2030",
        "card[cvc]": "123",
        "key": PUBLISHABLE_KEY,
        "payment_user_agent": "localstripe",
    }
    data = "&".join(f"{k}={v}" for k, v in fields.items()).encode()
    request = urllib.request.Request(
        f"{url}/v1/tokens", data=data, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())["id"]


def intents_of(url: str, member_id: int) -> list[dict]:
    """The member's PaymentIntents at localstripe (by our metadata)."""
    client = stripe_client(url)
    return [
        intent.to_dict()
        for intent in client.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter()
        if intent.to_dict().get("metadata", {}).get("member_id") == str(member_id)
    ]


# ---------------------------------------------------------------- webhooks, as Stripe delivers them


def event_payload(event_type: str, obj: dict, *, event_id: str | None = None) -> bytes:
    event = {
        "id": event_id or f"evt_{obj.get('id', 'x')}_{event_type}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "livemode": False,
        "api_version": "2024-06-20",
        "data": {"object": obj},
    }
    return json.dumps(event).encode()


def intent_event(url: str, intent_id: str, event_type: str, *, event_id: str | None = None, **overrides) -> bytes:
    """A Stripe event around the intent as localstripe now has it."""
    intent = stripe_client(url).v1.payment_intents.retrieve(intent_id).to_dict(for_json=True)
    intent.update(overrides)
    return event_payload(event_type, intent, event_id=event_id)


def signed(payload: bytes, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> dict:
    """Stripe's scheme: t=<unix time>,v1=<hex HMAC-SHA256 over "<t>.<payload>">."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={t},v1={digest}", "Content-Type": "application/json"}


def post_webhook(client, payload: bytes, headers: dict, url: str = WEBHOOK_URL):
    return client.post(url, data=payload, headers=headers)


def deliver(client, payload: bytes, url: str = WEBHOOK_URL):
    """Deliver a correctly signed event; the app's answer."""
    return post_webhook(client, payload, signed(payload), url)


# ---------------------------------------------------------------- what the ledger and tables say


def entries_of_kind(kind: str) -> int:
    return db.session.execute(select(func.count(JournalEntry.id)).where(JournalEntry.kind == kind)).scalar_one()


def deposit_entries() -> int:
    return entries_of_kind("deposit")


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


def account_balance(code: str) -> int:
    db.session.expire_all()
    account = db.session.execute(select(Account).where(Account.code == code)).scalar_one_or_none()
    return account.balance if account is not None else 0


def only_payment(direction: str | None = None) -> Payment:
    db.session.expire_all()
    query = select(Payment)
    if direction:
        query = query.where(Payment.direction == direction)
    return db.session.execute(query).scalar_one()


def payment_count() -> int:
    return db.session.execute(select(func.count(Payment.id))).scalar_one()


class IdempotentTransport(stripe.RequestsClient):
    """Stripe's own idempotency, which localstripe lacks: a POST with a key seen before gets the first answer.

    Records every request's method, path and Idempotency-Key in ``calls``.
    """

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[str, str, str | None]] = []
        self._answers: dict[str, tuple] = {}

    def request(self, method, url, headers, post_data=None):
        key = (headers or {}).get("Idempotency-Key")
        self.calls.append((method.upper(), url.split("?")[0], key))
        if method.lower() == "post" and key and key in self._answers:
            return self._answers[key]
        answer = super().request(method, url, headers, post_data)
        if method.lower() == "post" and key:
            self._answers[key] = answer
        return answer


@contextlib.contextmanager
def stripe_transport(transport: stripe.RequestsClient):
    """Route the app's Stripe clients through ``transport`` (the real stripe library, another HTTP client)."""
    from marketplace.payments.stripe_provider import StripeProvider

    original = StripeProvider._client

    def client(self):
        kwargs = {"base_addresses": {"api": self.api_base.rstrip("/")}} if self.api_base else {}
        return stripe.StripeClient(self.api_key, http_client=transport, max_network_retries=0, **kwargs)

    StripeProvider._client = client
    try:
        yield transport
    finally:
        StripeProvider._client = original
