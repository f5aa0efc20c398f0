"""Browser pages for person-to-person lending: borrow, lend, the request book, loans, portfolio.

Thin: parse the form, call the lending services with ``current_user``'s id,
show the service's message (next to the field, or flashed) and redirect back.
Every page needs a signed-in member; borrowing, lending and the portfolio are
for members (not suppliers or operators), a loan's page for its borrower, its
lenders and operators, the loan book for operators.

The borrow page's live preview (monthly payment, total interest, fee, APR,
risk grade) lives in ``preview.py``: the JSON endpoint ``GET /borrow/preview``
that ``static/js/lending.js`` calls, and the "Preview" button that works
without JavaScript. Every sentence shown is translated (Flask-Babel); amounts,
rates and dates follow the reader's locale, English exactly as before.
"""

from __future__ import annotations

from datetime import date, datetime

from babel.dates import format_skeleton
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_required
from markupsafe import Markup

from ..accounts.auth import web_member
from ..clock import now
from ..conversation import services as conversation
from ..errors import DomainError, Forbidden, InsufficientFunds, NotFound, NotVerified, ValidationFailed
from ..extensions import limiter
from ..i18n import current_locale, format_day, format_money, localized_errors
from ..pools.forms import CommentForm
from ..templating import Page, page_from_request, when
from ..wallet import services as wallet
from . import chart, loans, market, portfolio, repayments
from .forms import BorrowForm, OfferForm, RepayForm, amount_text, percent_text
from .preview import compute_preview, form_values, preview_json, preview_summary

bp = Blueprint("lending", __name__)

PER_PAGE = 20
COMMENTS_PER_PAGE = 50
REQUEST_STATUSES = ("open", "funded", "expired", "cancelled")  # the request book's tabs (named in the template)
# Service field names -> form field names.
FIELD_NAMES = {"max_rate_bps": "max_rate", "min_rate_bps": "min_rate"}


# ---------------------------------------------------------------- filters and helpers


bp.add_app_template_filter(percent_text, "percent_bps")  # "7.25 %" (English) or the locale's form


@bp.app_template_filter("time_left")
def time_left(deadline: datetime) -> str:
    """``"expires in 13 days 4 hours"``; once past, the scheduler expires it shortly."""
    seconds = int((deadline - now()).total_seconds())
    if seconds <= 0:
        return _("funding window over, expiring shortly")
    days, rest = divmod(seconds, 86400)
    hours, minutes = rest // 3600, (rest % 3600) // 60
    units = []
    if days:
        units.append(ngettext("%(num)d day", "%(num)d days", days))
    if hours:
        units.append(ngettext("%(num)d hour", "%(num)d hours", hours))
    if not days and minutes:
        units.append(ngettext("%(num)d minute", "%(num)d minutes", minutes))
    if not units:
        return _("expires in less than a minute")
    if len(units) == 1:
        return _("expires in %(duration)s", duration=units[0])
    return _("expires in %(first)s %(second)s", first=units[0], second=units[1])


@bp.app_template_filter("due_day")
def due_day(day: date) -> str:
    """An installment's date: ``2027-04-01`` in English (as always), the locale's medium date otherwise."""
    return day.isoformat() if current_locale() == "en" else format_day(day)


@bp.app_template_filter("flow_month")
def flow_month(month: str) -> str:
    """A cash-flow month ``"2027-03"``: as is in English, ``"mar 2027"`` … otherwise."""
    if current_locale() == "en":
        return month
    return format_skeleton("yMMM", date(int(month[:4]), int(month[5:7]), 1), locale=current_locale())


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
    for name, messages in localized_errors(exc).items():
        name = FIELD_NAMES.get(name, name.split(".")[0])
        if name in form and name != "csrf_token":
            _add_errors(form[name], messages)
            placed = True
    if not placed:
        problems.append(exc.localized())


def _short_of(needed: int, available: int, currency: str, what: str) -> str:
    """Not enough money for ``what``: ``"offer"``, ``"payment"`` or ``"payoff"``."""
    amounts = {"needed": format_money(needed, currency), "available": format_money(available, currency)}
    if what == "offer":
        return _(
            "Not enough money available: this offer needs %(needed)s but you have %(available)s available. "
            "Deposit money in your wallet or use a smaller amount.",
            **amounts,
        )
    if what == "payment":
        return _(
            "Not enough money available: this payment needs %(needed)s but you have %(available)s available. "
            "Deposit money in your wallet or use a smaller amount.",
            **amounts,
        )
    return _(
        "Not enough money available: paying off the loan needs %(needed)s but you have %(available)s available. "
        "Deposit money in your wallet or use a smaller amount.",
        **amounts,
    )


def _refusal(member) -> str | None:
    """Why ``member`` may not borrow or lend here (None: a member, who may)."""
    if member.is_supplier:
        return _("Suppliers cannot borrow or lend here; person-to-person lending is between members.")
    if member.is_operator:
        return _("Operators run the marketplace and cannot borrow or lend in it; use a member account for that.")
    return None


def _lender_labels(parts, viewer_id: int) -> dict[int, str]:
    """Lenders anonymised in order of appearance: ``"Lender 1"`` …, the viewer's own as ``"You"``."""
    labels: dict[int, str] = {}
    for part in parts:
        if part.lender_id not in labels:
            if part.lender_id == viewer_id:
                labels[part.lender_id] = _("You")
            else:
                others = sum(1 for lender_id in labels if lender_id != viewer_id)
                labels[part.lender_id] = _("Lender %(number)s", number=others + 1)
    return labels


# ---------------------------------------------------------------- borrowing


@bp.get("/borrow/preview")
def borrow_preview():
    """JSON for the borrow page's live preview (``preview.py``); 401/422 JSON bodies, never a redirect."""
    return preview_json()


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
    return ngettext(
        "Your loan is funded: %(amount)s from %(num)d lender at %(rate)s on average (APR %(apr)s). "
        "%(net)s was paid into your wallet after the %(fee)s origination fee.",
        "Your loan is funded: %(amount)s from %(num)d lenders at %(rate)s on average (APR %(apr)s). "
        "%(net)s was paid into your wallet after the %(fee)s origination fee.",
        len({part.lender_id for part in loan.parts}),
        amount=format_money(loan.amount, cur),
        rate=percent_text(loan.rate_bps),
        apr=percent_text(loan.apr_bps),
        net=format_money(loan.amount - loan.fee, cur),
        fee=format_money(loan.fee, cur),
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
    values = form_values(form)
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
        return _render_borrow(form, preview=preview, problems=[exc.localized()], status=exc.status)
    except DomainError as exc:
        return _render_borrow(form, preview=preview, problems=[exc.localized()], status=exc.status)
    if loan_request.status == "funded":
        flash(_funded_message(loan_request), "success")
        return redirect(url_for("lending.loan_detail", loan_id=loan_request.loan_id))
    cur = loan_request.currency
    flash(
        _(
            "Your loan request for %(amount)s is open: %(funded)s is offered so far. Lenders' offers match it "
            "automatically until %(until)s.",
            amount=format_money(loan_request.amount, cur),
            funded=format_money(loan_request.funded_amount, cur),
            until=when(loan_request.expires_at),
        ),
        "success",
    )
    return redirect(url_for("lending.request_detail", request_id=loan_request.id))


# ---------------------------------------------------------------- the request book


@bp.get("/loan-requests")
@login_required
def requests():
    status = request.args.get("status", "open")
    if status not in REQUEST_STATUSES:
        status = "open"
    _rows, total = market.list_requests(status=status, offset=0, limit=1)
    page = page_from_request(total, PER_PAGE)
    rows, total = market.list_requests(status=status, offset=page.offset, limit=page.per_page)
    return render_template("lending/requests.html", rows=rows, status=status, tabs=REQUEST_STATUSES, page=page)


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
        flash(exc.localized(), "danger")
    else:
        flash(
            _(
                "Your loan request for %(amount)s is cancelled; "
                "nothing was lent and every offered part went back to its lender.",
                amount=format_money(loan_request.amount, loan_request.currency),
            ),
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
    too_fast = _(
        "You are commenting faster than the marketplace allows. Please wait a minute, then post again "
        "— your text is kept below."
    )
    if request.endpoint != "lending.add_comment" or request_id is None or not current_user.is_authenticated:
        return render_template("conversation/too_fast.html", message=too_fast), 429
    form = CommentForm(meta={"csrf": False})
    form.body.errors = [too_fast]
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
        form.body.errors = [*form.body.errors, *(localized_errors(exc).get("body") or [exc.localized()])]
        return render_request(request_id, comment_form=form, status=exc.status)
    except NotFound:
        raise
    except DomainError as exc:
        flash(exc.localized(), "danger")
        return redirect(url_for("lending.request_detail", request_id=request_id, _anchor="discussion"))
    flash(_("Your comment is posted."), "success")
    return redirect(url_for("lending.request_detail", request_id=request_id, _anchor=f"comment-{comment.id}"))


# ---------------------------------------------------------------- lending


def _render_lend(form, *, problems=(), refusal=None, status=200):
    member = web_member()
    offers, page = [], None
    if refusal is None:
        _offers, total = market.list_offers(member.id, offset=0, limit=1)
        page = page_from_request(total, PER_PAGE)
        offers, _total = market.list_offers(member.id, offset=page.offset, limit=page.per_page)
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
        _add_errors(form.amount, [_short_of(amount, _available(member.id, currency), currency, "offer")])
        return _render_lend(form, status=exc.status)
    except ValidationFailed as exc:
        _place_errors(form, exc, problems)
        return _render_lend(form, problems=problems, status=exc.status)
    except DomainError as exc:
        return _render_lend(form, problems=[exc.localized()], status=exc.status)
    lent = offer.amount - offer.remaining
    amounts = {
        "amount": format_money(offer.amount, currency),
        "rate": percent_text(offer.min_rate_bps),
        "lent": format_money(lent, currency),
    }
    if lent:
        message = _(
            "Your offer of %(amount)s at %(rate)s or more is posted; the money is held in your wallet until it "
            "is lent out or you cancel. %(lent)s was matched with open loan requests at once.",
            **amounts,
        )
    else:
        message = _(
            "Your offer of %(amount)s at %(rate)s or more is posted; the money is held in your wallet until it "
            "is lent out or you cancel.",
            **amounts,
        )
    flash(message, "success")
    return redirect(url_for("lending.lend", _anchor="my-offers"))


@bp.post("/lend/offers/<int:offer_id>/cancel")
@login_required
def cancel_offer(offer_id: int):
    member = web_member()
    offer = market.get_offer(offer_id)
    if offer.lender_id != member.id:
        raise Forbidden(_("Only the lender can cancel its offer."))
    released, currency = offer.remaining, offer.currency
    try:
        market.cancel_offer(offer_id, member.id)
    except DomainError as exc:
        flash(exc.localized(), "danger")
    else:
        flash(
            _(
                "Offer cancelled: %(amount)s not yet lent is available in your wallet again. "
                "Parts already in loans keep running.",
                amount=format_money(released, currency),
            ),
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
    open_requests, _total = market.list_requests(borrower_id=member.id, offset=0, limit=50)
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
        raise Forbidden(_("Only the borrower repays a loan."))
    form = RepayForm()
    if not form.validate_on_submit():
        return render_loan(loan_id, repay_form=form, status=422)
    amount, currency = form.amount.minor_units, loan.currency
    try:
        repayment = repayments.repay(loan_id, member.id, amount)
    except InsufficientFunds as exc:
        _add_errors(form.amount, [_short_of(amount, _available(member.id, currency), currency, "payment")])
        return render_loan(loan_id, repay_form=form, status=exc.status)
    except ValidationFailed as exc:
        _add_errors(form.amount, [exc.localized()])
        return render_loan(loan_id, repay_form=form, status=exc.status)
    except (NotFound, Forbidden):
        raise
    except DomainError as exc:
        flash(exc.localized(), "danger")
        return redirect(url_for("lending.loan_detail", loan_id=loan_id))
    flash(
        _(
            "Thank you: you paid %(amount)s (%(interest)s interest, %(principal)s principal), "
            "shared among your lenders.",
            amount=format_money(repayment.amount, currency),
            interest=format_money(repayment.interest, currency),
            principal=format_money(repayment.principal, currency),
        ),
        "success",
    )
    return redirect(url_for("lending.loan_detail", loan_id=loan_id, _anchor="schedule"))


@bp.post("/loans/<int:loan_id>/payoff")
@login_required
def payoff(loan_id: int):
    member = web_member()
    loan = loans.loan_for(loan_id, member.id)
    if loan.borrower_id != member.id:
        raise Forbidden(_("Only the borrower pays off a loan."))
    currency = loan.currency
    try:
        repayment = repayments.payoff(loan_id, member.id)
    except InsufficientFunds:
        quote = repayments.payoff_quote(loans.get_loan(loan_id))
        flash(_short_of(quote["amount"], _available(member.id, currency), currency, "payoff"), "danger")
    except (NotFound, Forbidden):
        raise
    except DomainError as exc:
        flash(exc.localized(), "danger")
    else:
        flash(
            _(
                "Your loan is paid off: %(amount)s (%(principal)s principal and %(interest)s interest to today). "
                "Nothing more is owed.",
                amount=format_money(repayment.amount, currency),
                principal=format_money(repayment.principal, currency),
                interest=format_money(repayment.interest, currency),
            ),
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
    offers, _total = market.list_offers(member.id, offset=0, limit=500)
    waiting = sum(o.remaining for o in offers if o.status == "open" and o.currency == currency)
    return render_template(
        "lending/portfolio.html",
        refusal=None,
        figures=figures,
        currency=currency,
        currencies=sorted(set(figures["currencies"]) | {currency}),
        flows=flows,
        chart_svg=Markup(  # every text in it escaped
            chart.render_svg(flows, currency=currency, gettext=_, money=format_money, locale=current_locale())
        ),
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
