from marshmallow import Schema, fields, validate

from ..schemas import StrictInteger, StrictSchema, TrimmedString, UTCDateTimeField


class CommentIn(StrictSchema):
    body = TrimmedString(required=True, validate=validate.Length(min=1, max=2000))


class CommentOut(Schema):
    id = fields.Integer()
    author_id = fields.Integer()
    author_name = fields.Function(lambda c: c.author.display_name)
    body = fields.String()
    created_at = UTCDateTimeField()


class ReviewIn(StrictSchema):
    rating = StrictInteger(required=True, validate=validate.Range(min=1, max=5))
    body = TrimmedString(load_default="", validate=validate.Length(max=4000))


class ReviewOut(Schema):
    id = fields.Integer()
    pool_id = fields.Integer()
    supplier_id = fields.Integer()
    member_id = fields.Integer()
    author_name = fields.Function(lambda r: r.author.display_name)
    rating = fields.Integer()
    body = fields.String()
    created_at = UTCDateTimeField()


class SupplierOut(Schema):
    id = fields.Integer()
    display_name = fields.String()
    rating_count = fields.Integer()
    rating_average = fields.String(allow_none=True, metadata={"description": "Mean of 1-5 ratings, 2 decimals."})
    histogram = fields.Dict(keys=fields.String(), values=fields.Integer())
    pools_won = fields.Integer()
    pools_delivered = fields.Integer()
    reviews = fields.List(fields.Nested(ReviewOut))
