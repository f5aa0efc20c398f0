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
        1,
        120,
        metadata={
            "description": "Provider payment method id (Stripe: pm_... or a saved card_...); "
            "in test mode the provider's test card if left out."
        },
    )


class WithdrawalIn(StrictSchema):
    amount = Amount(required=True)
    currency = Currency(required=True)


class PayoutPartOut(Schema):
    id = fields.Integer()
    method = fields.String(metadata={"description": "refund (to an earlier card deposit) or manual (operator payout)"})
    amount = fields.Integer()
    currency = fields.String()
    status = fields.String(
        metadata={"description": "pending, sent, queued (waits for an operator), paid, failed (replaced), returned"}
    )
    created_at = UTCDateTimeField()
    settled_at = UTCDateTimeField(allow_none=True)


class PaymentOut(Schema):
    id = fields.Integer()
    amount = fields.Integer()
    currency = fields.String()
    status = fields.String(metadata={"description": "succeeded, pending (the provider confirms later) or failed"})
    direction = fields.String()
    created_at = UTCDateTimeField()
    failure_message = fields.String(allow_none=True, metadata={"description": "Why the provider refused, if it did."})
    parts = fields.Method(
        "_parts",
        metadata={"description": "A withdrawal's refunds and manual payout, in order."},
    )

    def _parts(self, payment):
        if payment.direction != "withdrawal":
            return []
        from ..payments.payouts import parts_of

        return PayoutPartOut(many=True).dump(parts_of(payment.id))


class TransactionOut(Schema):
    id = fields.Integer()
    entry_id = fields.Integer()
    created_at = UTCDateTimeField()
    kind = fields.String()
    amount = fields.Integer(metadata={"description": "Signed: > 0 into the wallet, < 0 out."})
    currency = fields.String()
    balance_after = fields.Integer()
    memo = fields.String()


class CardAuthorizationOut(Schema):
    id = fields.Integer()
    pledge_id = fields.Integer()
    pool_id = fields.Integer()
    amount = fields.Integer(metadata={"description": "Held on the card: quantity x max_unit_price."})
    currency = fields.String()
    status = fields.String(
        metadata={"description": "authorized, capture_due, cancel_due, captured, canceled or capture_failed"}
    )
    authorized_at = UTCDateTimeField()
    expires_at = UTCDateTimeField()
    capture_amount = fields.Integer(allow_none=True)
    captured_amount = fields.Integer()
    expires_before_deadline = fields.Method(
        "_early", metadata={"description": "True when it expires before the pool closes: re-authorize or switch."}
    )

    def _early(self, auth):
        from ..extensions import db
        from ..payments.authorizations import expires_before_deadline
        from ..pools.models import Pool

        return auth.status == "authorized" and expires_before_deadline(auth, db.session.get(Pool, auth.pool_id))


class ReauthorizeIn(StrictSchema):
    payment_method = Text(1, 120, metadata={"description": "Another card; the authorization's card if left out."})
