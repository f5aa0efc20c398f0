"""Reconciliation: what the ledger says came in and went out through Stripe, against Stripe's own objects.

Per PaymentIntent, the money that stayed at Stripe (captured, less every
refund of its charge) must equal what the ledger holds for it (deposits
credited and card pledges captured, less the refunds it paid out). Every
refund and payout the ledger settled must exist at Stripe with the same
amount and a final status, and every Stripe refund or payout made for a
withdrawal must be one the ledger knows. Every card hold Stripe still has
must back a live authorization of ours (a hold nobody tracks is leaked).
Finally, the ledger's ``external:stripe:<currency>`` balance must equal the
sum of those records, so no entry moved "Stripe money" without a Stripe
object behind it.

Stripe reports a partial capture as ``amount_received``; a server that
keeps the full charge amount and adds a refund of the released rest gives
the same net per intent, so both are read the same way.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import select

from ..extensions import db
from ..ledger.models import Account
from .models import CardAuthorization, Payment, PayoutPart
from .stripe_provider import StripeProvider

PROVIDER = "stripe"


@dataclass(frozen=True)
class Difference:
    kind: str  # payment_intent | authorization | refund | payout | ledger
    reference: str
    currency: str
    ledger: int | None
    stripe: int | None
    message: str

    def line(self) -> str:
        return (
            f"{self.kind} {self.reference} ({self.currency}): ledger {_shown(self.ledger)}, "
            f"Stripe {_shown(self.stripe)} — {self.message}"
        )


def _shown(value: int | None) -> str:
    return "—" if value is None else str(value)


@dataclass
class Report:
    differences: list[Difference] = field(default_factory=list)
    intents: int = 0
    refunds: int = 0
    payouts: int = 0
    currencies: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not self.differences


# ---------------------------------------------------------------- what the ledger says


@dataclass
class _Ledger:
    intent_in: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    intent_out: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    intent_currency: dict[str, str] = field(default_factory=dict)
    known_intents: set[str] = field(default_factory=set)
    live_holds: dict[str, int] = field(default_factory=dict)
    refunds: dict[str, PayoutPart] = field(default_factory=dict)
    payouts: dict[str, PayoutPart] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def _ledger_side() -> _Ledger:
    book = _Ledger()
    for payment in db.session.execute(
        select(Payment).where(Payment.provider == PROVIDER, Payment.direction == "deposit", Payment.provider_ref != "")
    ).scalars():
        book.known_intents.add(payment.provider_ref)
        book.intent_currency[payment.provider_ref] = payment.currency
        if payment.status == "succeeded":
            book.intent_in[payment.provider_ref] += payment.amount
            book.totals[payment.currency] += payment.amount
    for auth in db.session.execute(select(CardAuthorization).where(CardAuthorization.provider == PROVIDER)).scalars():
        book.known_intents.add(auth.intent_id)
        book.intent_currency[auth.intent_id] = auth.currency
        if auth.status == "captured":
            book.intent_in[auth.intent_id] += auth.captured_amount
            book.totals[auth.currency] += auth.captured_amount
        elif auth.status in ("authorized", "capture_due", "cancel_due"):
            book.live_holds[auth.intent_id] = auth.amount
    for part in db.session.execute(
        select(PayoutPart).where(PayoutPart.provider == PROVIDER, PayoutPart.provider_ref != "")
    ).scalars():
        if part.method == "refund":
            book.refunds[part.provider_ref] = part
            if part.status == "paid":
                book.intent_out[part.source_ref] += part.amount
        else:
            book.payouts[part.provider_ref] = part
        if part.status == "paid":
            book.totals[part.currency] -= part.amount
    return book


def _external_balances() -> dict[str, int]:
    rows = db.session.execute(
        select(Account.currency, Account.balance).where(Account.code.like(f"external:{PROVIDER}:%"))
    ).all()
    return {currency: balance for currency, balance in rows}


# ---------------------------------------------------------------- what Stripe says


def _charge_of(intent: dict, provider: StripeProvider) -> dict | None:
    charge = intent.get("latest_charge")
    if isinstance(charge, dict):
        return charge
    if isinstance(charge, str) and charge:
        return provider.charge(charge)
    return None


def _received(intent: dict, charge: dict | None) -> int:
    """What Stripe captured for the intent (before refunds)."""
    if isinstance(intent.get("amount_received"), int):
        return intent["amount_received"]
    if intent.get("status") != "succeeded" or not charge or not charge.get("captured"):
        return 0
    captured = charge.get("amount_captured")
    return captured if isinstance(captured, int) else charge.get("amount", 0)


def _refunded(charge: dict | None, refunds_by_charge: dict[str, int]) -> int:
    return refunds_by_charge.get(charge.get("id"), 0) if charge else 0


def reconcile(provider: StripeProvider) -> Report:
    report = Report()
    book = _ledger_side()
    intents = provider.all_payment_intents()
    stripe_refunds = provider.all_refunds()
    stripe_payouts = provider.all_payouts()
    report.intents, report.refunds, report.payouts = len(intents), len(stripe_refunds), len(stripe_payouts)
    add = report.differences.append

    refunds_by_charge: dict[str, int] = defaultdict(int)
    for refund in stripe_refunds:
        if refund.get("status") == "succeeded":
            refunds_by_charge[str(refund.get("charge") or "")] += refund.get("amount", 0)

    seen = set()
    for intent in intents:
        intent_id = intent["id"]
        seen.add(intent_id)
        currency = str(intent.get("currency") or "").upper()
        charge = _charge_of(intent, provider)
        stripe_net = _received(intent, charge) - _refunded(charge, refunds_by_charge)
        ledger_net = book.intent_in.get(intent_id, 0) - book.intent_out.get(intent_id, 0)
        if stripe_net != ledger_net:
            known = "" if intent_id in book.known_intents else " (a payment the ledger has no record of)"
            add(Difference("payment_intent", intent_id, currency, ledger_net, stripe_net, "net amounts differ" + known))
        if intent.get("status") == "requires_capture":
            held = book.live_holds.get(intent_id)
            if held is None:
                add(
                    Difference(
                        "authorization", intent_id, currency, None, intent.get("amount"), "card hold not tracked"
                    )
                )
            elif held != intent.get("amount"):
                add(Difference("authorization", intent_id, currency, held, intent.get("amount"), "held amounts differ"))
    for intent_id in sorted(book.known_intents - seen):
        net = book.intent_in.get(intent_id, 0) - book.intent_out.get(intent_id, 0)
        add(Difference("payment_intent", intent_id, book.intent_currency[intent_id], net, None, "missing at Stripe"))

    _check_refunds(book, stripe_refunds, add)
    _check_payouts(book, stripe_payouts, add)
    _check_totals(book, report, add)
    return report


def _check_transfers_out(kind: str, parts: dict, at_stripe_list: list[dict], done: str, add) -> None:
    """Money the ledger sent out through Stripe (``kind`` "refund" or "payout") against Stripe's own list.

    ``parts`` are the ledger's, by Stripe id; ``done`` is the Stripe status
    that means the money has left (a refund's ``succeeded``, a payout's
    ``paid``). Each side's part must be on the other, for the same amount,
    settled on both or on neither; a Stripe one made for a wallet withdrawal
    must be in the ledger.
    """
    at_stripe = {sent["id"]: sent for sent in at_stripe_list}
    for reference, part in sorted(parts.items()):
        sent = at_stripe.get(reference)
        if sent is None:
            add(Difference(kind, reference, part.currency, part.amount, None, "missing at Stripe"))
            continue
        if sent.get("amount") != part.amount:
            add(Difference(kind, reference, part.currency, part.amount, sent.get("amount"), "amounts differ"))
        status = sent.get("status")
        if part.status == "paid" and status != done:
            add(
                Difference(kind, reference, part.currency, part.amount, 0, f"settled in the ledger, {status} at Stripe")
            )
        if part.status == "sent" and status == done:
            verb = "refunded" if kind == "refund" else "paid"
            add(Difference(kind, reference, part.currency, 0, part.amount, f"{verb} at Stripe, not settled yet"))
    for sent in at_stripe_list:
        purpose = (sent.get("metadata") or {}).get("purpose")
        if purpose == "wallet_withdrawal" and sent["id"] not in parts:
            currency = str(sent.get("currency") or "").upper()
            add(
                Difference(kind, sent["id"], currency, None, sent.get("amount"), f"withdrawal {kind} not in the ledger")
            )


def _check_refunds(book: _Ledger, stripe_refunds: list[dict], add) -> None:
    _check_transfers_out("refund", book.refunds, stripe_refunds, "succeeded", add)


def _check_payouts(book: _Ledger, stripe_payouts: list[dict], add) -> None:
    _check_transfers_out("payout", book.payouts, stripe_payouts, "paid", add)


def _check_totals(book: _Ledger, report: Report, add) -> None:
    balances = _external_balances()
    for currency in sorted(set(balances) | set(book.totals)):
        balance, accounted = balances.get(currency, 0), book.totals.get(currency, 0)
        report.currencies[currency] = {"ledger_balance": balance, "accounted": accounted}
        if balance != accounted:
            add(
                Difference(
                    "ledger",
                    f"external:{PROVIDER}:{currency}",
                    currency,
                    balance,
                    accounted,
                    "entries moved Stripe money without a Stripe payment, refund or payout behind them",
                )
            )


def reconcile_configured() -> Report:
    """Reconcile with the app's Stripe settings; RuntimeError if Stripe is not configured."""
    from flask import current_app

    return reconcile(StripeProvider.from_config(current_app.config))
