"""Browser pages for the wallet: balances, deposit (with Stripe's card form), withdrawal, history."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import login_required

from ..accounts.auth import web_member
from ..errors import DomainError, Forbidden, InsufficientFunds, NotFound
from ..i18n import format_money
from ..payments import authorizations
from ..payments.customers import stored_customer
from ..payments.providers import ProviderUnavailable, get_provider
from ..templating import page_from_request
from . import services
from .forms import NEW_CARD, ActionForm, DepositForm, WithdrawalForm

bp = Blueprint("wallet", __name__)

PER_PAGE = 25


def _available(member_id: int, currency: str) -> int:
    for row in services.balances(member_id):
        if row["currency"] == currency:
            return row["available"]
    return 0


def _render(deposit_form: DepositForm | None = None, withdrawal_form: WithdrawalForm | None = None, status: int = 200):
    member = web_member()
    page = page_from_request(services.count_transactions(member.id), PER_PAGE)
    return render_template(
        "wallet/index.html",
        balances=services.balances(member.id),
        deposit_form=deposit_form or DepositForm(prefix="deposit", formdata=None),
        withdrawal_form=withdrawal_form or WithdrawalForm(prefix="withdraw", formdata=None),
        rows=services.transactions(member.id, limit=page.per_page, offset=page.offset),
        withdrawals=services.recent_withdrawals(member.id),
        card_holds=_card_holds(member.id),
        action_form=ActionForm(),
        page=page,
    ), status


def _card_holds(member_id: int) -> list[dict]:
    """The member's live card authorizations, with whether each outlives its pool's deadline."""
    from ..extensions import db
    from ..pools.models import Pool

    rows = []
    for auth in authorizations.for_member(member_id):
        if auth.status != "authorized":
            continue
        pool = db.session.get(Pool, auth.pool_id)
        rows.append({"auth": auth, "pool": pool, "early": authorizations.expires_before_deadline(auth, pool)})
    return rows


@bp.get("/wallet")
@login_required
def index():
    return _render()


@bp.post("/wallet/card-authorizations/<int:auth_id>/<any(reauthorize, switch):action>")
@login_required
def card_hold(auth_id: int, action: str):
    """Re-authorize a card hold (a new 7 days) or move its pledge to wallet funds."""
    if not ActionForm().validate_on_submit():
        flash(_("The form expired; please try again."), "danger")
        return redirect(url_for("wallet.index"))
    member_id = web_member().id
    try:
        if action == "reauthorize":
            fresh = authorizations.reauthorize(member_id, auth_id)
            flash(
                _(
                    "Your card is authorized again, until %(when)s UTC.",
                    when=f"{fresh.expires_at:%Y-%m-%d %H:%M}",
                ),
                "success",
            )
        else:
            authorizations.switch_to_wallet(member_id, auth_id)
            flash(_("Your pledge now holds wallet funds; the card hold was released."), "success")
    except InsufficientFunds:
        flash(
            _("Your wallet's available balance does not cover this pledge. Deposit first, or re-authorize the card."),
            "danger",
        )
    except (NotFound, Forbidden):
        raise  # another member's card hold: the 403/404 page
    except DomainError as exc:
        flash(exc.localized(), "danger")
    return redirect(url_for("wallet.index"))


# ------------------------------------------------------------------ Stripe.js on our pages


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def card_form_settings() -> dict | None:
    """What the page needs to load Stripe.js (None when payments do not go through Stripe)."""
    config = current_app.config
    if config.get("PAYMENTS_PROVIDER") != "stripe" or not config.get("STRIPE_PUBLISHABLE_KEY"):
        return None
    return {"js_url": config["STRIPE_JS_URL"], "publishable_key": config["STRIPE_PUBLISHABLE_KEY"]}


def _with_stripe_policy(response, settings: dict | None):
    """Let this page load Stripe.js and let it talk to Stripe (every other page keeps the strict policy)."""
    if settings is None:
        return response
    js = _origin(settings["js_url"])
    api = _origin(current_app.config.get("STRIPE_API_BASE") or "") or "https://api.stripe.com"
    response.headers["Content-Security-Policy"] = (
        f"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self' {js}; "
        f"frame-src {js} https://hooks.stripe.com; connect-src 'self' {js} {api}; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'self'"
    )
    return response


def _saved_cards(member_id: int) -> list[dict]:
    customer = stored_customer(member_id)
    if not customer:
        return []
    try:
        return get_provider().saved_cards(customer)
    except (ProviderUnavailable, DomainError):
        return []


def _render_deposit_page(form: DepositForm | None = None, status: int = 200):
    member = web_member()
    settings = card_form_settings()
    form = form or DepositForm(prefix="deposit", formdata=None)
    cards = _saved_cards(member.id) if settings else []
    chosen = form.payment_method.data or (cards[0]["id"] if cards else NEW_CARD)
    html = render_template(
        "wallet/deposit.html",
        form=form,
        stripe=settings,
        cards=cards,
        chosen=chosen,
        provider=current_app.config.get("PAYMENTS_PROVIDER", "sandbox"),
    )
    return _with_stripe_policy(current_app.make_response((html, status)), settings)


@bp.get("/wallet/deposit")
@login_required
def deposit_page():
    return _render_deposit_page()


@bp.get("/wallet/stripe-payment.js")
def stripe_payment_js():
    """The deposit and authentication pages' script (a template, so it stays next to them)."""
    response = current_app.make_response(render_template("wallet/stripe_payment.js"))
    response.mimetype = "text/javascript"
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


def _deposit_error(form: DepositForm, field, message: str, status: int):
    field.errors = [*field.errors, message]
    if form.page.data == "deposit":
        return _render_deposit_page(form, status)
    return _render(deposit_form=form, status=status)


@bp.post("/wallet/deposit")
@login_required
def deposit():
    form = DepositForm(prefix="deposit")
    from_page = form.page.data == "deposit"
    if not form.validate_on_submit():
        return _render_deposit_page(form, 422) if from_page else _render(deposit_form=form, status=422)
    member_id = web_member().id
    amount, currency = form.amount.minor_units, form.currency.data
    method, token = form.payment_method.data or None, form.card_token.data or None
    if method == NEW_CARD:
        if not token:
            message = _("Enter your card details (this needs JavaScript), or choose a saved card.")
            return _deposit_error(form, form.payment_method, message, 422)
        method = None
    elif method:
        token = None
        if method not in {card["id"] for card in _saved_cards(member_id)}:
            return _deposit_error(form, form.payment_method, _("Choose one of your saved cards."), 422)
    try:
        payment = services.deposit(member_id, amount, currency, method, card_token=token)
    except DomainError as exc:
        return _deposit_error(form, form.amount, exc.localized(), exc.status)
    shown = format_money(amount, currency)
    if payment.status == "succeeded":
        flash(_("Deposited %(amount)s. It is in your wallet now.", amount=shown), "success")
    elif payment.status == "pending":
        if card_form_settings() is not None and payment.provider == "stripe":
            return redirect(url_for("wallet.authenticate", payment_id=payment.id))
        flash(
            _(
                "Your deposit of %(amount)s is pending; it appears here once the payment provider confirms it.",
                amount=shown,
            ),
            "info",
        )
    else:
        reason = payment.failure_message or _("The payment provider declined it.")
        flash(
            _(
                "The deposit of %(amount)s did not go through: %(reason)s Nothing was charged.",
                amount=shown,
                reason=reason,
            ),
            "danger",
        )
    return redirect(url_for("wallet.index"))


@bp.get("/wallet/deposits/<int:payment_id>/authenticate")
@login_required
def authenticate(payment_id: int):
    """Finish a card deposit that needs the cardholder (3-D Secure) with Stripe.js."""
    payment = services.get_payment(web_member().id, payment_id)
    settings = card_form_settings()
    if payment.direction != "deposit" or payment.provider != "stripe" or settings is None:
        abort(404)
    if payment.status != "pending":
        done = {"succeeded": _("This deposit is succeeded already."), "failed": _("This deposit is failed already.")}
        flash(done.get(payment.status) or _("This deposit is %(status)s already.", status=payment.status), "info")
        return redirect(url_for("wallet.index"))
    secret = get_provider().client_secret(payment.provider_ref)
    html = render_template("wallet/authenticate.html", payment=payment, stripe=settings, client_secret=secret)
    return _with_stripe_policy(current_app.make_response(html), settings)


# ------------------------------------------------------------------ withdrawals


@bp.post("/wallet/withdraw")
@login_required
def withdraw():
    form = WithdrawalForm(prefix="withdraw")
    if not form.validate_on_submit():
        return _render(withdrawal_form=form, status=422)
    member_id = web_member().id
    amount, currency = form.amount.minor_units, form.currency.data
    try:
        payment = services.withdraw(member_id, amount, currency)
    except InsufficientFunds as exc:
        available = format_money(_available(member_id, currency), currency)
        form.amount.errors = [
            *form.amount.errors,
            _(
                "Not enough money available: you can withdraw at most %(available)s. "
                "Money held for pledges and lending offers cannot be withdrawn.",
                available=available,
            ),
        ]
        return _render(withdrawal_form=form, status=exc.status)
    except DomainError as exc:
        form.amount.errors = [*form.amount.errors, exc.localized()]
        return _render(withdrawal_form=form, status=exc.status)
    shown = format_money(amount, currency)
    if payment.status == "succeeded":
        flash(_("Withdrew %(amount)s. It is on its way to your bank account.", amount=shown), "success")
    else:
        flash(
            _(
                "Your withdrawal of %(amount)s has left your wallet. Refunds to your cards are on their way; "
                "anything they cannot take is paid out by an operator.",
                amount=shown,
            ),
            "info",
        )
    return redirect(url_for("wallet.index"))


@bp.get("/wallet/withdrawals/<int:payment_id>")
@login_required
def withdrawal(payment_id: int):
    payment = services.get_payment(web_member().id, payment_id)
    if payment.direction != "withdrawal":
        abort(404)
    return render_template("wallet/withdrawal.html", payment=payment, parts=services.withdrawal_parts(payment.id))
