"""Browser forms for sign-up, sign-in, API tokens and the language setting (Flask-WTF, CSRF on)."""

from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from marshmallow import ValidationError as SchemaError
from marshmallow import validate as schema_validate
from wtforms import BooleanField, PasswordField, RadioField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, EqualTo, InputRequired, Length, ValidationError

from ..i18n import LANGUAGES

PASSWORD_MIN = 8  # the same bounds as the API's MemberIn schema
PASSWORD_MAX = 128
FOLLOW_BROWSER = ""  # the language choice that stores no locale: pages follow the browser

_email_rule = schema_validate.Email()


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def email_address(form, field) -> None:
    """The API schema's e-mail rule (marshmallow), so both doors accept the same addresses."""
    try:
        _email_rule(field.data or "")
    except SchemaError as exc:
        raise ValidationError(_("Enter a valid e-mail address, like name@example.com.")) from exc


class SignupForm(FlaskForm):
    email = StringField(
        _l("E-mail address"),
        filters=[_strip],
        validators=[DataRequired(_l("Enter your e-mail address.")), Length(max=254), email_address],
    )
    display_name = StringField(
        _l("Display name"),
        filters=[_strip],
        description=_l("Shown to other members in pools and conversations."),
        validators=[
            DataRequired(_l("Enter a display name.")),
            Length(max=80, message=_l("Use at most %(max)d characters.")),
        ],
    )
    password = PasswordField(
        _l("Password"),
        description=_l("At least %(min)d characters. A long passphrase is best.", min=PASSWORD_MIN),
        validators=[
            InputRequired(_l("Choose a password.")),
            Length(
                min=PASSWORD_MIN,
                max=PASSWORD_MAX,
                message=_l("Use between %(min)d and %(max)d characters."),
            ),
        ],
    )
    confirm = PasswordField(
        _l("Repeat the password"),
        validators=[
            InputRequired(_l("Repeat the password.")),
            EqualTo("password", message=_l("The two passwords do not match.")),
        ],
    )
    role = RadioField(
        _l("I am joining as"),
        choices=[
            SelectChoice("member", _l("A member: I join buying pools, borrow or lend")),
            SelectChoice("supplier", _l("A supplier: I bid on pooled demand and deliver")),
        ],
        default="member",
        validators=[InputRequired(_l("Choose how you are joining."))],
    )


class LoginForm(FlaskForm):
    email = StringField(
        _l("E-mail address"),
        filters=[_strip],
        validators=[DataRequired(_l("Enter your e-mail address.")), Length(max=254)],
    )
    password = PasswordField(
        _l("Password"),
        validators=[InputRequired(_l("Enter your password.")), Length(max=PASSWORD_MAX)],
    )
    remember = BooleanField(_l("Keep me signed in on this device"))


class TokenForm(FlaskForm):
    name = StringField(
        _l("Token name"),
        filters=[_strip],
        description=_l("Something to recognise it by, such as the program that will use it."),
        validators=[
            DataRequired(_l("Give the token a name.")),
            Length(max=80, message=_l("Use at most %(max)d characters.")),
        ],
    )


class LocaleForm(FlaskForm):
    """The member's own language; "Follow my browser" stores none (``Accept-Language`` decides)."""

    locale = SelectField(
        _l("Language"),
        choices=[
            SelectChoice(FOLLOW_BROWSER, _l("Follow my browser")),
            *(SelectChoice(code, name, render_kw={"lang": code}) for code, name in LANGUAGES.items()),
        ],
        default=FOLLOW_BROWSER,
        description=_l("“Follow my browser” uses the language your browser asks for."),
    )
