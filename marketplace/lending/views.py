"""Browser pages for person-to-person lending: borrow, lend, the request book, loans, portfolio.

Thin: parse the form, call the lending services with ``current_user``'s id,
show the service's message (next to the field, or flashed) and redirect back.
Every page needs a signed-in member; borrowing, lending and the portfolio are
for members (not suppliers or operators), a loan's page for its borrower, its
lenders and operators, the loan book for operators.

The borrow page's live preview (monthly payment, total interest, fee, APR,
risk grade) is computed by :func:`compute_preview`, for the JSON endpoint
``GET /borrow/preview`` that ``static/js/lending.js`` calls and for the
"Preview" button that works without JavaScript.
"""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_required
from markupsafe import Markup
from werkzeug.datastructures import MultiDict

from ..accounts.auth import web_member
from ..clock import now
from ..conversation import services as conversation
from ..errors import DomainError, Forbidden, InsufficientFunds, NotFound, NotVerified, ValidationFailed, json_error
from ..extensions import limiter
from ..money import fee as fee_of
from ..money import format_amount
from ..pools.forms import CommentForm
from ..templating import Page, page_from_request
from ..wallet import services as wallet
from . import amortization, chart, loans, market, portfolio, repayments
from .forms import BorrowForm, OfferForm, RepayForm, amount_text, bps_text

bp = Blueprint("lending", __name__)

PER_PAGE = 20
COMMENTS_PER_PAGE = 50
REQUEST_TABS = (("open", "Open"), ("funded", "Funded"), ("expired", "Expired"), ("cancelled", "Cancelled"))
TOO_FAST = (
    "You are commenting faster than the marketplace allows. Please wait a minute, then post again "
    "— your text is kept below."
)
# Service field names -> form field names.
FIELD_NAMES = {"max_rate_bps": "max_rate", "min_rate_bps": "min_rate"}


# ---------------------------------------------------------------- filters and helpers


@bp.app_template_filter("percent_bps")
def percent_bps(bps) -> str:
    """``725`` -> ``"7.25 %"``; None -> ``"—"``; a real minus sign for negative rates."""
    if bps is None:
        return "—"
    text = bps_text(abs(int(bps)))
    return ("\u2212" if int(bps) < 0 else "") + text + " %"


@bp.app_template_filter("time_left")
def time_left(deadline: datetime) -> str:
    """``"expires in 13 days 4 hours"``; once past, the scheduler expires it shortly."""
    seconds = int((deadline - now()).total_seconds())
    if seconds <= 0:
        return "funding window over, expiring shortly"
    days, rest = divmod(seconds, 86400)
    hours, minutes = rest // 3600, (rest % 3600) // 60
    parts = []
    if days:
        parts.append(f"{days} day{'s' if days != 1 else ''}")
    if hours:
        parts.append(f"{hours} hour{'s' if hours != 1 else ''}")
    if not days and minutes:
        parts.append(f"{minutes} minute{'s' if minutes != 1 else ''}")
    return "expires in " + (" ".join(parts) if parts else "less than a minute")


@bp.app_template_filter("funded_percent")
def funded_percent(loan_request) -> int:
    """How much of a request is funded, in whole percent (rounded down: 100 only when complete)."""
    return loan_request.funded_amount * 100 // loan_request.amount if loan_request.amount else 0


def _available(member_id: int, currency: str) -> int:
    for row in wallet.balances(member_id):
        if row["currency"] == currency:
            return row["available"]
    return 0


def _add_errors(field, messages) -> None:
    field.errors = [*field.errors, *(m[:1].upper() + m[1:] for m in messages)]


def _place_errors(form, exc: DomainError, problems: list[str]) -> None:
    """A service's ``ValidationFailed.errors`` next to the inputs; what fits no input goes on top."""
    placed = False
    for name, messages in exc.errors.items():
        name = FIELD_NAMES.get(name, name.split(".")[0])
        if name in form and name != "csrf_token":
            _add_errors(form[name], messages)
            placed = True
    if not placed:
        problems.append(exc.message)


def _short_of(needed: int, available: int, currency: str, what: str) -> str:
    return (
        f"Not enough money available: {what} needs {format_amount(needed, currency)} but you have "
        f"{format_amount(available, currency)} available. Deposit money in your wallet or use a smaller amount."
    )


def _refusal(member) -> str | None:
    """Why ``member`` may not borrow or lend here (None: a member, who may)."""
    if member.is_supplier:
        return "Suppliers cannot borrow or lend here; person-to-person lending is between members."
    if member.is_operator:
        return "Operators run the marketplace and cannot borrow or lend in it; use a member account for that."
    return None


def _lender_labels(parts, viewer_id: int) -> dict[int, str]:
    """Lenders anonymised in order of appearance: ``"Lender 1"`` …, the viewer's own as ``"You"``."""
    labels: dict[int, str] = {}
    for part in parts:
        if part.lender_id not in labels:
            if part.lender_id == viewer_id:
                labels[part.lender_id] = "You"
            else:
                labels[part.lender_id] = f"Lender {sum(1 for v in labels.values() if v != 'You') + 1}"
    return labels


# ---------------------------------------------------------------- borrowing: the preview


def compute_preview(member_id: int, *, amount, currency, term_months, max_rate_bps, monthly_income, monthly_debt):
    """One-part loan at the maximum rate: payment, interest, fee, APR, and the member's risk grade."""
    _, rows = amortization.loan_schedule([(amount, max_rate_bps)], term_months)
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
            "reasons": [{"factor": r.factor, "points": r.points, "text": r.text} for r in grade.reasons],
        },
    }


def preview_summary(preview: dict) -> str:
    cur = preview["currency"]
    return (
        f"At most {format_amount(preview['monthly_payment'], cur)} a month for {preview['term_months']} months, "
        f"{format_amount(preview['total_interest'], cur)} interest in total at {percent_bps(preview['max_rate_bps'])}; "
        f"APR {percent_bps(preview['apr_bps'])}; risk grade {preview['grade']['letter']}."
    )


def _form_values(form: BorrowForm) -> dict:
    return {
        "amount": form.amount.minor_units,
        "currency": form.currency.data,
        "term_months": int(form.term_months.data),
        "max_rate_bps": form.max_rate.bps,
        "monthly_income": form.monthly_income.minor_units,
        "monthly_debt": form.monthly_debt.minor_units or 0,
    }


def _preview_args() -> tuple[MultiDict, str]:
    """The query as the borrow form's fields; ``max_rate_bps=725`` is accepted for ``max_rate=7.25``."""
    args = MultiDict((key, value) for key, value in request.args.items(multi=True) if key != "csrf_token")
    rate_name = "max_rate"
    if "max_rate" not in args and "max_rate_bps" in args:
        rate_name = "max_rate_bps"
        raw = args.pop("max_rate_bps").strip()
        args["max_rate"] = bps_text(int(raw)) if raw.isascii() and raw.isdigit() and len(raw) <= 6 else raw
    args.setdefault("currency", current_app.config["CURRENCIES"][0])
    return args, rate_name


@bp.get("/borrow/preview")
def borrow_preview():
    """JSON for the borrow page's live preview; 401/422 JSON bodies, never a redirect."""
    if not current_user.is_authenticated:
        return json_error(401, "Sign in to preview a loan.", "unauthorized")
    args, rate_name = _preview_args()
    form = BorrowForm(formdata=args, meta={"csrf": False})
    if not form.validate():
        errors = {(rate_name if name == "max_rate" else name): list(messages) for name, messages in form.errors.items()}
        first = next(iter(errors.values()))[0]
        return json_error(422, first, "validation_error", errors)
    preview = compute_preview(web_member().id, **_form_values(form))
    return jsonify(
        {
            **preview,
            "summary": preview_summary(preview),
            "html": render_template("lending/_preview.html", preview=preview),
        }
    )


# ---------------------------------------------------------------- borrowing: the form


def _render_borrow(form, *, preview=None, problems=(), refusal=None, status=200):
    member = web_member()
    return render_template(
        "lending/borrow.html",
        form=form,
        preview=preview,
        summary=preview_summary(preview) if preview else None,
        problems=list(problems),
        refusal=refusal,
        verified=member.is_verified,
        fee_bps=current_app.config["ORIGINATION_FEE_BPS"],
        funding_days=current_app.config["LOAN_FUNDING_DAYS"],
    ), status


def _funded_message(loan_request) -> str:
    loan = loans.get_loan(loan_request.loan_id)
    cur = loan.currency
    lenders = len({part.lender_id for part in loan.parts})
    return (
        f"Your loan is funded: {format_amount(loan.amount, cur)} from {lenders} lender{'s' if lenders != 1 else ''} "
        f"at {percent_bps(loan.rate_bps)} on average (APR {percent_bps(loan.apr_bps)}). "
        f"{format_amount(loan.amount - loan.fee, cur)} was paid into your wallet after the "
        f"{format_amount(loan.fee, cur)} origination fee."
    )


@bp.route("/borrow", methods=["GET", "POST"])
@login_required
def borrow():
    member = web_member()
    refusal = _refusal(member)
    if refusal is not None:
        return _render_borrow(None, refusal=refusal, status=403)
    form = BorrowForm()
    if request.method == "GET" or not form.validate_on_submit():
        return _render_borrow(form, status=422 if form.is_submitted() else 200)
    values = _form_values(form)
    preview = compute_preview(member.id, **values)
    if request.form.get("action") == "preview":
        return _render_borrow(form, preview=preview)
    problems: list[str] = []
    try:
        loan_request = market.create_request(member.id, purpose=form.purpose.data or "", **values)
    except ValidationFailed as exc:
        _place_errors(form, exc, problems)
        return _render_borrow(form, preview=preview, problems=problems, status=exc.status)
    except (NotVerified, Forbidden) as exc:
        return _render_borrow(form, preview=preview, problems=[exc.message], status=exc.status)
    except DomainError as exc:
        return _render_borrow(form, preview=preview, problems=[exc.message], status=exc.status)
    if loan_request.status == "funded":
        flash(_funded_message(loan_request), "success")
        return redirect(url_for("lending.loan_detail", loan_id=loan_request.loan_id))
    cur = loan_request.currency
    flash(
        f"Your loan request for {format_amount(loan_request.amount, cur)} is open: "
        f"{format_amount(loan_request.funded_amount, cur)} is offered so far. Lenders' offers match it "
        f"automatically until {loan_request.expires_at:%Y-%m-%d %H:%M} UTC.",
        "success",
    )
    return redirect(url_for("lending.request_detail", request_id=loan_request.id))


# ---------------------------------------------------------------- the request book


@bp.get("/loan-requests")
@login_required
def requests():
    status = request.args.get("status", "open")
    if status not in dict(REQUEST_TABS):
        status = "open"
    _, total = market.list_requests(status=status, offset=0, limit=1)
    page = page_from_request(total, PER_PAGE)
    rows, total = market.list_requests(status=status, offset=page.offset, limit=page.per_page)
    return render_template("lending/requests.html", rows=rows, status=status, tabs=REQUEST_TABS, page=page)


def _comment_page(request_id: int) -> Page:
    """The thread is shown newest last; without ``?cpage=`` the last page (the newest comments)."""
    total = conversation.count_comments("loan_request", request_id)
    last = Page(1, COMMENTS_PER_PAGE, total).pages
    raw = request.args.get("cpage", "")
    number = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 10 else last
    return Page(min(max(number, 1), last), COMMENTS_PER_PAGE, total)


def render_request(request_id: int, *, comment_form: CommentForm | None = None, status: int = 200):
    """The loan request's page, optionally with a submitted comment (and its errors) in place."""
    loan_request = market.get_request(request_id)
    member = web_member()
    parts = market.parts_of_request(loan_request.id)
    loan_visible = False
    if loan_request.loan_id is not None:
        loan_visible = loans.can_view(loans.get_loan(loan_request.loan_id), member)
    comment_page = _comment_page(loan_request.id)
    return render_template(
        "lending/request.html",
        req=loan_request,
        member=member,
        is_borrower=member.id == loan_request.borrower_id,
        parts=parts,
        labels=_lender_labels(parts, member.id),
        loan_visible=loan_visible,
        comments=conversation.comments(
            "loan_request", loan_request.id, offset=comment_page.offset, limit=comment_page.per_page
        ),
        comment_page=comment_page,
        comment_form=comment_form or CommentForm(formdata=None),
    ), status


@bp.get("/loan-requests/<int:request_id>")
@login_required
def request_detail(request_id: int):
    return render_request(request_id)


@bp.post("/loan-requests/<int:request_id>/cancel")
@login_required
def cancel_request(request_id: int):
    try:
        loan_request = market.cancel_request(request_id, web_member().id)
    except (NotFound, Forbidden):
        raise
    except DomainError as exc:
        flash(exc.message, "danger")
    else:
        flash(
            f"Your loan request for {format_amount(loan_request.amount, loan_request.currency)} is cancelled; "
            "nothing was lent and every offered part went back to its lender.",
            "success",
        )
    return redirect(url_for("lending.request_detail", request_id=request_id))


def _member_key() -> str:
    """Comments are rate limited per member, like the pool threads."""
    if current_user.is_authenticated:
        return f"member:{current_user.id}"
    return f"ip:{get_remote_address()}"


@bp.errorhandler(429)
def too_many_requests(exc):
    """A comment sent too fast: the request page again, the text kept, the reason next to it."""
    request_id = (request.view_args or {}).get("request_id")
    if request.endpoint != "lending.add_comment" or request_id is None or not current_user.is_authenticated:
        return render_template("conversation/too_fast.html", message=TOO_FAST), 429
    form = CommentForm(meta={"csrf": False})
    form.body.errors = [TOO_FAST]
    response = current_app.make_response(render_request(request_id, comment_form=form, status=429))
    retry_after = getattr(exc, "retry_after", None)
    if retry_after:
        response.headers["Retry-After"] = str(retry_after)
    return response


@bp.post("/loan-requests/<int:request_id>/comments")
@login_required
@limiter.limit(lambda: current_app.config["COMMENT_RATE_LIMIT"], key_func=_member_key, methods=["POST"])
def add_comment(request_id: int):
    form = CommentForm()
    if not form.validate_on_submit():
        return render_request(request_id, comment_form=form, status=422)
    try:
        comment = conversation.add_comment("loan_request", request_id, web_member().id, form.body.data)
    except ValidationFailed as exc:
        form.body.errors = [*form.body.errors, *(exc.errors.get("body") or [exc.message])]
        return render_request(request_id, comment_form=form, status=exc.status)
    except NotFound:
        raise
    except DomainError as exc:
        flash(exc.message, "danger")
        return redirect(url_for("lending.request_detail", request_id=request_id, _anchor="discussion"))
    flash("Your comment is posted.", "success")
    return redirect(url_for("lending.request_detail", request_id=request_id, _anchor=f"comment-{comment.id}"))


# ---------------------------------------------------------------- lending


def _render_lend(form, *, problems=(), refusal=None, status=200):
    member = web_member()
    offers, page = [], None
    if refusal is None:
        _, total = market.list_offers(member.id, offset=0, limit=1)
        page = page_from_request(total, PER_PAGE)
        offers, _ = market.list_offers(member.id, offset=page.offset, limit=page.per_page)
    return render_template(
        "lending/lend.html",
        form=form,
        offers=offers,
        page=page,
        problems=list(problems),
        refusal=refusal,
        balances=wallet.balances(member.id) if refusal is None else [],
    ), status


@bp.route("/lend", methods=["GET", "POST"])
@login_required
def lend():
    member = web_member()
    refusal = _refusal(member)
    if refusal is not None:
        return _render_lend(None, refusal=refusal, status=403)
    form = OfferForm()
    if request.method == "GET" or not form.validate_on_submit():
        return _render_lend(form, status=422 if form.is_submitted() else 200)
    amount, currency = form.amount.minor_units, form.currency.data
    problems: list[str] = []
    try:
        offer = market.create_offer(
            member.id,
            amount=amount,
            currency=currency,
            min_rate_bps=form.min_rate.bps,
            max_part=form.max_part.minor_units,
            terms=form.term_values,
            grades=form.grade_values,
        )
    except InsufficientFunds as exc:
        _add_errors(form.amount, [_short_of(amount, _available(member.id, currency), currency, "this offer")])
        return _render_lend(form, status=exc.status)
    except ValidationFailed as exc:
        _place_errors(form, exc, problems)
        return _render_lend(form, problems=problems, status=exc.status)
    except DomainError as exc:
        return _render_lend(form, problems=[exc.message], status=exc.status)
    lent = offer.amount - offer.remaining
    message = (
        f"Your offer of {format_amount(offer.amount, currency)} at {percent_bps(offer.min_rate_bps)} or more is "
        "posted; the money is held in your wallet until it is lent out or you cancel."
    )
    if lent:
        message += f" {format_amount(lent, currency)} was matched with open loan requests at once."
    flash(message, "success")
    return redirect(url_for("lending.lend", _anchor="my-offers"))


@bp.post("/lend/offers/<int:offer_id>/cancel")
@login_required
def cancel_offer(offer_id: int):
    member = web_member()
    offer = market.get_offer(offer_id)
    if offer.lender_id != member.id:
        raise Forbidden("Only the lender can cancel its offer.")
    released, currency = offer.remaining, offer.currency
    try:
        market.cancel_offer(offer_id, member.id)
    except DomainError as exc:
        flash(exc.message, "danger")
    else:
        flash(
            f"Offer cancelled: {format_amount(released, currency)} not yet lent is available in your wallet again. "
            "Parts already in loans keep running.",
            "success",
        )
    return redirect(url_for("lending.lend", _anchor="my-offers"))


# ---------------------------------------------------------------- loans


@bp.get("/loans")
@login_required
def my_loans():
    member = web_member()
    refusal = _refusal(member)
    if refusal is not None:
        return render_template("lending/loans.html", refusal=refusal, loans=[], requests=[]), 403
    rows = [(loan, loans.next_installment(loan)) for loan in loans.loans_of_borrower(member.id)]
    open_requests, _ = market.list_requests(borrower_id=member.id, offset=0, limit=50)
    return render_template(
        "lending/loans.html",
        refusal=None,
        loans=rows,
        requests=[r for r in open_requests if r.status != "funded"],
    )


def render_loan(loan_id: int, *, repay_form: RepayForm | None = None, status: int = 200):
    member = web_member()
    loan = loans.loan_for(loan_id, member.id)
    view = loans.present_loan(loan)
    is_borrower = loan.borrower_id == member.id
    upcoming = loans.next_installment(loan)
    quote, available = None, None
    if is_borrower and loan.status == "active":
        quote = repayments.payoff_quote(loan)
        available = _available(member.id, loan.currency)
        if repay_form is None:
            suggested = view["amount_due_now"] or (upcoming.owed if upcoming else 0)
            repay_form = RepayForm(formdata=None, amount=amount_text(suggested) if suggested else "")
    return render_template(
        "lending/loan.html",
        loan=loan,
        view=view,
        member=member,
        is_borrower=is_borrower,
        parts=loan.parts,
        labels=_lender_labels(loan.parts, member.id),
        upcoming=upcoming,
        quote=quote,
        available=available,
        repay_form=repay_form,
    ), status


@bp.get("/loans/<int:loan_id>")
@login_required
def loan_detail(loan_id: int):
    return render_loan(loan_id)


@bp.post("/loans/<int:loan_id>/repay")
@login_required
def repay(loan_id: int):
    member = web_member()
    loan = loans.loan_for(loan_id, member.id)
    if loan.borrower_id != member.id:
        raise Forbidden("Only the borrower repays a loan.")
    form = RepayForm()
    if not form.validate_on_submit():
        return render_loan(loan_id, repay_form=form, status=422)
    amount, currency = form.amount.minor_units, loan.currency
    try:
        repayment = repayments.repay(loan_id, member.id, amount)
    except InsufficientFunds as exc:
        _add_errors(form.amount, [_short_of(amount, _available(member.id, currency), currency, "this payment")])
        return render_loan(loan_id, repay_form=form, status=exc.status)
    except ValidationFailed as exc:
        _add_errors(form.amount, [exc.message])
        return render_loan(loan_id, repay_form=form, status=exc.status)
    except (NotFound, Forbidden):
        raise
    except DomainError as exc:
        flash(exc.message, "danger")
        return redirect(url_for("lending.loan_detail", loan_id=loan_id))
    flash(
        f"Thank you: you paid {format_amount(repayment.amount, currency)} "
        f"({format_amount(repayment.interest, currency)} interest, {format_amount(repayment.principal, currency)} "
        "principal), shared among your lenders.",
        "success",
    )
    return redirect(url_for("lending.loan_detail", loan_id=loan_id, _anchor="schedule"))


@bp.post("/loans/<int:loan_id>/payoff")
@login_required
def payoff(loan_id: int):
    member = web_member()
    loan = loans.loan_for(loan_id, member.id)
    if loan.borrower_id != member.id:
        raise Forbidden("Only the borrower pays off a loan.")
    currency = loan.currency
    try:
        repayment = repayments.payoff(loan_id, member.id)
    except InsufficientFunds:
        quote = repayments.payoff_quote(loans.get_loan(loan_id))
        flash(_short_of(quote["amount"], _available(member.id, currency), currency, "paying off the loan"), "danger")
    except (NotFound, Forbidden):
        raise
    except DomainError as exc:
        flash(exc.message, "danger")
    else:
        flash(
            f"Your loan is paid off: {format_amount(repayment.amount, currency)} "
            f"({format_amount(repayment.principal, currency)} principal and "
            f"{format_amount(repayment.interest, currency)} interest to today). Nothing more is owed.",
            "success",
        )
    return redirect(url_for("lending.loan_detail", loan_id=loan_id))


# ---------------------------------------------------------------- portfolio and loan book


@bp.get("/portfolio")
@login_required
def portfolio_page():
    member = web_member()
    refusal = _refusal(member)
    if refusal is not None:
        return render_template("lending/portfolio.html", refusal=refusal), 403
    asked = request.args.get("currency")
    currency = asked if asked in current_app.config["CURRENCIES"] else None
    figures = portfolio.portfolio(member.id, currency)
    currency = figures["currency"]
    flows = portfolio.monthly_cash_flows(member.id, currency)
    offers, _ = market.list_offers(member.id, offset=0, limit=500)
    waiting = sum(o.remaining for o in offers if o.status == "open" and o.currency == currency)
    return render_template(
        "lending/portfolio.html",
        refusal=None,
        figures=figures,
        currency=currency,
        currencies=sorted(set(figures["currencies"]) | {currency}),
        flows=flows,
        chart_svg=Markup(chart.render_svg(flows, currency=currency)),  # every text in it escaped
        waiting=waiting,
    )


@bp.get("/operator/loans")
@login_required
def loan_book():
    if not web_member().is_operator:
        abort(403)
    currency = request.args.get("currency")
    if currency not in current_app.config["CURRENCIES"]:
        currency = None
    book = portfolio.loan_book(currency)
    return render_template("lending/loan_book.html", book=book, statuses=("active", "repaid", "defaulted"))
