"""Domain exceptions and the one place they become HTTP responses.

API requests (paths under ``/api/``) get the JSON body of shared/API.md:
``{"code", "status", "message", "reason", "errors"}``. Browser requests get
friendly HTML pages for 403/404/500 and the message for other errors.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from flask import jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from .texts import N_, Msg

log = logging.getLogger(__name__)


class DomainError(Exception):
    """A rule of the marketplace said no. Subclasses fix status and reason.

    ``message`` may be a :class:`~marketplace.texts.Msg`: ``.message`` is then
    its English sentence (the JSON API's ``message``) and ``.msg`` keeps it, so
    a page can show it in the reader's language (``i18n.localized_message``).
    A plain ``str`` is shown as it is (already translated, or from a provider).

    ``errors`` (``{"field": [message, ...]}``) may hold Msg objects too:
    ``.errors`` is then their English sentences (the JSON API's ``errors``,
    byte for byte, and never a Msg for marshmallow or flask-smorest), and
    ``.error_msgs`` keeps them, so a page shows them beside its inputs in the
    reader's language (``i18n.localized_errors``).
    """

    status = 409
    reason = "invalid_state"
    default_message = N_("The action is not allowed in the current state.")

    def __init__(self, message: str | Msg | None = None, *, errors: dict | None = None, reason: str | None = None):
        if isinstance(message, Msg):
            self.msg: Msg | None = message
            text = str(message)
        elif message:
            self.msg, text = None, message
        else:
            self.msg, text = Msg(self.default_message), self.default_message
        super().__init__(text)
        self.message = text
        self.error_msgs = errors or {}
        self.errors = english_errors(self.error_msgs)
        if reason:
            self.reason = reason

    def localized(self) -> str:
        """The message for a page, in the reader's language (``.message`` stays the English of the JSON API)."""
        from .i18n import localized_message

        return localized_message(self)


def english_errors(errors: dict) -> dict:
    """``{"field": [Msg | str, ...]}`` with every Msg as its English sentence (other values as they are)."""

    def english(value):
        if isinstance(value, Msg):
            return str(value)
        if isinstance(value, (list, tuple)) and any(isinstance(m, Msg) for m in value):
            return [str(m) if isinstance(m, Msg) else m for m in value]
        return value

    return {name: english(value) for name, value in errors.items()}


class InsufficientFunds(DomainError):
    reason = "insufficient_funds"
    default_message = N_("The wallet's available balance does not cover this amount.")


class PoolNotOpen(DomainError):
    reason = "pool_not_open"
    default_message = N_("The pool is not open.")


class NotVerified(DomainError):
    reason = "not_verified"
    default_message = N_("Your identity must be verified (KYC) before you can do this.")


class NotVerifiedToBorrow(NotVerified):
    """Issue 4 fixes this one at 403: borrowing is a right an unverified member does not have."""

    status = 403


class IdempotencyKeyReused(DomainError):
    reason = "idempotency_key_reused"
    default_message = N_("This Idempotency-Key was already used with a different request.")


class AlreadyExists(DomainError):
    reason = "already_exists"
    default_message = N_("It already exists.")


class InvalidState(DomainError):
    reason = "invalid_state"


class LimitExceeded(DomainError):
    reason = "limit_exceeded"
    default_message = N_("A limit was exceeded.")


class RateLimited(DomainError):
    status = 429
    reason = "limit_exceeded"
    default_message = N_("Too many requests; please wait a moment and try again.")


class Unauthorized(DomainError):
    status = 401
    reason = "unauthorized"
    default_message = N_("Authentication is required: send a valid Bearer token.")


class Forbidden(DomainError):
    status = 403
    reason = "forbidden"
    default_message = N_("You are not allowed to do this.")


class NotFound(DomainError):
    status = 404
    reason = "not_found"
    default_message = N_("Not found.")


class ValidationFailed(DomainError):
    status = 422
    reason = "validation_error"
    default_message = N_("The request did not pass validation.")


class LedgerInvariantError(Exception):
    """A programming error: an entry that does not balance, etc. Never a 4xx."""


REASON_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "limit_exceeded",
    500: "internal_error",
    503: "unavailable",
}


def flatten_errors(errors, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages -> ``{"field.sub": ["message", ...]}``."""
    flat: dict[str, list[str]] = {}
    if isinstance(errors, dict):
        for key, value in errors.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, (dict, list)) and not _is_message_list(value):
                flat.update(flatten_errors(value, name))
            else:
                flat[name] = [str(m) for m in (value if isinstance(value, list) else [value])]
    elif isinstance(errors, list):
        flat[prefix or "_schema"] = [str(m) for m in errors]
    else:
        flat[prefix or "_schema"] = [str(errors)]
    return flat


def _is_message_list(value) -> bool:
    return isinstance(value, list) and all(isinstance(m, str) for m in value)


def error_body(status: int, message: str, reason: str | None = None, errors: dict | None = None) -> dict:
    return {
        "code": status,
        "status": HTTPStatus(status).phrase,
        "message": message,
        "reason": reason or REASON_BY_STATUS.get(status, "error"),
        "errors": errors or {},
    }


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/healthz"


def json_error(status: int, message: str, reason: str | None = None, errors: dict | None = None):
    response = jsonify(error_body(status, message, reason, errors))
    response.status_code = status
    return response


def _http_exception_errors(exc: HTTPException) -> dict:
    data = getattr(exc, "data", None) or {}
    messages = data.get("messages") or data.get("errors")
    if not messages:
        return {}
    # webargs nests messages under the location ("json", "query", "headers").
    if isinstance(messages, dict) and set(messages) <= {
        "json",
        "query",
        "headers",
        "form",
        "files",
        "path",
        "view_args",
    }:
        merged: dict[str, list[str]] = {}
        for location_messages in messages.values():
            merged.update(flatten_errors(location_messages))
        return merged
    return flatten_errors(messages)


def _message_for(exc: HTTPException, errors: dict) -> str:
    if exc.code == 422:
        if errors:
            first = next(iter(errors))
            return f"Validation failed: {first}: {errors[first][0]}"
        return "The request did not pass validation."
    if exc.code == 400:
        return (
            "The request body is not valid JSON."
            if request.is_json or request.data
            else (exc.description or "Bad request.")
        )
    return exc.description or HTTPStatus(exc.code).description


def register_error_handlers(app) -> None:
    @app.errorhandler(DomainError)
    def handle_domain_error(exc: DomainError):
        if wants_json():
            return json_error(exc.status, exc.message, exc.reason, exc.errors)
        return render_error_page(exc.status, exc.localized())

    @app.errorhandler(HTTPException)
    def handle_http_exception(exc: HTTPException):
        if exc.code is None:
            return exc
        if wants_json():
            errors = _http_exception_errors(exc)
            if exc.code == 422 and not errors:
                errors = {"_schema": ["Invalid input."]}
            reason = REASON_BY_STATUS.get(exc.code, "error")
            response = json_error(exc.code, _message_for(exc, errors), reason, errors)
            if exc.code == 405:
                valid = getattr(exc, "valid_methods", None)
                if valid:
                    response.headers["Allow"] = ", ".join(valid)
            return response
        return render_error_page(exc.code, exc.description)

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception):
        log.exception("Unhandled error on %s %s", request.method, request.path)
        if app.config.get("PROPAGATE_EXCEPTIONS"):
            raise exc
        if wants_json():
            return json_error(500, "An internal error occurred; it has been logged.", "internal_error")
        return render_error_page(500, None)


def render_error_page(status: int, message: str | None):
    template = f"errors/{status}.html" if status in (403, 404, 500) else "errors/generic.html"
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return render_template(template, status=status, phrase=phrase, message=message), status
