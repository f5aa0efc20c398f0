"""Operators' pages: dashboard, journal (+ CSV), statements, trial balance, KYC, audit log.

Every page needs a signed-in operator (checked once, in ``before_request``).
Views parse, call the ledger queries and services, and render; the services
own their transactions.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from datetime import UTC

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from ..accounts import services as accounts
from ..clock import now
from ..extensions import db
from ..ledger import queries
from ..ledger.models import JournalEntry
from ..ledger.services import find_account
from . import jobs
from .forms import AuditFilterForm, JournalFilterForm, KycDecisionForm, KycFilterForm, RunDueForm
from .services import audit_entries, record_audit_committed

bp = Blueprint("operators", __name__, url_prefix="/ops")

PER_PAGE = 50
CSV_COLUMNS = ["entry_id", "created_at", "kind", "memo", "account", "currency", "debit", "credit"]
KYC_LIST_LIMIT = 200
MAX_PAGE = 1_000_000  # keeps OFFSET within a 64-bit integer whatever ?page= says


@bp.before_request
@login_required
def require_operator():
    if not current_user.is_operator:
        abort(403)


def _ip() -> str:
    return request.remote_addr or ""


@dataclass
class Pager:
    page: int
    per_page: int
    total: int | None  # None: unknown (the audit log pages without counting)
    has_next_page: bool = False

    @classmethod
    def from_request(cls, total: int | None, per_page: int = PER_PAGE) -> Pager:
        page = min(max(request.args.get("page", 1, type=int) or 1, 1), MAX_PAGE)
        if total is not None:
            page = min(page, max(math.ceil(total / per_page), 1))
        return cls(page=page, per_page=per_page, total=total)

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    @property
    def pages(self) -> int | None:
        return None if self.total is None else max(math.ceil(self.total / self.per_page), 1)

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages if self.total is not None else self.has_next_page


# ------------------------------------------------------------------ dashboard


def ledger_state() -> dict:
    """Trial balance plus reconciliation, and a verdict per currency and overall.

    A currency is balanced when its debits equal its credits and every cached
    account balance equals the sum of that account's postings.
    """
    tb = queries.trial_balance()
    problems = queries.reconcile()
    currencies = {}
    for currency, totals in sorted(tb["totals"].items()):
        mismatched = [
            a["code"] for a in tb["accounts"] if a["currency"] == currency and a["balance"] != a["cached_balance"]
        ]
        currencies[currency] = {
            **totals,
            "difference": totals["debits"] - totals["credits"],
            "mismatched": mismatched,
            "balanced": totals["debits"] == totals["credits"] and not mismatched,
        }
    balanced = tb["balanced"] and not problems and all(c["balanced"] for c in currencies.values())
    return {"accounts": tb["accounts"], "currencies": currencies, "problems": problems, "balanced": balanced}


@bp.get("/")
@bp.get("")  # registered first, so url_for gives /ops
def index():
    unverified = accounts.members_by_kyc("unverified", limit=None)
    return render_template(
        "operators/index.html",
        member_count=accounts.count_members(),
        unverified_count=len(unverified),
        state=ledger_state(),
        jobs=jobs.registered_jobs(),
        clock=now(),
        form=RunDueForm(),
    )


@bp.post("/run-due")
def run_due():
    form = RunDueForm()
    if not form.validate_on_submit():
        flash(_("The form expired; please try again."), "danger")
        return redirect(url_for("operators.index"))
    report = jobs.run_due()
    record_audit_committed(current_user.id, "operations.run_due", "operations", "", report, ip=_ip())
    flash(_run_due_summary(report), "success")
    return redirect(url_for("operators.index"))


def _run_due_summary(report: dict) -> str:
    ran_at = report["ran_at"].astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    if report.get("skipped"):
        return _("Nothing was run at %(when)s: %(reason)s.", when=ran_at, reason=report["skipped"])
    if not report["jobs"]:
        return _("Ran due jobs at %(when)s: no jobs are registered.", when=ran_at)
    parts = []
    for name, result in report["jobs"].items():
        detail = ", ".join(f"{key} {value}" for key, value in sorted(result.items())) or _("nothing to do")
        parts.append(f"{name}: {detail}")
    return _(
        "Ran %(num)s due job(s) at %(when)s — %(details)s.",
        num=len(report["jobs"]),
        when=ran_at,
        details="; ".join(parts),
    )


# ------------------------------------------------------------------ journal


def _journal_form() -> JournalFilterForm:
    return JournalFilterForm(request.args, kinds=queries.entry_kinds())


@bp.get("/journal")
def journal():
    form = _journal_form()
    if not form.validate():
        return render_template("operators/journal.html", form=form, entries=[], pager=None, args={}), 400
    filters = form.filters()
    pager = Pager.from_request(queries.count_journal_entries(**filters))
    entries = queries.journal_entries(**filters, offset=pager.offset, limit=pager.per_page)
    return render_template("operators/journal.html", form=form, entries=entries, pager=pager, args=form.query_args())


@bp.get("/journal/<int:entry_id>")
def entry(entry_id: int):
    found = db.session.get(JournalEntry, entry_id)
    if found is None:
        abort(404, description=_("No journal entry %(id)s.", id=entry_id))
    return render_template("operators/entry.html", entry=found)


@bp.get("/journal.csv")
def journal_csv():
    form = _journal_form()
    if not form.validate():
        return render_template("operators/journal.html", form=form, entries=[], pager=None, args={}), 400
    entries = queries.journal_entries(**form.filters(), limit=None)
    body, rows = journal_csv_text(entries)
    record_audit_committed(
        current_user.id, "ledger.export_csv", "journal", "", {"filters": form.query_args(), "rows": rows}, ip=_ip()
    )
    filename = f"journal-{now().astimezone(UTC):%Y%m%dT%H%M%SZ}.csv"
    return Response(
        body,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


def rfc3339(value) -> str:
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if value.microsecond else "%Y-%m-%dT%H:%M:%SZ")


def csv_safe(text: str) -> str:
    """Keep spreadsheets from running a cell as a formula (CSV injection)."""
    return "'" + text if text and text[0] in "=+-@\t\r" else text


def journal_csv_text(entries) -> tuple[str, int]:
    """One row per posting; amounts in minor units, debit and credit columns."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    rows = 0
    for e in entries:
        for p in e.postings:
            writer.writerow(
                [
                    e.id,
                    rfc3339(e.created_at),
                    csv_safe(e.kind),
                    csv_safe(e.memo or ""),
                    csv_safe(p.account.code),
                    p.currency,
                    p.amount if p.amount > 0 else 0,
                    -p.amount if p.amount < 0 else 0,
                ]
            )
            rows += 1
    return out.getvalue(), rows


# ------------------------------------------------------------------ accounts


@bp.get("/accounts/<path:code>")
def account(code: str):
    if "\x00" in code:  # no code holds NUL, and PostgreSQL cannot even compare a text with one
        abort(404)
    acct = find_account(code)
    pager = Pager.from_request(queries.count_account_postings(acct.id))
    postings = queries.account_postings(acct.id, offset=pager.offset, limit=pager.per_page)
    return render_template("operators/account.html", account=acct, postings=postings, pager=pager)


@bp.get("/trial-balance")
def trial_balance():
    return render_template("operators/trial_balance.html", state=ledger_state())


# ------------------------------------------------------------------ KYC


@bp.get("/kyc")
def kyc():
    form = KycFilterForm(request.args)
    if not form.validate():
        return render_template("operators/kyc.html", form=form, members=[], status=None, limit=KYC_LIST_LIMIT), 400
    status = form.status.data
    members = accounts.members_by_kyc(None if status == "all" else status, limit=KYC_LIST_LIMIT)
    return render_template("operators/kyc.html", form=form, members=members, status=status, limit=KYC_LIST_LIMIT)


def _kyc_words() -> dict:
    return {"verified": _("verified"), "unverified": _("unverified"), "rejected": _("rejected")}


@bp.post("/kyc/<int:member_id>")
def kyc_decide(member_id: int):
    form = KycDecisionForm()
    back = url_for("operators.kyc", status=form.back.data or "unverified")
    if not form.validate_on_submit():
        problems = "; ".join(message for messages in form.errors.values() for message in messages)
        flash(_("Nothing changed: %(problems)s", problems=problems), "danger")
        return redirect(back)
    member = accounts.set_kyc_status(current_user.id, member_id, form.status.data, ip=_ip())
    flash(
        _(
            "%(name)s (%(email)s) is now %(status)s.",
            name=member.display_name,
            email=member.email,
            status=_kyc_words().get(member.kyc_status, member.kyc_status),
        ),
        "success",
    )
    return redirect(back)


# ------------------------------------------------------------------ audit log


@bp.get("/audit")
def audit():
    form = AuditFilterForm(request.args)
    if not form.validate():
        return render_template("operators/audit.html", form=form, rows=[], pager=None, args={}), 400
    action = form.action.data or None
    pager = Pager.from_request(None)
    rows = audit_entries(limit=pager.per_page + 1, offset=pager.offset, action=action)
    pager.has_next_page = len(rows) > pager.per_page
    args = {"action": action} if action else {}
    return render_template(
        "operators/audit.html", form=form, rows=[_audit_row(r) for r in rows[: pager.per_page]], pager=pager, args=args
    )


def _audit_row(row) -> dict:
    try:
        details = json.loads(row.details or "{}")
    except ValueError:
        details = {"raw": row.details}
    if not isinstance(details, dict):
        details = {"value": details}
    actor = row.actor
    return {
        "id": row.id,
        "created_at": row.created_at,
        "actor": f"{actor.display_name} <{actor.email}>" if actor else "system",
        "actor_id": row.actor_id,
        "action": row.action,
        "target": f"{row.target_type} {row.target_id}".strip(),
        "details": {key: _detail_text(value) for key, value in sorted(details.items())},
        "ip": row.ip,
    }


def _detail_text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


from . import payments_views  # noqa: E402, F401  (the payout queue and reconciliation pages, on this blueprint)
