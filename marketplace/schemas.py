"""Shared marshmallow fields and schemas for the API boundary."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from flask import current_app
from marshmallow import Schema, ValidationError, fields, validate

from .money import MAX_AMOUNT


class StrictInteger(fields.Integer):
    """An integer and nothing else: no bools, floats, or numeric strings."""

    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)

    def _validated(self, value):
        if isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


def Amount(**kwargs):  # noqa: N802 - a field factory reads like a field
    """Minor units, 1 .. 10^12 (or 0 .. with ``allow_zero``)."""
    low = 0 if kwargs.pop("allow_zero", False) else 1
    kwargs.setdefault("metadata", {}).setdefault("description", "Integer minor units (cents).")
    return StrictInteger(validate=validate.Range(min=low, max=MAX_AMOUNT), **kwargs)


class Currency(fields.String):
    """An ISO 4217 code the marketplace accepts (MARKETPLACE_CURRENCIES)."""

    default_error_messages = {"unknown": "Unknown or unaccepted currency {input!r}; use one of {choices}."}

    def __init__(self, **kwargs):
        metadata = kwargs.setdefault("metadata", {})
        metadata.setdefault("description", "ISO 4217 code in upper case, one of MARKETPLACE_CURRENCIES.")
        metadata.setdefault("pattern", "^[A-Z]{3}$")
        metadata.setdefault("example", "EUR")
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        code = super()._deserialize(value, attr, data, **kwargs)
        accepted = current_app.config["CURRENCIES"]
        if code not in accepted:
            raise self.make_error("unknown", input=code, choices=", ".join(accepted))
        return code


class UTCDateTimeField(fields.DateTime):
    """RFC 3339 in UTC: ``2027-01-31T12:00:00Z``. Input without a zone is UTC.

    Input must be an RFC 3339 date-time with ASCII digits (no week dates, no
    date alone, nothing trailing) between the years 1970 and 9000, so that
    date arithmetic on it can never overflow.
    """

    EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
    LATEST = datetime(9000, 1, 1, tzinfo=UTC)
    default_error_messages = {"range": "Must be between 1970-01-01T00:00:00Z and 9000-01-01T00:00:00Z."}

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        value = value.astimezone(UTC)
        fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if value.microsecond else "%Y-%m-%dT%H:%M:%SZ"
        return value.strftime(fmt)

    def _deserialize(self, value, attr, data, **kwargs):
        match = _RFC3339.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE)
        date, clock, fraction, zone = match.groups()
        micro = (fraction or "")[:6].ljust(6, "0")
        zone = "+00:00" if zone is None or zone in ("Z", "z") else zone
        try:
            parsed = datetime.fromisoformat(f"{date}T{clock}.{micro}{zone}").astimezone(UTC)
        except (ValueError, OverflowError) as exc:
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE) from exc
        if not self.EARLIEST <= parsed < self.LATEST:
            raise self.make_error("range")
        return parsed


_RFC3339 = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt ]([0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.([0-9]{1,9}))?([Zz]|[+-][0-9]{2}:[0-9]{2})?"
)


def Text(min_len: int = 1, max_len: int = 200, **kwargs):  # noqa: N802
    """A trimmed string of bounded length."""
    return TrimmedString(validate=validate.Length(min=min_len, max=max_len), **kwargs)


def check_text(text: str) -> str:
    """Reject what no database column can store: NUL and lone surrogates."""
    if "\x00" in text:
        raise ValidationError("Must not contain NUL characters.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError("Must be valid Unicode text.") from exc
    return text


class TrimmedString(fields.String):
    """Text with surrounding whitespace removed; NUL and invalid Unicode rejected."""

    def _deserialize(self, value, attr, data, **kwargs):
        return check_text(super()._deserialize(value, attr, data, **kwargs)).strip()


class PlainString(fields.String):
    """Text kept exactly as sent (passwords); NUL and invalid Unicode rejected."""

    def _deserialize(self, value, attr, data, **kwargs):
        return check_text(super()._deserialize(value, attr, data, **kwargs))


class ErrorSchema(Schema):
    """The error body of every 4xx/5xx (shared/API.md)."""

    code = fields.Integer(required=True)
    status = fields.String(required=True)
    message = fields.String(required=True)
    reason = fields.String(required=True)
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))


class StrictSchema(Schema):
    """Unknown fields are an error (marshmallow's default, said explicitly)."""

    class Meta:
        unknown = "raise"
