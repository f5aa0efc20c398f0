"""Browser pages for the wallet: balances, deposit, withdrawal, history."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import login_required

from ..accounts.auth import web_member
from ..errors import DomainError, InsufficientFunds
from ..money import format_amount
from ..templating import page_from_request
from . import services
from .forms import DepositForm, WithdrawalForm

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
        page=page,
    ), status


@bp.get("/wallet")
@login_required
def index():
    return _render()


@bp.post("/wallet/deposit")
@login_required
def deposit():
    form = DepositForm(prefix="deposit")
    if not form.validate_on_submit():
        return _render(deposit_form=form, status=422)
    amount, currency = form.amount.minor_units, form.currency.data
    try:
        payment = services.deposit(web_member().id, amount, currency)
    except DomainError as exc:
        form.amount.errors = [*form.amount.errors, exc.message]
        return _render(deposit_form=form, status=exc.status)
    shown = format_amount(amount, currency)
    if payment.status == "succeeded":
        flash(f"Deposited {shown}. It is in your wallet now.", "success")
    elif payment.status == "pending":
        flash(f"Your deposit of {shown} is pending; it appears here once the payment provider confirms it.", "info")
    else:
        flash(f"The payment provider declined the deposit of {shown}. Nothing was charged.", "danger")
    return redirect(url_for("wallet.index"))


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
        available = format_amount(_available(member_id, currency), currency)
        form.amount.errors = [
            *form.amount.errors,
            f"Not enough money available: you can withdraw at most {available}. "
            "Money held for pledges and lending offers cannot be withdrawn.",
        ]
        return _render(withdrawal_form=form, status=exc.status)
    except DomainError as exc:
        form.amount.errors = [*form.amount.errors, exc.message]
        return _render(withdrawal_form=form, status=exc.status)
    shown = format_amount(amount, currency)
    if payment.status == "succeeded":
        flash(f"Withdrew {shown}. It is on its way to your bank account.", "success")
    else:
        flash(f"Your withdrawal of {shown} is being paid out; it has left your wallet already.", "info")
    return redirect(url_for("wallet.index"))
