"""API schemas for buying pools, pledges and bids."""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ..money import MAX_AMOUNT
from ..schemas import Amount, Currency, PlainString, StrictInteger, StrictSchema, Text, UTCDateTimeField

MAX_VOLUME = 10**9


def Volume(**kwargs):  # noqa: N802
    return StrictInteger(validate=validate.Range(min=1, max=MAX_VOLUME), **kwargs)


class PoolIn(StrictSchema):
    title = Text(1, 200, required=True)
    description = Text(0, 5000, load_default="")
    unit = Text(1, 40, required=True, metadata={"description": "What one unit is, e.g. 'MWh' or 'laptop'."})
    currency = Currency(required=True)
    min_volume = Volume(required=True)
    deadline = UTCDateTimeField(required=True)


class AwardOut(Schema):
    bid_id = fields.Integer()
    supplier_id = fields.Integer()
    unit_price = fields.Integer()
    volume = fields.Integer()
    total = fields.Integer()
    fee = fields.Integer()


class PoolOut(Schema):
    id = fields.Integer()
    title = fields.String()
    description = fields.String()
    unit = fields.String()
    currency = fields.String()
    min_volume = fields.Integer()
    deadline = UTCDateTimeField()
    status = fields.String()
    organizer_id = fields.Integer()
    volume = fields.Integer()
    pledge_count = fields.Integer()
    best_unit_price = fields.Integer(allow_none=True)
    bid_count = fields.Integer()
    award = fields.Nested(AwardOut, allow_none=True)
    created_at = UTCDateTimeField()
    closed_at = UTCDateTimeField(allow_none=True)
    delivered_at = UTCDateTimeField(allow_none=True)


class PoolQuery(Schema):
    status = fields.String(
        load_default=None, validate=validate.OneOf(["open", "awarded", "failed", "cancelled", "delivered", "closed"])
    )
    q = PlainString(load_default=None, validate=validate.Length(max=200))  # no NUL: PostgreSQL cannot compare it


class PledgeIn(StrictSchema):
    quantity = Volume(required=True)
    max_unit_price = Amount(required=True)
    funding = fields.String(
        validate=validate.OneOf(["wallet", "card"]),
        metadata={
            "description": "wallet (default): hold quantity x max_unit_price of the wallet; card: authorize it on "
            "a card instead (captured at clearing for quantity x unit_price, cancelled if released)."
        },
    )
    payment_method = Text(
        1,
        120,
        metadata={"description": "Card pledges: the provider's payment method id (implies funding=card)."},
    )

    @validates_schema
    def _card_method_only_for_cards(self, data, **kwargs):
        if data.get("payment_method") and data.get("funding") == "wallet":
            raise ValidationError("A payment method is only for card-funded pledges.", field_name="payment_method")


class AuthorizationOut(Schema):
    id = fields.Integer()
    status = fields.String()
    amount = fields.Integer()
    currency = fields.String()
    authorized_at = UTCDateTimeField()
    expires_at = UTCDateTimeField()
    captured_amount = fields.Integer()


class PledgeOut(Schema):
    id = fields.Integer()
    pool_id = fields.Integer()
    member_id = fields.Integer()
    quantity = fields.Integer()
    max_unit_price = fields.Integer()
    held_amount = fields.Integer()
    status = fields.String()
    charged_amount = fields.Integer()
    created_at = UTCDateTimeField()
    funding = fields.String(metadata={"description": "wallet or card"})
    authorization = fields.Method(
        "_authorization", metadata={"description": "Card pledges: the card authorization now backing it (or last)."}
    )

    def _authorization(self, pledge):
        if getattr(pledge, "funding", "wallet") != "card":
            return None
        from ..payments.authorizations import latest_for_pledge

        auth = latest_for_pledge(pledge.id)
        return AuthorizationOut().dump(auth) if auth is not None else None


class TierSchema(StrictSchema):
    min_volume = Volume(required=True)
    unit_price = StrictInteger(required=True, validate=validate.Range(min=1, max=MAX_AMOUNT))


class BidIn(StrictSchema):
    tiers = fields.List(fields.Nested(TierSchema), required=True, validate=validate.Length(min=1, max=20))
    capacity = Volume(required=True)


class OutcomeOut(Schema):
    cleared = fields.Boolean()
    volume = fields.Integer(allow_none=True)
    unit_price = fields.Integer(allow_none=True)
    members_served = fields.Integer(allow_none=True)
    total = fields.Integer(allow_none=True)
    winner = fields.Boolean()
    reason = fields.String(allow_none=True)
    explanation = fields.String(allow_none=True)


class TierOut(Schema):
    min_volume = fields.Integer()
    unit_price = fields.Integer()


class BidOut(Schema):
    id = fields.Integer()
    pool_id = fields.Integer()
    supplier_id = fields.Integer()
    supplier_name = fields.Function(lambda b: b.supplier.display_name)
    tiers = fields.List(fields.Nested(TierOut))
    capacity = fields.Integer()
    status = fields.String()
    created_at = UTCDateTimeField()
    outcome = fields.Nested(OutcomeOut, allow_none=True)
