"""Browser pages for buying pools: browse, start, pledge (with a confirm step), bid, close, deliver.

Thin: parse the form, call the service with ``current_user``'s id, show the
service's message (next to the field, or flashed) and redirect back. Anyone
may browse the list and a pool's page; every action needs a signed-in member.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from functools import lru_cache

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_login import current_user, login_required
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup

from ..accounts.auth import web_member
from ..clock import now
from ..conversation import services as conversation
from ..errors import DomainError, Forbidden, InsufficientFunds, NotFound, NotVerified, ValidationFailed
from ..i18n import current_locale, format_money, format_number, localized_errors
from ..memo import Memo
from ..money import MAX_AMOUNT
from ..templating import Page, page_from_request
from ..wallet import services as wallet
from . import chart, queries, services
from .forms import MIN_TIER_ROWS, BidForm, CommentForm, PledgeForm, PoolForm, ReviewForm

bp = Blueprint("pools", __name__)

PER_PAGE = 12
PLEDGES_PER_PAGE = 25
COMMENTS_PER_PAGE = 50
CLOSING_SOON = timedelta(hours=48)
TABS = (("open", _l("Open")), ("closing", _l("Closing soon")), ("closed", _l("Closed")))
# The chart's words and numbers in the reader's language (chart.py stays free of Flask).
CHART_WORDING = chart.Wording(gettext=_, ngettext=ngettext, number=format_number, money=format_money)


# ---------------------------------------------------------------- helpers


def time_left(deadline: datetime) -> tuple[int, int, int] | None:
    """What :func:`closes_in` says of ``deadline`` now, as numbers: (days, hours, minutes) shown (0: not
    shown), or None once the deadline has passed. The words depend on now only through these."""
    seconds = int((deadline - now()).total_seconds())
    if seconds <= 0:
        return None
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    return (days, hours if days < 7 else 0, minutes if not days and hours < 6 else 0)


def time_left_text(left: tuple[int, int, int] | None) -> str:
    """:func:`time_left`'s numbers in words, in the reader's language."""
    if left is None:
        return _("deadline passed, closing shortly")
    days, hours, minutes = left
    parts = []
    if days:
        parts.append(ngettext("%(num)s day", "%(num)s days", days))
    if hours:
        parts.append(ngettext("%(num)s hour", "%(num)s hours", hours))
    if minutes:
        parts.append(ngettext("%(num)s minute", "%(num)s minutes", minutes))
    return _("closes in %(time)s", time=" ".join(parts) if parts else _("less than a minute"))


@bp.app_template_filter("closes_in")
def closes_in(deadline: datetime) -> str:
    """``"closes in 2 days 4 hours"``; ``"deadline passed, closing shortly"`` once it is over."""
    return time_left_text(time_left(deadline))


@lru_cache(maxsize=256)
def _chart_svg(steps: tuple, volume: int, min_volume: int, currency: str, unit: str, locale: str) -> str:
    """The price chart: chart.render_svg is pure, so its SVG is kept for the same curve, volumes and language."""
    return chart.render_svg(
        list(steps),
        current_volume=volume,
        min_volume=min_volume,
        currency=currency,
        unit=unit,
        wording=CHART_WORDING,
    )


# The pool page's public summary (templates/pools/_summary.html) by pool, language, time left (the
# numbers the "closes in" words say) and script root, kept with the exact snapshot rows it was rendered
# from: the same rows give the same HTML, other rows render it anew.
_SUMMARIES = Memo(512)


def _summary(rows: tuple[tuple, ...], snapshot: queries.PoolSnapshot) -> Markup:
    """The summary's HTML: rendered once per distinct input, for every viewer alike (it shows nobody's own)."""
    pool = snapshot.pool
    left = time_left(pool.deadline) if pool.status == "open" else ()
    locale = current_locale()
    key = (pool.id, locale, left, request.script_root)
    html = _SUMMARIES.get(key, rows)
    if html is None:
        insight = queries.insight(snapshot)
        steps = chart.steps_from_bids(snapshot.bids)
        svg = _chart_svg(tuple(steps), insight["volume"], pool.min_volume, pool.currency, pool.unit, locale)
        html = Markup(
            current_app.jinja_env.get_template("pools/_summary.html").render(
                pool=pool,
                insight=insight,
                steps=steps,
                chart_svg=Markup(svg),  # built by chart.render_svg, every text in it escaped
                closes=time_left_text(left) if left != () else "",
            )
        )
        _SUMMARIES.put(key, rows, html)
    return html


# The whole page as a visitor who is not signed in sees an open pool, by pool, language, time left,
# whether it still takes pledges, script root and path with query, kept with the exact input it was
# rendered from (the snapshot rows and the comments shown): the same for every such visitor but for
# their CSRF token, which the stored page holds as a slot filled in for each request.
_VISITOR_PAGES = Memo(512)
_TOKEN_SLOT = f"csrf-slot-{uuid.uuid4().hex}"  # per process: a comment cannot know (or forge) it


def _visitor_page(pool, snapshot_rows: tuple, comments: list, accepting: bool, context) -> str:
    """The page of ``context()`` as the visitor sees it: rendered once per distinct input (see _VISITOR_PAGES)."""
    key = (pool.id, current_locale(), time_left(pool.deadline), accepting, request.script_root, request.full_path)
    shown = tuple((c.id, c.author_id, c.author.display_name, c.created_at, c.body) for c in comments)
    data = (snapshot_rows, shown)
    html = _VISITOR_PAGES.get(key, data)
    if html is None:
        html = render_template("pools/detail.html", **context(), csrf_token=lambda: _TOKEN_SLOT)
        _VISITOR_PAGES.put(key, data, html)
    return html.replace(_TOKEN_SLOT, generate_csrf())


def _member():
    return web_member() if current_user.is_authenticated else None


def _available(member_id: int, currency: str) -> int:
    for row in wallet.balances(member_id):
        if row["currency"] == currency:
            return row["available"]
    return 0


def _back(pool_id: int, anchor: str | None = None):
    return redirect(url_for("pools.detail", pool_id=pool_id, _anchor=anchor))


def _add_errors(field, messages) -> None:
    field.errors = [*field.errors, *(m[:1].upper() + m[1:] for m in messages)]


def _place_errors(form, exc: DomainError) -> None:
    """A service's ``ValidationFailed.errors`` next to the form's inputs (the rest as the first field's)."""
    placed = False
    for name, messages in localized_errors(exc).items():
        if name in form and name != "csrf_token":
            _add_errors(form[name], messages)
            placed = True
    if not placed:
        first = next(f for f in form if f.type not in ("CSRFTokenField", "HiddenField"))
        _add_errors(first, [exc.localized()])


def _comment_page(total: int) -> Page:
    """The thread is shown newest last; without ``?cpage=`` the last page (the newest comments)."""
    last = Page(1, COMMENTS_PER_PAGE, total).pages
    raw = request.args.get("cpage", "")
    number = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 10 else last
    return Page(min(max(number, 1), last), COMMENTS_PER_PAGE, total)


def render_detail(
    pool_id: int,
    *,
    pledge_form: PledgeForm | None = None,
    preview: dict | None = None,
    bid_form: BidForm | None = None,
    comment_form: CommentForm | None = None,
    review_form: ReviewForm | None = None,
    status: int = 200,
):
    """The pool page, optionally with a submitted form (and its errors) in place.

    The pool's public numbers come from one read model (queries.pool_snapshot: one
    statement); what only the signed-in viewer may see is read for that viewer alone.
    A visitor who is not signed in gets an open pool's page from _visitor_page.
    """
    snapshot_rows = queries.snapshot_rows(pool_id, with_comment_count=True)
    snapshot = queries.snapshot_of(snapshot_rows, with_comment_count=True)
    pool = snapshot.pool
    member = _member()
    accepting = pool.status == "open" and now() < pool.deadline
    comment_page = _comment_page(snapshot.comment_count)
    comments = []
    if snapshot.comment_count:
        comments = conversation.comments("pool", pool.id, offset=comment_page.offset, limit=comment_page.per_page)
    forms = dict(
        pledge_form=pledge_form,
        preview=preview,
        bid_form=bid_form,
        comment_form=comment_form,
        review_form=review_form,
    )
    submitted = any(form is not None for form in forms.values())
    if member is None and pool.status == "open" and not submitted and not session.get("_flashes"):
        page = _visitor_page(
            pool,
            snapshot_rows,
            comments,
            accepting,
            lambda: _detail_context(snapshot_rows, snapshot, None, accepting, comment_page, comments, **forms),
        )
        return page, status
    context = _detail_context(snapshot_rows, snapshot, member, accepting, comment_page, comments, **forms)
    return render_template("pools/detail.html", **context), status


def _detail_context(
    snapshot_rows,
    snapshot,
    member,
    accepting,
    comment_page,
    comments,
    *,
    pledge_form,
    preview,
    bid_form,
    comment_form,
    review_form,
) -> dict:
    """What templates/pools/detail.html shows ``member`` (None: a visitor who is not signed in)."""
    pool = snapshot.pool
    own_pledges, own_bid, can_review, available = [], None, False, None
    if member is not None:
        if not member.is_supplier:
            own_pledges = queries.own_pledges(pool.id, member.id)
            available = _available(member.id, pool.currency)
        if member.is_supplier and pool.status == "open":
            own_bid = next(iter(services.bids_for(pool.id, member.id)), None)
        can_review = pool.status == "delivered" and conversation.can_review(pool.id, member.id)
    raw_rows = request.args.get("rows", "")
    rows = int(raw_rows) if raw_rows.isascii() and raw_rows.isdigit() and len(raw_rows) < 4 else MIN_TIER_ROWS
    if bid_form is None:
        bid_form = BidForm.from_bid(own_bid, rows) if own_bid is not None else BidForm.blank_form(rows)
    comparison = services.closed_pool_bids(pool.id) if pool.status != "open" else []
    # Forms only where the page shows them (a visitor who is not signed in sees none of them).
    if pledge_form is None and member is not None and not member.is_supplier and accepting:
        pledge_form = PledgeForm(formdata=None)
    if review_form is None and can_review:
        review_form = ReviewForm(formdata=None)
    if comment_form is None and member is not None:
        comment_form = CommentForm(formdata=None)
    return dict(
        pool=pool,
        summary=_summary(snapshot_rows, snapshot),
        member=member,
        accepting=accepting,
        is_organizer=member is not None and member.id == pool.organizer_id,
        own_pledges=own_pledges,
        available=available,
        own_bid=own_bid,
        pledge_form=pledge_form,
        preview=preview,
        bid_form=bid_form,
        more_rows=min(20, len(bid_form.rows) + 3),
        comparison=comparison,
        winner=next((b for b in comparison if b.id == pool.winning_bid_id), None),
        can_review=can_review,
        review_form=review_form,
        reviews=conversation.pool_reviews(pool.id) if pool.status != "open" else [],  # reviews follow delivery
        comments=comments,
        comment_page=comment_page,
        comment_form=comment_form,
    )


def _act(pool_id: int, action, success, anchor: str | None = None):
    """Run a service action; its DomainError becomes a flashed message. Back to the pool either way."""
    try:
        result = action()
    except (NotFound, Forbidden):
        raise  # another member's pledge or pool: the 403/404 page, never a flash that hides it
    except DomainError as exc:
        flash(exc.localized(), "danger")
    else:
        flash(success(result), "success")
    return _back(pool_id, anchor)


# ---------------------------------------------------------------- browsing


def _browse(tab: str, q: str, offset: int):
    if tab == "closing":
        return services.list_pools_closing_soon(CLOSING_SOON, q=q or None, offset=offset, limit=PER_PAGE)
    return services.list_pools(status=tab, q=q or None, offset=offset, limit=PER_PAGE)


@bp.get("/pools")
def index():
    tab = request.args.get("tab", "open")
    if tab not in dict(TABS):
        tab = "open"
    q = (request.args.get("q") or "").replace("\x00", "").strip()[:200]
    total = _browse(tab, q, 0)[1]
    page = page_from_request(total, PER_PAGE)
    pools, total = _browse(tab, q, page.offset)
    return render_template(
        "pools/index.html",
        pools=services.present_pools(pools),
        tab=tab,
        tabs=TABS,
        q=q,
        page=page,
        closing_hours=CLOSING_SOON // timedelta(hours=1),
    )


@bp.get("/pools/<int:pool_id>")
def detail(pool_id: int):
    return render_detail(pool_id)


@bp.get("/pledges")
@login_required
def my_pledges():
    member = web_member()
    page = page_from_request(services.count_my_pledges(member.id), PLEDGES_PER_PAGE)
    pledges = services.my_pledges(member.id, offset=page.offset, limit=page.per_page)
    return render_template("pools/my_pledges.html", pledges=pledges, page=page)


# ---------------------------------------------------------------- starting a pool


def _create_refusal(member) -> tuple[str, str, int] | None:
    if member.is_supplier:
        return ("supplier", _("Suppliers bid on pools; members and operators organise them."), 403)
    if not member.is_operator and not member.is_verified:
        return ("unverified", NotVerified().localized(), 403)
    return None


@bp.route("/pools/new", methods=["GET", "POST"])
@login_required
def create():
    member = web_member()
    refusal = _create_refusal(member)
    if refusal is not None:
        kind, message, status = refusal
        return render_template("pools/create.html", form=None, refusal=kind, message=message), status
    form = PoolForm()
    if request.method == "GET":
        form.deadline.data = (now() + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M")
    problems: list[str] = []
    if form.validate_on_submit():
        try:
            pool = services.create_pool(
                member.id,
                title=form.title.data,
                description=form.description.data or "",
                unit=form.unit.data,
                currency=form.currency.data,
                min_volume=form.min_volume.value,
                deadline=form.deadline.moment,
            )
        except ValidationFailed as exc:
            _place_errors(form, exc)
        except DomainError as exc:
            problems.append(exc.localized())
        else:
            flash(_("Your pool “%(title)s” is open. Share it so members can pledge.", title=pool.title), "success")
            return redirect(url_for("pools.detail", pool_id=pool.id))
    status = 422 if form.is_submitted() else 200
    return render_template("pools/create.html", form=form, refusal=None, problems=problems, now_utc=now()), status


# ---------------------------------------------------------------- pledging


@bp.post("/pools/<int:pool_id>/pledge")
@login_required
def pledge(pool_id: int):
    pool = services.get_pool(pool_id)
    member = web_member()
    if member.is_supplier:
        flash(_("Suppliers cannot pledge to pools; they bid on them."), "danger")
        return _back(pool_id)
    form = PledgeForm()
    if not form.validate_on_submit():
        return render_detail(pool_id, pledge_form=form, status=422)
    quantity, price = form.quantity.value, form.max_unit_price.minor_units
    held = quantity * price
    available = _available(member.id, pool.currency)
    if held > MAX_AMOUNT:
        limit = format_money(MAX_AMOUNT, pool.currency)
        _add_errors(form.quantity, [_("Quantity × price may not exceed %(limit)s.", limit=limit)])
        return render_detail(pool_id, pledge_form=form, status=422)
    if form.confirm.data != "1":
        preview = {"quantity": quantity, "price": price, "held": held, "available": available}
        if held > available:
            _add_errors(form.max_unit_price, [_short_of(held, available, pool.currency)])
            return render_detail(pool_id, pledge_form=form, status=409)
        return render_detail(pool_id, pledge_form=form, preview=preview)
    try:
        services.place_pledge(pool_id, member.id, quantity=quantity, max_unit_price=price)
    except InsufficientFunds as exc:
        _add_errors(form.max_unit_price, [_short_of(held, _available(member.id, pool.currency), pool.currency)])
        return render_detail(pool_id, pledge_form=form, status=exc.status)
    except ValidationFailed as exc:
        _place_errors(form, exc)
        return render_detail(pool_id, pledge_form=form, status=exc.status)
    except NotFound:
        raise
    except DomainError as exc:
        flash(exc.localized(), "danger")
        return _back(pool_id)
    flash(
        _(
            "You pledged %(quantity)s %(unit)s at up to %(price)s each: "
            "%(held)s is held in your wallet until the pool closes.",
            quantity=format_number(quantity),
            unit=pool.unit,
            price=format_money(price, pool.currency),
            held=format_money(held, pool.currency),
        ),
        "success",
    )
    return _back(pool_id, "my-pledges")


def _short_of(held: int, available: int, currency: str) -> str:
    return _(
        "Not enough money available: this pledge holds %(held)s but you have "
        "%(available)s available. Deposit money in your wallet or pledge less.",
        held=format_money(held, currency),
        available=format_money(available, currency),
    )


@bp.post("/pools/<int:pool_id>/pledges/<int:pledge_id>/withdraw")
@login_required
def withdraw(pool_id: int, pledge_id: int):
    def done(p):
        return _(
            "Pledge withdrawn: %(amount)s is available in your wallet again.",
            amount=format_money(p.held_amount, p.pool.currency),
        )

    return _act(pool_id, lambda: services.withdraw_pledge(pool_id, pledge_id, web_member().id), done, "my-pledges")


# ---------------------------------------------------------------- suppliers


@bp.post("/pools/<int:pool_id>/bid")
@login_required
def bid(pool_id: int):
    services.get_pool(pool_id)
    member = web_member()
    if not member.is_supplier:
        flash(_("Only suppliers can bid on pools."), "danger")
        return _back(pool_id)
    form = BidForm.from_formdata(request.form)
    if not form.validate():
        return render_detail(pool_id, bid_form=form, status=422)
    try:
        services.place_bid(pool_id, member.id, tiers=form.tiers, capacity=form.capacity_value)
    except ValidationFailed as exc:
        form.add_service_errors(localized_errors(exc), exc.localized())
        return render_detail(pool_id, bid_form=form, status=exc.status)
    except NotFound:
        raise
    except DomainError as exc:
        flash(exc.localized(), "danger")
        return _back(pool_id)
    flash(
        ngettext(
            "Your bid with %(num)s price tier is in. You can replace it until the pool closes.",
            "Your bid with %(num)s price tiers is in. You can replace it until the pool closes.",
            len(form.tiers),
        ),
        "success",
    )
    return _back(pool_id, "bid")


@bp.post("/pools/<int:pool_id>/delivery")
@login_required
def deliver(pool_id: int):
    def done(pool):
        payout = format_money(pool.award_total - pool.award_fee, pool.currency)
        return _("Delivery confirmed. %(payout)s was paid to your wallet (after the platform fee).", payout=payout)

    return _act(pool_id, lambda: services.confirm_delivery(pool_id, web_member().id), done, "award")


# ---------------------------------------------------------------- organizer and operators


@bp.post("/pools/<int:pool_id>/close")
@login_required
def close(pool_id: int):
    def done(pool):
        if pool.status == "awarded":
            return _(
                "The pool was awarded: %(volume)s %(unit)s at %(price)s each.",
                volume=format_number(pool.award_volume),
                unit=pool.unit,
                price=format_money(pool.award_unit_price, pool.currency),
            )
        return _("The pool closed without an award: no bid could clear it. Every hold was released.")

    return _act(
        pool_id, lambda: services.close_pool(pool_id, web_member().id, ip=request.remote_addr or ""), done, "award"
    )


@bp.post("/pools/<int:pool_id>/cancel")
@login_required
def cancel(pool_id: int):
    return _act(
        pool_id,
        lambda: services.cancel_pool(pool_id, web_member().id, ip=request.remote_addr or ""),
        lambda pool: _("The pool is cancelled. Every pledge's money was released or refunded."),
    )
