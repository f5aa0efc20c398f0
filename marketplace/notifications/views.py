"""Browser pages for in-app notifications, and the unread count every page may show."""

from __future__ import annotations

import logging

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user, login_required
from sqlalchemy.exc import SQLAlchemyError

from ..accounts.auth import web_member
from ..templating import is_safe_next, page_from_request
from . import services

bp = Blueprint("notifications", __name__)

PER_PAGE = 25
log = logging.getLogger(__name__)


@bp.app_context_processor
def unread_notifications():
    """``unread_notifications``: the signed-in member's unread count (0 when anonymous)."""
    try:
        if not current_user.is_authenticated:
            return {"unread_notifications": 0}
        return {"unread_notifications": services.unread_count(current_user.id)}
    except SQLAlchemyError:  # the error page of a request whose transaction broke must still render
        log.warning("unread notification count unavailable", exc_info=True)
        return {"unread_notifications": 0}


@bp.get("/notifications")
@login_required
def index():
    member = web_member()
    page = page_from_request(services.count_for_member(member.id), PER_PAGE)
    rows = services.for_member(member.id, limit=page.per_page, offset=page.offset)
    return render_template(
        "notifications/index.html",
        rows=rows,
        page=page,
        unread=services.unread_count(member.id),
        safe_link=is_safe_next,
    )


@bp.post("/notifications/read")
@login_required
def mark_all_read():
    marked = services.mark_all_read(web_member().id)
    if marked:
        flash(
            ngettext("Marked %(num)d notification as read.", "Marked %(num)d notifications as read.", marked), "success"
        )
    else:
        flash(_("Nothing new: every notification was already read."), "info")
    return redirect(url_for("notifications.index"))
