from marshmallow import Schema, fields

from ..schemas import Amount, Currency, StrictSchema, Text, UTCDateTimeField


class BalanceOut(Schema):
    currency = fields.String()
    balance = fields.Integer()
    held = fields.Integer()
    available = fields.Integer()


class WalletOut(Schema):
    balances = fields.List(fields.Nested(BalanceOut))


class DepositIn(StrictSchema):
    amount = Amount(required=True)
    currency = Currency(required=True)
    payment_method = Text(
        1, 120, metadata={"description": "Provider payment method id; the provider's default if left out."}
    )


class WithdrawalIn(StrictSchema):
    amount = Amount(required=True)
    currency = Currency(required=True)


class PaymentOut(Schema):
    id = fields.Integer()
    amount = fields.Integer()
    currency = fields.String()
    status = fields.String()
    direction = fields.String()
    created_at = UTCDateTimeField()


class TransactionOut(Schema):
    id = fields.Integer()
    entry_id = fields.Integer()
    created_at = UTCDateTimeField()
    kind = fields.String()
    amount = fields.Integer(metadata={"description": "Signed: > 0 into the wallet, < 0 out."})
    currency = fields.String()
    balance_after = fields.Integer()
    memo = fields.String()
