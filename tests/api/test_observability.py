"""Request ids on every response and in the logs; the JSON log line; the gunicorn settings."""

from __future__ import annotations

import json
import logging
import runpy
from pathlib import Path

from marketplace.observability import JsonFormatter, RequestIdFilter


def test_every_response_has_a_request_id(client):
    first = client.get("/healthz").headers["X-Request-ID"]
    second = client.get("/api/v1/members/me").headers["X-Request-ID"]
    assert len(first) >= 16 and first != second


def test_a_sane_incoming_request_id_is_kept_and_a_bad_one_replaced(client):
    assert client.get("/healthz", headers={"X-Request-ID": "lb-1234-abcd"}).headers["X-Request-ID"] == "lb-1234-abcd"
    bad = client.get("/healthz", headers={"X-Request-ID": 'x"; drop'}).headers["X-Request-ID"]
    assert bad != 'x"; drop' and bad.isalnum()


def test_log_lines_are_json_with_the_request_id(app):
    record = logging.LogRecord("marketplace.test", logging.WARNING, __file__, 1, "paid %s", ("€5",), None)
    with app.test_request_context("/", headers={"X-Request-ID": "req-00000001"}):
        app.preprocess_request()
        RequestIdFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "paid €5" and line["level"] == "WARNING" and line["request_id"] == "req-00000001"


def test_gunicorn_settings_are_sane_and_the_access_log_is_json():
    settings = runpy.run_path(str(Path(__file__).resolve().parents[2] / "gunicorn.conf.py"))
    assert settings["workers"] >= 1 and settings["timeout"] > 0 and settings["graceful_timeout"] > 0
    sample = {
        "t": "[22/Nov/2026:10:00:00 +0000]",
        "h": "127.0.0.1",
        "m": "GET",
        "U": "/pools",
        "q": "a=1",
        "s": "200",
        "B": "512",
        "M": "12",
        "{x-request-id}o": "abc123",
        "a": "curl/8",
    }
    assert json.loads(settings["access_log_format"] % sample)["request_id"] == "abc123"
