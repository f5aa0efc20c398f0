"""Flask extensions, created unbound and initialised in ``create_app``."""

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_smorest import Api as SmorestApi
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address, default_limits=[])


class Api(SmorestApi):
    """flask-smorest's Api documenting our real error body (shared/API.md).

    No catch-all ``default`` response: each operation lists the statuses it
    can really answer (see apiutil.ApiBlueprint), so a client, and the API
    fuzzer's status check, can rely on the list.
    """

    DEFAULT_ERROR_RESPONSE_NAME = None

    @property
    def ERROR_SCHEMA(self):  # noqa: N802 - flask-smorest's attribute name
        from .schemas import ErrorSchema

        return ErrorSchema


api = Api()
