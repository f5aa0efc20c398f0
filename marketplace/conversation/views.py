"""Browser pages for the conversation: pool comments, verified reviews, supplier profiles.

A comment or review that does not pass is shown on the pool page again, next
to its field, with what was typed kept; a comment sent too fast gets a 429
with the same page and a friendly sentence.
"""

from __future__ import annotations

from decimal import Decimal

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_required

from ..accounts.auth import web_member
from ..errors import DomainError, Forbidden, NotFound, ValidationFailed
from ..extensions import limiter
from ..i18n import localized_errors
from ..money import round_half_up
from ..pools.forms import CommentForm, ReviewForm
from ..pools.views import render_detail
from . import services

bp = Blueprint("conversation", __name__)

TOO_FAST = _l(
    "You are commenting faster than the marketplace allows. Please wait a minute, then post again — your text is kept below."
)


def _member_key() -> str:
    """Comments are rate limited per member (per address before sign-in)."""
    if current_user.is_authenticated:
        return f"member:{current_user.id}"
    return f"ip:{get_remote_address()}"


@bp.errorhandler(429)
def too_many_requests(exc):
    """A comment sent too fast: the pool page again, the text kept, the reason next to it."""
    pool_id = (request.view_args or {}).get("pool_id")
    if request.endpoint != "conversation.add_pool_comment" or pool_id is None:
        return render_template("conversation/too_fast.html", message=str(TOO_FAST)), 429
    form = CommentForm(meta={"csrf": False})
    form.body.errors = [str(TOO_FAST)]
    try:
        response = current_app.make_response(render_detail(pool_id, comment_form=form, status=429))
    except NotFound:
        return render_template("conversation/too_fast.html", message=str(TOO_FAST)), 429
    retry_after = getattr(exc, "retry_after", None)
    if retry_after:
        response.headers["Retry-After"] = str(retry_after)
    return response


@bp.post("/pools/<int:pool_id>/comments")
@login_required
@limiter.limit(lambda: current_app.config["COMMENT_RATE_LIMIT"], key_func=_member_key, methods=["POST"])
def add_pool_comment(pool_id: int):
    form = CommentForm()
    if not form.validate_on_submit():
        return render_detail(pool_id, comment_form=form, status=422)
    try:
        comment = services.add_comment("pool", pool_id, web_member().id, form.body.data)
    except ValidationFailed as exc:
        form.body.errors = [*form.body.errors, *(localized_errors(exc).get("body") or [exc.localized()])]
        return render_detail(pool_id, comment_form=form, status=exc.status)
    except NotFound:
        raise
    except DomainError as exc:
        flash(exc.localized(), "danger")
        return redirect(url_for("pools.detail", pool_id=pool_id, _anchor="discussion"))
    flash(_("Your comment is posted."), "success")
    return redirect(url_for("pools.detail", pool_id=pool_id, _anchor=f"comment-{comment.id}"))


@bp.post("/pools/<int:pool_id>/reviews")
@login_required
def add_review(pool_id: int):
    form = ReviewForm()
    if not form.validate_on_submit():
        return render_detail(pool_id, review_form=form, status=422)
    try:
        services.add_review(pool_id, web_member().id, int(form.rating.data), form.body.data or "")
    except ValidationFailed as exc:
        for name, messages in localized_errors(exc).items():
            target = form.rating if name == "rating" else form.body
            target.errors = [*target.errors, *messages]
        return render_detail(pool_id, review_form=form, status=exc.status)
    except (NotFound, Forbidden):
        raise  # the 403/404 page: only members who really bought may review
    except DomainError as exc:
        flash(exc.localized(), "danger")
        return redirect(url_for("pools.detail", pool_id=pool_id, _anchor="reviews"))
    flash(_("Thank you: your review is posted and counts toward the supplier's rating."), "success")
    return redirect(url_for("pools.detail", pool_id=pool_id, _anchor="reviews"))


@bp.get("/suppliers/<int:supplier_id>")
@login_required
def supplier(supplier_id: int):
    profile = services.supplier_profile(supplier_id)
    average = profile["rating_average"]
    whole_stars = round_half_up(Decimal(average)) if average is not None else 0
    most = max(profile["histogram"].values(), default=0)
    return render_template(
        "conversation/supplier.html",
        profile=profile,
        whole_stars=whole_stars,
        histogram=[(star, profile["histogram"][star]) for star in range(5, 0, -1)],
        histogram_max=max(most, 1),
    )
