from marshmallow import Schema, fields

from ..schemas import PlainString, StrictSchema, UTCDateTimeField


class PostingOut(Schema):
    id = fields.Integer()
    entry_id = fields.Integer()
    account = fields.Function(lambda p: p.account.code)
    currency = fields.String()
    amount = fields.Integer(metadata={"description": "Signed: > 0 debit, < 0 credit."})
    balance_after = fields.Integer()


class EntryOut(Schema):
    id = fields.Integer()
    created_at = UTCDateTimeField()
    kind = fields.String()
    memo = fields.String()
    reverses_id = fields.Integer(allow_none=True)
    postings = fields.List(fields.Nested(PostingOut(exclude=("entry_id", "balance_after"))))


class EntryFilterIn(Schema):
    account = PlainString(load_default=None)  # PlainString: no NUL, which PostgreSQL cannot compare
    kind = PlainString(load_default=None)
    since = UTCDateTimeField(load_default=None)
    until = UTCDateTimeField(load_default=None)


class StatementPostingOut(Schema):
    id = fields.Integer()
    entry_id = fields.Integer()
    created_at = UTCDateTimeField()
    kind = fields.String()
    memo = fields.String()
    account = fields.String()
    currency = fields.String()
    amount = fields.Integer()
    balance_after = fields.Integer()


class AccountOut(Schema):
    code = fields.String()
    currency = fields.String()
    kind = fields.String()
    normal_side = fields.String()
    balance = fields.Integer()
    held = fields.Integer()
    postings = fields.List(fields.Nested(StatementPostingOut))


class TrialAccountOut(Schema):
    code = fields.String()
    currency = fields.String()
    normal_side = fields.String()
    debits = fields.Integer()
    credits = fields.Integer()
    balance = fields.Integer()


class TotalsOut(Schema):
    debits = fields.Integer()
    credits = fields.Integer()


class TrialBalanceOut(Schema):
    accounts = fields.List(fields.Nested(TrialAccountOut))
    totals = fields.Dict(keys=fields.String(), values=fields.Nested(TotalsOut))
    balanced = fields.Boolean()


class RunDueOut(Schema):
    ran_at = UTCDateTimeField()
    jobs = fields.Dict(keys=fields.String(), values=fields.Dict())
    skipped = fields.String(metadata={"description": "Present when another run-due was already running."})


class ClockIn(StrictSchema):
    now = UTCDateTimeField(required=True)


class ClockOut(Schema):
    now = UTCDateTimeField()
