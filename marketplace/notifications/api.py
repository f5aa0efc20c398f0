"""JSON API: the caller's in-app notifications."""

from marshmallow import Schema, fields

from ..accounts.auth import api_member
from ..apiutil import BEARER, ApiBlueprint, page_slice
from ..schemas import UTCDateTimeField
from . import services

bp = ApiBlueprint("notifications_api", __name__, url_prefix="/api/v1", description="In-app notifications")


class NotificationOut(Schema):
    id = fields.Integer()
    kind = fields.String()
    message = fields.String()
    link = fields.String()
    created_at = UTCDateTimeField()
    read_at = UTCDateTimeField(allow_none=True)


@bp.get("/notifications")
@bp.response(200, NotificationOut(many=True))
@bp.paginate()
@bp.doc(security=BEARER)
def notifications(pagination_parameters):
    """The caller's notifications, newest first."""
    member_id = api_member().id
    offset, limit = page_slice(pagination_parameters, services.count_for_member(member_id))
    return services.for_member(member_id, limit=limit, offset=offset)
