"""The home page, and the language switch shown on every page."""

from urllib.parse import urlsplit

from flask import Blueprint, abort, redirect, render_template, request, session
from flask_login import current_user

from ..i18n import LANGUAGES, SESSION_KEY
from ..wallet import services as wallet

bp = Blueprint("main", __name__)


@bp.get("/")
def index():
    balances = wallet.balances(current_user.id) if current_user.is_authenticated else []
    return render_template("main/index.html", balances=balances)


def _safe_next(target: str | None) -> str:
    """Only a path on this site (no scheme, no host, no ``//``): never an open redirect."""
    parts = urlsplit(target or "/")
    if parts.scheme or parts.netloc or not (target or "/").startswith("/") or (target or "").startswith("//"):
        return "/"
    return target.rstrip("?") or "/"


@bp.post("/language")
def set_language():
    """Remember the chosen language: in the session, and as a signed-in member's own setting."""
    locale = request.form.get("locale", "")
    if locale not in LANGUAGES:
        abort(400)
    session[SESSION_KEY] = locale
    if current_user.is_authenticated:
        from ..accounts.services import set_locale

        set_locale(current_user.id, locale)
    return redirect(_safe_next(request.form.get("next")), code=303)
