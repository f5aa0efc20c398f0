"""Operators' payment pages: the manual payout queue and the Stripe reconciliation.

Routes on the operators blueprint (``/ops``), so ``require_operator`` guards
them. Approving or rejecting a payout is audited by the payouts service.
"""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user

from ..accounts.models import Member
from ..errors import DomainError
from ..extensions import db
from ..i18n import format_money
from ..payments import payouts
from .forms import PayoutDecisionForm
from .views import _ip, bp


@bp.get("/payouts")
def payouts_queue():
    queued = payouts.queued_parts()
    recent = payouts.recent_manual_parts()
    members = {m.id: m for m in db.session.query(Member).filter(Member.id.in_({p.member_id for p in queued + recent}))}
    return render_template(
        "operators/payouts.html",
        queued=queued,
        recent=recent,
        members=members,
        form=PayoutDecisionForm(),
    )


@bp.post("/payouts/<int:part_id>/approve")
def payout_approve(part_id: int):
    form = PayoutDecisionForm()
    if not form.validate_on_submit():
        flash(_("The form expired; please try again."), "danger")
        return redirect(url_for("operators.payouts_queue"))
    try:
        part = payouts.approve_payout(part_id, current_user.id, ip=_ip())
    except DomainError as exc:
        flash(_("Payout %(id)s was not approved: %(reason)s", id=part_id, reason=exc.localized()), "danger")
        return redirect(url_for("operators.payouts_queue"))
    shown = format_money(part.amount, part.currency)
    if part.status == "paid":
        flash(_("Payout %(id)s of %(amount)s is paid.", id=part.id, amount=shown), "success")
    elif part.status == "sent":
        flash(
            _(
                "Payout %(id)s of %(amount)s is on its way; it is settled when the provider confirms it.",
                id=part.id,
                amount=shown,
            ),
            "info",
        )
    else:
        flash(
            _(
                "The provider refused payout %(id)s of %(amount)s: %(reason)s",
                id=part.id,
                amount=shown,
                reason=part.failure_message,
            ),
            "danger",
        )
    return redirect(url_for("operators.payouts_queue"))


@bp.post("/payouts/<int:part_id>/reject")
def payout_reject(part_id: int):
    form = PayoutDecisionForm()
    if not form.validate_on_submit():
        problems = "; ".join(message for messages in form.errors.values() for message in messages)
        flash(_("Nothing changed: %(problems)s", problems=problems or _("the form expired")), "danger")
        return redirect(url_for("operators.payouts_queue"))
    try:
        part = payouts.reject_payout(part_id, current_user.id, reason=form.reason.data or "", ip=_ip())
    except DomainError as exc:
        flash(_("Payout %(id)s was not rejected: %(reason)s", id=part_id, reason=exc.localized()), "danger")
        return redirect(url_for("operators.payouts_queue"))
    flash(
        _(
            "Payout %(id)s was rejected; %(amount)s is back in the wallet.",
            id=part.id,
            amount=format_money(part.amount, part.currency),
        ),
        "success",
    )
    return redirect(url_for("operators.payouts_queue"))


@bp.get("/reconciliation")
def reconciliation():
    """Stripe against the ledger, computed on every visit (read-only; it asks Stripe)."""
    from ..payments.providers import ProviderUnavailable
    from ..payments.reconcile import reconcile_configured

    report, problem, status = None, None, 200
    try:
        report = reconcile_configured()
    except RuntimeError:
        problem = _(
            "Payments do not go through Stripe here (set %(setting)s and %(key)s).",
            setting="MARKETPLACE_PAYMENTS=stripe",
            key="STRIPE_API_KEY",
        )
    except (ProviderUnavailable, DomainError) as exc:
        problem, status = _("Stripe could not be asked: %(reason)s", reason=exc.localized()), 503
    return render_template("operators/reconciliation.html", report=report, problem=problem), status
