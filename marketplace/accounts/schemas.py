"""API schemas for members and tokens."""

from marshmallow import Schema, fields, validate

from ..schemas import PlainString, StrictSchema, Text, TrimmedString, UTCDateTimeField


class MemberIn(StrictSchema):
    email = TrimmedString(
        required=True, validate=[validate.Length(max=254), validate.Email()], metadata={"format": "email"}
    )
    password = PlainString(required=True, validate=validate.Length(min=8, max=128), load_only=True)
    display_name = Text(1, 80, required=True)
    role = fields.String(load_default="member", validate=validate.OneOf(["member", "supplier"]))


class MemberOut(Schema):
    id = fields.Integer()
    email = fields.String()
    display_name = fields.String()
    role = fields.String()
    kyc_status = fields.String()
    created_at = UTCDateTimeField()


class TokenIn(StrictSchema):
    email = TrimmedString(required=True, validate=validate.Length(min=1, max=254))
    password = PlainString(required=True, validate=validate.Length(min=1, max=128), load_only=True)
    name = Text(1, 80, load_default="API token")


class TokenOut(Schema):
    token = fields.String()
    member = fields.Nested(MemberOut)


class KycIn(StrictSchema):
    status = fields.String(required=True, validate=validate.OneOf(["unverified", "verified", "rejected"]))
