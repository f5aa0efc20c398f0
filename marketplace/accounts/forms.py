"""Browser forms for sign-up, sign-in and API tokens (Flask-WTF, CSRF on)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from marshmallow import ValidationError as SchemaError
from marshmallow import validate as schema_validate
from wtforms import BooleanField, PasswordField, RadioField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, EqualTo, InputRequired, Length, ValidationError

PASSWORD_MIN = 8  # the same bounds as the API's MemberIn schema
PASSWORD_MAX = 128

_email_rule = schema_validate.Email()


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def email_address(form, field) -> None:
    """The API schema's e-mail rule (marshmallow), so both doors accept the same addresses."""
    try:
        _email_rule(field.data or "")
    except SchemaError as exc:
        raise ValidationError("Enter a valid e-mail address, like name@example.com.") from exc


class SignupForm(FlaskForm):
    email = StringField(
        "E-mail address",
        filters=[_strip],
        validators=[DataRequired("Enter your e-mail address."), Length(max=254), email_address],
    )
    display_name = StringField(
        "Display name",
        filters=[_strip],
        description="Shown to other members in pools and conversations.",
        validators=[DataRequired("Enter a display name."), Length(max=80, message="Use at most 80 characters.")],
    )
    password = PasswordField(
        "Password",
        description=f"At least {PASSWORD_MIN} characters. A long passphrase is best.",
        validators=[
            InputRequired("Choose a password."),
            Length(
                min=PASSWORD_MIN,
                max=PASSWORD_MAX,
                message=f"Use between {PASSWORD_MIN} and {PASSWORD_MAX} characters.",
            ),
        ],
    )
    confirm = PasswordField(
        "Repeat the password",
        validators=[
            InputRequired("Repeat the password."),
            EqualTo("password", message="The two passwords do not match."),
        ],
    )
    role = RadioField(
        "I am joining as",
        choices=[
            SelectChoice("member", "A member: I join buying pools, borrow or lend"),
            SelectChoice("supplier", "A supplier: I bid on pooled demand and deliver"),
        ],
        default="member",
        validators=[InputRequired("Choose how you are joining.")],
    )


class LoginForm(FlaskForm):
    email = StringField(
        "E-mail address",
        filters=[_strip],
        validators=[DataRequired("Enter your e-mail address."), Length(max=254)],
    )
    password = PasswordField(
        "Password",
        validators=[InputRequired("Enter your password."), Length(max=PASSWORD_MAX)],
    )
    remember = BooleanField("Keep me signed in on this device")


class TokenForm(FlaskForm):
    name = StringField(
        "Token name",
        filters=[_strip],
        description="Something to recognise it by, such as the program that will use it.",
        validators=[DataRequired("Give the token a name."), Length(max=80, message="Use at most 80 characters.")],
    )
