"""The borrow page's live preview: monthly payment, total interest, fee, APR and risk grade.

:func:`compute_preview` prices a one-part loan at the borrower's maximum rate.
It serves the JSON endpoint ``GET /borrow/preview`` (:func:`preview_json`), which
``static/js/lending.js`` calls as the form changes and whose ``html`` is
``templates/lending/_preview.html``, and the borrow form's "Preview" button,
which works without JavaScript.
"""

from __future__ import annotations

from flask import current_app, jsonify, render_template, request
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user
from werkzeug.datastructures import MultiDict

from ..accounts.auth import web_member
from ..errors import json_error
from ..i18n import format_money
from ..money import fee as fee_of
from . import amortization, market
from .forms import BorrowForm, bps_text, percent_text
from .grading import reason_row


def compute_preview(member_id: int, *, amount, currency, term_months, max_rate_bps, monthly_income, monthly_debt):
    """One-part loan at the maximum rate: payment, interest, fee, APR, and the member's risk grade."""
    _schedule, rows = amortization.loan_schedule([(amount, max_rate_bps)], term_months)
    fee = fee_of(amount, current_app.config["ORIGINATION_FEE_BPS"])
    payments = [row.total for row in rows]
    try:
        apr = amortization.apr_bps(amount - fee, payments)
    except ValueError:
        apr = None
    grade = market.assess(
        member_id,
        amount=amount,
        term_months=term_months,
        max_rate_bps=max_rate_bps,
        monthly_income=monthly_income,
        monthly_debt=monthly_debt or 0,
    )
    return {
        "amount": amount,
        "currency": currency,
        "term_months": term_months,
        "max_rate_bps": max_rate_bps,
        "monthly_payment": amortization.monthly_payment(amount, max_rate_bps, term_months),
        "last_payment": payments[-1],
        "total_interest": sum(row.interest for row in rows),
        "total_repaid": sum(payments),
        "fee": fee,
        "fee_bps": current_app.config["ORIGINATION_FEE_BPS"],
        "net_disbursed": amount - fee,
        "apr_bps": apr,
        "grade": {
            "letter": grade.letter,
            "score": grade.score,
            "reasons": [reason_row(r) for r in grade.reasons],
        },
    }


def preview_summary(preview: dict) -> str:
    """The preview in one sentence (the borrow page's aria-live status line)."""
    cur = preview["currency"]
    return ngettext(
        "At most %(payment)s a month for %(num)d month, %(interest)s interest in total at %(rate)s; "
        "APR %(apr)s; risk grade %(grade)s.",
        "At most %(payment)s a month for %(num)d months, %(interest)s interest in total at %(rate)s; "
        "APR %(apr)s; risk grade %(grade)s.",
        preview["term_months"],
        payment=format_money(preview["monthly_payment"], cur),
        interest=format_money(preview["total_interest"], cur),
        rate=percent_text(preview["max_rate_bps"]),
        apr=percent_text(preview["apr_bps"]),
        grade=preview["grade"]["letter"],
    )


def form_values(form: BorrowForm) -> dict:
    """A validated borrow form as :func:`compute_preview` (and ``market.create_request``) take it."""
    return {
        "amount": form.amount.minor_units,
        "currency": form.currency.data,
        "term_months": int(form.term_months.data),
        "max_rate_bps": form.max_rate.bps,
        "monthly_income": form.monthly_income.minor_units,
        "monthly_debt": form.monthly_debt.minor_units or 0,
    }


def preview_args() -> tuple[MultiDict, str]:
    """The query as the borrow form's fields; ``max_rate_bps=725`` is accepted for ``max_rate=7.25``."""
    args = MultiDict((key, value) for key, value in request.args.items(multi=True) if key != "csrf_token")
    rate_name = "max_rate"
    if "max_rate" not in args and "max_rate_bps" in args:
        rate_name = "max_rate_bps"
        raw = args.pop("max_rate_bps").strip()
        args["max_rate"] = bps_text(int(raw)) if raw.isascii() and raw.isdigit() and len(raw) <= 6 else raw
    args.setdefault("currency", current_app.config["CURRENCIES"][0])
    return args, rate_name


def preview_json():
    """The response of ``GET /borrow/preview``: the preview, its sentence and its HTML; 401/422 JSON bodies."""
    if not current_user.is_authenticated:
        return json_error(401, _("Sign in to preview a loan."), "unauthorized")
    args, rate_name = preview_args()
    form = BorrowForm(formdata=args, meta={"csrf": False})
    if not form.validate():
        errors = {
            (rate_name if name == "max_rate" else name): [str(m) for m in messages]
            for name, messages in form.errors.items()
        }
        first = next(iter(errors.values()))[0]
        return json_error(422, first, "validation_error", errors)
    preview = compute_preview(web_member().id, **form_values(form))
    return jsonify(
        {
            **preview,
            "summary": preview_summary(preview),
            "html": render_template("lending/_preview.html", preview=preview),
        }
    )
