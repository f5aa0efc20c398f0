"""Browser pages for members: sign-up, sign-in, sign-out, settings, language and API tokens."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import refresh as refresh_locale
from flask_login import current_user, login_required, login_user, logout_user

from ..errors import AlreadyExists, DomainError, Unauthorized
from ..extensions import limiter
from ..i18n import SESSION_KEY, localized_errors
from ..templating import is_safe_next
from . import services
from .auth import web_member
from .forms import FOLLOW_BROWSER, LocaleForm, LoginForm, SignupForm, TokenForm

bp = Blueprint("auth", __name__)

LOGIN_LIMIT_MESSAGE = _l("Too many sign-in attempts from your connection. Please wait a minute, then try again.")

KYC_BADGES = {"verified": "badge-ok", "unverified": "badge-warn", "rejected": "badge-bad"}


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


def _next_target() -> str | None:
    """The ``?next=`` path to return to after signing in, if it is same-site."""
    target = request.args.get("next")
    return target if is_safe_next(target) else None


def _add_error(field, message: str) -> None:
    field.errors = [*field.errors, message]


@bp.route("/signup", methods=["GET", "POST"])
def signup():
    next_url = _next_target()
    if current_user.is_authenticated:
        return redirect(next_url or url_for("main.index"))
    form = SignupForm()
    problems: list[str] = []
    if form.validate_on_submit():
        try:
            member = services.create_member(
                form.email.data, form.password.data, form.display_name.data, role=form.role.data
            )
        except AlreadyExists as exc:
            _add_error(form.email, exc.localized())
        except DomainError as exc:
            for name, messages in localized_errors(exc).items():
                if name in form:
                    for message in messages:
                        _add_error(form[name], message)
            problems.append(exc.localized())
        else:
            login_user(member)
            flash(_("Welcome, %(name)s! Your account is ready.", name=member.display_name), "success")
            return redirect(next_url or url_for("main.index"))
    status = 422 if form.is_submitted() else 200
    return render_template("accounts/signup.html", form=form, next=next_url, problems=problems), status


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"], error_message=lambda: str(LOGIN_LIMIT_MESSAGE))
def login():
    next_url = _next_target()
    if current_user.is_authenticated and request.method == "GET":
        return redirect(next_url or url_for("main.index"))
    form = LoginForm()
    problems: list[str] = []
    status = 200
    if form.validate_on_submit():
        try:
            member = services.authenticate(form.email.data, form.password.data)
        except Unauthorized as exc:
            problems.append(exc.localized())
            status = 401
        except DomainError as exc:
            problems.append(exc.localized())
            status = exc.status
        else:
            login_user(member, remember=bool(form.remember.data))
            flash(_("Welcome back, %(name)s.", name=member.display_name), "success")
            return redirect(next_url or url_for("main.index"))
    elif form.is_submitted():
        status = 422
    return render_template("accounts/login.html", form=form, next=next_url, problems=problems), status


@bp.post("/logout")
def logout():
    if current_user.is_authenticated:
        services.end_sessions(current_user.id)  # copies of this (or any) session's cookies stop working too
    logout_user()  # drops the user keys and the remember-me cookie
    flash(_("You are signed out. See you soon."), "info")
    return redirect(url_for("main.index"))


def _render_settings(
    token_form: TokenForm,
    *,
    locale_form: LocaleForm | None = None,
    new_secret: str | None = None,
    new_token=None,
    status: int = 200,
):
    member = web_member()
    if locale_form is None:
        locale_form = LocaleForm(formdata=None, locale=member.locale or FOLLOW_BROWSER)
    response = current_app.make_response(
        (
            render_template(
                "accounts/settings.html",
                member=member,
                kyc_badge=KYC_BADGES.get(member.kyc_status, "badge-info"),
                tokens=services.list_tokens(member.id),
                token_form=token_form,
                locale_form=locale_form,
                new_secret=new_secret,
                new_token=new_token,
            ),
            status,
        )
    )
    if new_secret:
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/settings")
@login_required
def settings():
    return _render_settings(TokenForm(formdata=None))


@bp.post("/settings/tokens")
@login_required
def create_token():
    form = TokenForm()
    if not form.validate_on_submit():
        return _render_settings(form, status=422)
    secret, token = services.issue_token(web_member().id, form.name.data)
    return _render_settings(TokenForm(formdata=None), new_secret=secret, new_token=token)


@bp.post("/settings/tokens/<int:token_id>/revoke")
@login_required
def revoke_token(token_id: int):
    token = services.revoke_token(web_member().id, token_id)  # someone else's token: NotFound -> 404
    flash(
        _(
            "The token “%(name)s” (%(prefix)s…) is revoked; programs using it can no longer sign in.",
            name=token.name,
            prefix=token.prefix,
        ),
        "success",
    )
    return redirect(url_for("auth.settings"))


@bp.post("/settings/language")
@login_required
def save_language():
    """The member's own language, or none to follow the browser (the footer switch sets it too)."""
    form = LocaleForm()
    if not form.validate_on_submit():
        return _render_settings(TokenForm(formdata=None), locale_form=form, status=422)
    locale = form.locale.data or None
    services.set_locale(web_member().id, locale)
    if locale is None:
        session.pop(SESSION_KEY, None)  # an earlier footer choice must not outlive "follow my browser"
    else:
        session[SESSION_KEY] = locale
    refresh_locale()  # the confirmation is already in the language just chosen
    flash(_("Your language setting is saved."), "success")
    return redirect(url_for("auth.settings"))
