"""API schemas for lending: loan requests, offers, loans, repayments, portfolio."""

from marshmallow import Schema, ValidationError, fields, validate, validates

from ..money import MAX_AMOUNT
from ..schemas import Amount, Currency, StrictInteger, StrictSchema, Text, UTCDateTimeField

MIN_REQUEST, MAX_REQUEST = 10_000, 100_000_000
MIN_TERM, MAX_TERM = 3, 60
MAX_RATE_BPS = 10_000
MIN_PART = 1_000
GRADES = ("A", "B", "C", "D", "E")
REQUEST_STATUSES = ("open", "funded", "expired", "cancelled")


class LoanRequestIn(StrictSchema):
    amount = StrictInteger(
        required=True,
        validate=validate.Range(min=MIN_REQUEST, max=MAX_REQUEST),
        metadata={"description": "Minor units, 10,000 to 100,000,000."},
    )
    currency = Currency(required=True)
    term_months = StrictInteger(required=True, validate=validate.Range(min=MIN_TERM, max=MAX_TERM))
    max_rate_bps = StrictInteger(
        required=True,
        validate=validate.Range(min=1, max=MAX_RATE_BPS),
        metadata={"description": "The most interest the borrower will pay, basis points a year."},
    )
    purpose = Text(0, 500, load_default="")
    monthly_income = Amount(
        load_default=None,
        allow_none=True,
        allow_zero=True,
        metadata={"description": "Optional: declared monthly income (minor units), used by the risk grade."},
    )
    monthly_debt = Amount(
        load_default=0,
        allow_zero=True,
        metadata={"description": "Optional: other monthly debt payments (minor units), used by the risk grade."},
    )


class GradeReasonOut(Schema):
    factor = fields.String()
    points = fields.Integer()
    text = fields.String()


class LoanRequestOut(Schema):
    id = fields.Integer()
    borrower_id = fields.Integer()
    amount = fields.Integer()
    currency = fields.String()
    term_months = fields.Integer()
    max_rate_bps = fields.Integer()
    purpose = fields.String()
    grade = fields.String()
    grade_score = fields.Integer()
    grade_reasons = fields.List(fields.Nested(GradeReasonOut))
    status = fields.String()
    funded_amount = fields.Integer()
    loan_id = fields.Integer(allow_none=True)
    parts_count = fields.Function(lambda r: getattr(r, "parts_count", None), allow_none=True)
    created_at = UTCDateTimeField()
    expires_at = UTCDateTimeField()


class LoanRequestQuery(Schema):
    status = fields.String(load_default=None, validate=validate.OneOf(REQUEST_STATUSES))
    mine = fields.Boolean(load_default=False, metadata={"description": "Only the caller's own requests."})


class OfferIn(StrictSchema):
    amount = Amount(required=True)
    currency = Currency(required=True)
    min_rate_bps = StrictInteger(required=True, validate=validate.Range(min=0, max=MAX_RATE_BPS))
    max_part = StrictInteger(
        required=True,
        validate=validate.Range(min=MIN_PART, max=MAX_AMOUNT),
        metadata={"description": "The most this offer puts into any one loan; at least 1,000."},
    )
    terms = fields.List(
        StrictInteger(validate=validate.Range(min=MIN_TERM, max=MAX_TERM)),
        load_default=list,
        validate=validate.Length(max=58),
        metadata={"description": "Loan terms (months) this offer funds; empty = all."},
    )
    grades = fields.List(
        fields.String(validate=validate.OneOf(GRADES)),
        load_default=list,
        validate=validate.Length(max=5),
        metadata={"description": "Risk grades this offer funds; empty = all."},
    )

    @validates("terms")
    def _unique_terms(self, value, **kwargs):
        if len(set(value)) != len(value):
            raise ValidationError("Each term may appear once.")

    @validates("grades")
    def _unique_grades(self, value, **kwargs):
        if len(set(value)) != len(value):
            raise ValidationError("Each grade may appear once.")


class OfferOut(Schema):
    id = fields.Integer()
    lender_id = fields.Integer()
    amount = fields.Integer()
    remaining = fields.Integer()
    currency = fields.String()
    min_rate_bps = fields.Integer()
    max_part = fields.Integer()
    terms = fields.List(fields.Integer())
    grades = fields.List(fields.String())
    status = fields.String()
    created_at = UTCDateTimeField()


class PartOut(Schema):
    id = fields.Integer()
    lender_id = fields.Integer()
    amount = fields.Integer()
    rate_bps = fields.Integer()
    outstanding_principal = fields.Integer()
    status = fields.String()


class ScheduleRowOut(Schema):
    number = fields.Integer()
    due_date = fields.Date()
    principal = fields.Integer()
    interest = fields.Integer()
    total = fields.Integer()
    paid = fields.Integer()
    status = fields.String()


class LoanOut(Schema):
    id = fields.Integer()
    request_id = fields.Integer()
    borrower_id = fields.Integer()
    amount = fields.Integer()
    currency = fields.String()
    term_months = fields.Integer()
    rate_bps = fields.Integer()
    apr_bps = fields.Integer()
    fee = fields.Integer()
    status = fields.String()
    disbursed_at = UTCDateTimeField()
    closed_at = UTCDateTimeField(allow_none=True)
    outstanding_principal = fields.Integer()
    amount_owed = fields.Integer()
    amount_due_now = fields.Integer()
    parts = fields.List(fields.Nested(PartOut))
    schedule = fields.List(fields.Nested(ScheduleRowOut))


class RepaymentIn(StrictSchema):
    amount = Amount(required=True)


class RepaymentOut(Schema):
    id = fields.Integer()
    loan_id = fields.Integer()
    kind = fields.String()
    amount = fields.Integer()
    principal = fields.Integer()
    interest = fields.Integer()
    entry_id = fields.Integer()
    created_at = UTCDateTimeField()
    loan = fields.Nested(LoanOut)


class PayoffPartOut(Schema):
    part_id = fields.Integer()
    principal = fields.Integer()
    interest = fields.Integer()


class PayoffQuoteOut(Schema):
    loan_id = fields.Integer()
    on = fields.Date()
    currency = fields.String()
    amount = fields.Integer()
    principal = fields.Integer()
    interest = fields.Integer()
    parts = fields.List(fields.Nested(PayoffPartOut))


class PortfolioPartOut(Schema):
    id = fields.Integer()
    loan_id = fields.Integer()
    request_id = fields.Integer()
    amount = fields.Integer()
    rate_bps = fields.Integer()
    status = fields.String()
    outstanding_principal = fields.Integer()
    principal_received = fields.Integer()
    interest_received = fields.Integer()
    written_off = fields.Integer()


class CurrencyPortfolioOut(Schema):
    currency = fields.String()
    invested = fields.Integer()
    outstanding_principal = fields.Integer()
    interest_received = fields.Integer()
    principal_received = fields.Integer()
    defaulted_principal = fields.Integer()
    annualized_return_bps = fields.Integer(allow_none=True)
    parts = fields.List(fields.Nested(PortfolioPartOut))


class PortfolioOut(CurrencyPortfolioOut):
    currencies = fields.Dict(keys=fields.String(), values=fields.Nested(CurrencyPortfolioOut))


class PortfolioQuery(Schema):
    currency = Currency(load_default=None)
