"""Forms of the operators' pages: the journal, KYC and audit filters, the buttons.

Filter forms read the query string (GET, no CSRF); the action forms are POSTed
with Flask-WTF's CSRF token.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

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
        "Account code", validators=[Optional(), Length(max=120)], filters=[lambda v: v.strip() if v else v]
    )
    kind = SelectField("Kind", choices=[SelectChoice("", "Any kind")], default="")
    date_from = DateField("From (YYYY-MM-DD)", validators=[Optional()], format="%Y-%m-%d")
    date_to = DateField("To (YYYY-MM-DD, inclusive)", validators=[Optional()], format="%Y-%m-%d")

    def __init__(self, formdata, kinds: list[str]):
        super().__init__(formdata=formdata)
        self.kind.choices = [SelectChoice("", "Any kind")] + [SelectChoice(k) for k in kinds]

    def validate_date_to(self, field):
        if field.data and self.date_from.data and field.data < self.date_from.data:
            raise ValidationError("'To' must not be before 'From'.")

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
    SelectChoice("unverified", "Waiting (unverified)"),
    SelectChoice("verified", "Verified"),
    SelectChoice("rejected", "Rejected"),
    SelectChoice("all", "All"),
]


class KycFilterForm(QueryForm):
    status = SelectField("KYC status", choices=KYC_FILTERS, default="unverified")


class KycDecisionForm(FlaskForm):
    """One approve / reject / reset button (the status is the button's value)."""

    status = HiddenField("Status", validators=[InputRequired(), AnyOf(KYC_STATUSES, message="Unknown KYC status.")])
    back = HiddenField("Back to", validators=[Optional(), AnyOf([choice.value for choice in KYC_FILTERS])])


class AuditFilterForm(QueryForm):
    action = StringField("Action", validators=[Optional(), Length(max=60)], filters=[lambda v: v.strip() if v else v])


class RunDueForm(FlaskForm):
    """Just the CSRF token: the button runs every due job."""
