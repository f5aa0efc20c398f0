"""Forms of the operators' pages: the journal, KYC and audit filters, the buttons.

Filter forms read the query string (GET, no CSRF); the action forms are POSTed
with Flask-WTF's CSRF token.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, HiddenField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import AnyOf, InputRequired, Length, Optional, ValidationError

from ..accounts.models import KYC_STATUSES


class QueryForm(FlaskForm):
    """A GET filter form: reads ``request.args``, needs no CSRF token."""

    class Meta:
        csrf = False


class JournalFilterForm(QueryForm):
    account = StringField(
        _l("Account code"), validators=[Optional(), Length(max=120)], filters=[lambda v: v.strip() if v else v]
    )
    kind = SelectField(_l("Kind"), choices=[SelectChoice("", _l("Any kind"))], default="")
    date_from = DateField(_l("From (YYYY-MM-DD)"), validators=[Optional()], format="%Y-%m-%d")
    date_to = DateField(_l("To (YYYY-MM-DD, inclusive)"), validators=[Optional()], format="%Y-%m-%d")

    def __init__(self, formdata, kinds: list[str]):
        super().__init__(formdata=formdata)
        self.kind.choices = [SelectChoice("", _l("Any kind"))] + [SelectChoice(k) for k in kinds]

    def validate_date_to(self, field):
        if field.data and self.date_from.data and field.data < self.date_from.data:
            raise ValidationError(_l("'To' must not be before 'From'."))

    def filters(self) -> dict:
        """Keyword arguments for ``ledger.queries`` (call after ``validate()``)."""
        since = until = None
        if self.date_from.data:
            since = datetime.combine(self.date_from.data, time.min, tzinfo=UTC)
        if self.date_to.data:
            until = datetime.combine(self.date_to.data + timedelta(days=1), time.min, tzinfo=UTC)
        return {"account": self.account.data or None, "kind": self.kind.data or None, "since": since, "until": until}

    def query_args(self) -> dict:
        """The filters as they appear in the query string (for page links and export)."""
        args = {
            "account": self.account.data or "",
            "kind": self.kind.data or "",
            "date_from": self.date_from.data.isoformat() if self.date_from.data else "",
            "date_to": self.date_to.data.isoformat() if self.date_to.data else "",
        }
        return {key: value for key, value in args.items() if value}


KYC_FILTERS = [
    SelectChoice("unverified", _l("Waiting (unverified)")),
    SelectChoice("verified", _l("Verified")),
    SelectChoice("rejected", _l("Rejected")),
    SelectChoice("all", _l("All")),
]


class KycFilterForm(QueryForm):
    status = SelectField(_l("KYC status"), choices=KYC_FILTERS, default="unverified")


class KycDecisionForm(FlaskForm):
    """One approve / reject / reset button (the status is the button's value)."""

    status = HiddenField(
        _l("Status"), validators=[InputRequired(), AnyOf(KYC_STATUSES, message=_l("Unknown KYC status."))]
    )
    back = HiddenField(_l("Back to"), validators=[Optional(), AnyOf([choice.value for choice in KYC_FILTERS])])


class AuditFilterForm(QueryForm):
    action = StringField(
        _l("Action"), validators=[Optional(), Length(max=60)], filters=[lambda v: v.strip() if v else v]
    )


class RunDueForm(FlaskForm):
    """Just the CSRF token: the button runs every due job."""


class PayoutDecisionForm(FlaskForm):
    """Approve or reject one queued payout; a rejection may say why (the member is told)."""

    reason = StringField(
        _l("Reason (told to the member)"),
        validators=[Optional(), Length(max=300)],
        filters=[lambda v: v.strip() if v else v],
    )


class ReconcileForm(FlaskForm):
    """Just the CSRF token: the button runs the Stripe reconciliation."""
