"""Shared marshmallow fields and schemas for the API boundary."""

from __future__ import annotations

from datetime import datetime, timezone

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

    def _deserialize(self, value, attr, data, **kwargs):
        code = super()._deserialize(value, attr, data, **kwargs)
        accepted = current_app.config["CURRENCIES"]
        if code not in accepted:
            raise self.make_error("unknown", input=code, choices=", ".join(accepted))
        return code


class UTCDateTimeField(fields.DateTime):
    """RFC 3339 in UTC: ``2027-01-31T12:00:00Z``. Input without a zone is UTC."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        value = value.astimezone(timezone.utc)
        fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if value.microsecond else "%Y-%m-%dT%H:%M:%SZ"
        return value.strftime(fmt)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or len(value) > 40:
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE)
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as exc:
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE) from exc
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return parsed.astimezone(timezone.utc)


def Text(min_len: int = 1, max_len: int = 200, **kwargs):  # noqa: N802
    """A trimmed string of bounded length."""
    return TrimmedString(validate=validate.Length(min=min_len, max=max_len), **kwargs)


class TrimmedString(fields.String):
    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in text:
            raise ValidationError("Must not contain NUL characters.")
        return text.strip()


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
