"""What every API blueprint shares: pagination defaults, the auth doc, JSON bodies.

- A view documented with ``@bp.doc(security=BEARER)`` checks its Bearer token
  before anything else, so a caller without a valid token gets 401 whatever
  the body or query holds (never a 422 that reveals the endpoint's rules).
- An ``<int:...>`` id in a path only matches 1 .. 2**63-1 in ASCII digits
  without leading zeros: anything else is 404 (never 405, even where the
  path has views for other methods).
- Bodies must be JSON (``application/json`` or ``application/*+json``): a
  body of another media type is 415, and anything unparseable — bad syntax,
  bad UTF-8, an integer beyond Python's digit limit, absurd nesting — is 400.

Every status an operation can answer is in its OpenAPI document (there is no
catch-all ``default`` response): the rules above add 401/403 to operations
that need a token, 404 to those with a path parameter, 400/415/422 to those
with a body, 422 to those taking query arguments or an Idempotency-Key, and
409 to the idempotent ones; a view documents any other status it answers
(409 where a rule of the marketplace may say no, 429 where it is
rate-limited, …) with ``@bp.errors(...)``.
"""

from __future__ import annotations

import functools
import re
from http import HTTPStatus

from flask_smorest import Blueprint as SmorestBlueprint
from webargs import core
from webargs.flaskparser import FlaskParser, abort, is_json_request
from werkzeug.routing import IntegerConverter

BEARER = [{"bearerAuth": []}]


class JsonBodyParser(FlaskParser):
    """webargs' Flask parser, strict about the body's media type and syntax."""

    def _raw_load_json(self, req):
        raw = req.get_data(cache=True)
        if not is_json_request(req):
            if raw:
                abort(415, messages={"headers": {"Content-Type": ["Send the body as application/json."]}})
            return core.missing
        return core.parse_json(raw)

    def load_json(self, req, schema):
        try:
            return super().load_json(req, schema)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError is handled (400) by webargs itself
            return self._handle_invalid_json_error(exc, req)


class PagingParser(FlaskParser):
    """``page`` and ``page_size`` are plain ASCII numbers of at most nine digits.

    (``int()`` alone would take "١٠" or "+5", and an enormous page number
    would overflow the database's OFFSET.)
    """

    def load_querystring(self, req, schema):
        for name in ("page", "page_size"):
            for raw in req.args.getlist(name):
                if not _PAGE_NUMBER.fullmatch(raw):
                    abort(422, messages={"query": {name: ["Must be a whole number from 1 to 999999999."]}})
        return super().load_querystring(req, schema)


_PAGE_NUMBER = re.compile(r"[0-9]{1,9}")
# Ids are 64-bit: a larger number in a path is simply not found (the
# database would overflow on it), and so is 0.
MAX_ID = 2**63 - 1
_ID_IN_PATH = re.compile(r"<int:(\w+)>")


def decimal_range_regex(largest: int) -> str:
    """A regular expression matching exactly the decimal numbers 1 .. ``largest`` (no sign, no leading zero)."""
    digits = str(largest)
    width = len(digits)
    alternatives = [f"[1-9][0-9]{{0,{width - 2}}}"] if width > 1 else []
    for i, digit in enumerate(digits):
        low = 1 if i == 0 else 0
        if int(digit) > low:
            alternatives.append(f"{digits[:i]}[{low}-{int(digit) - 1}][0-9]{{{width - i - 1}}}")
    alternatives.append(digits)
    return "(?:" + "|".join(alternatives) + ")"


class IdConverter(IntegerConverter):
    """``<id:name>``: an id 1 .. 2**63-1, decided by the URL pattern itself.

    werkzeug's ``int(min=…, max=…)`` matches any digits and rejects the value
    only afterwards; when another rule of the same pattern takes a different
    method, that rejection came out as 405 instead of 404.
    """

    regex = decimal_range_regex(MAX_ID)

    def __init__(self, url_map):
        super().__init__(url_map, min=1, max=MAX_ID)


class ApiBlueprint(SmorestBlueprint):
    """flask-smorest blueprint with the API's paging (default 50, at most 500)."""

    DEFAULT_PAGINATION_PARAMETERS = {"page": 1, "page_size": 50, "max_page_size": 500}
    ARGUMENTS_PARSER = JsonBodyParser()
    PAGINATION_ARGUMENTS_PARSER = PagingParser()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._prepare_doc_cbks.append(self._prepare_marketplace_doc)
        self.record_once(lambda state: state.app.url_map.converters.setdefault("id", IdConverter))

    def add_url_rule(self, rule, endpoint=None, view_func=None, provide_automatic_options=None, **kwargs):
        rule = _ID_IN_PATH.sub(r"<id:\1>", rule)
        if view_func is not None:
            if needs_token(view_func) and not getattr(view_func, "checks_own_token", False):
                view_func = _token_first(view_func)
            view_func._apidoc = {**getattr(view_func, "_apidoc", {}), "path_parameters": "<" in rule}
        super().add_url_rule(rule, endpoint, view_func, provide_automatic_options, **kwargs)

    def errors(self, *statuses: int):
        """Document error statuses a view answers beyond those every operation of its kind gets (see above)."""

        def decorator(func):
            for status in statuses:
                func = self.alt_response(status, response=HTTPStatus(status).name)(func)
            return func

        return decorator

    @staticmethod
    def _prepare_marketplace_doc(doc, doc_info, **kwargs):
        """Document the Idempotency-Key header and the error statuses every operation of its kind can answer."""
        responses = doc.setdefault("responses", {})

        def add(status: int) -> None:
            if status not in responses and str(status) not in responses:
                responses[status] = HTTPStatus(status).name

        secured = bool(doc_info.get("manual_doc", {}).get("security"))
        if secured:
            add(401)
            add(403)
        if doc_info.get("path_parameters"):
            add(404)
        if "requestBody" in doc:
            add(400)
            add(415)
            add(422)
        if any(p.get("in") == "query" for p in doc.get("parameters", []) if isinstance(p, dict)):
            add(422)
        if doc_info.get("idempotent"):
            doc.setdefault("parameters", []).append(IDEMPOTENCY_KEY_PARAMETER)
            add(409)
            add(422)
        return doc


IDEMPOTENCY_KEY_PARAMETER = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": "Repeat with the same key and body to get the first response again, with no second effect.",
}


def needs_token(view) -> bool:
    return bool(getattr(view, "_apidoc", {}).get("manual_doc", {}).get("security"))


def _token_first(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        from .accounts.auth import api_member

        api_member()
        return view(*args, **kwargs)

    return wrapper


def page_slice(pagination_parameters, total: int) -> tuple[int, int]:
    """Record the total for X-Pagination; return (offset, limit)."""
    pagination_parameters.item_count = total
    return pagination_parameters.first_item, pagination_parameters.page_size
