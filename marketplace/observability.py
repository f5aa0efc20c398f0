"""Request ids and structured (JSON) logs.

Every request gets an id: the caller's ``X-Request-ID`` when it is a sane
token (a load balancer's), else a new one. It is returned in the response's
``X-Request-ID`` header, attached to every log record written while the
request runs, and gunicorn's access log (gunicorn.conf.py) prints it, so one
request can be followed across the access log and the application log.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from datetime import UTC, datetime

from flask import Flask, g, has_request_context, request

_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
HEADER = "X-Request-ID"


def current_request_id() -> str | None:
    return getattr(g, "request_id", None) if has_request_context() else None


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id (and the exception)."""

    def format(self, record: logging.LogRecord) -> str:
        body = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body, ensure_ascii=False)


def configure_json_logging(level: int = logging.INFO) -> None:
    """Application logs as JSON lines on stderr (gunicorn.conf.py calls this in each worker)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def init_app(app: Flask) -> None:
    @app.before_request
    def assign_request_id():
        given = request.headers.get(HEADER, "")
        g.request_id = given if _SANE_ID.match(given) else secrets.token_hex(12)

    @app.after_request
    def return_request_id(response):
        request_id = current_request_id()
        if request_id:
            response.headers[HEADER] = request_id
        return response
