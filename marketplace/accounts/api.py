"""JSON API: members and tokens (shared/API.md "Members and tokens")."""

from flask import request

from ..apiutil import BEARER
from ..apiutil import ApiBlueprint as Blueprint
from ..extensions import limiter
from . import services
from .auth import api_member, require_operator
from .schemas import KycIn, MemberIn, MemberOut, TokenIn, TokenOut

bp = Blueprint("members_api", __name__, url_prefix="/api/v1", description="Members, tokens and KYC")


@bp.post("/members")
@bp.arguments(MemberIn)
@bp.response(201, MemberOut)
@bp.errors(409)
def create_member(data):
    """Sign up a member or supplier."""
    return services.create_member(**data)


@bp.post("/tokens")
@limiter.limit(lambda: _login_limit())
@bp.arguments(TokenIn)
@bp.response(201, TokenOut)
@bp.errors(401, 429)
def create_token(data):
    """Exchange e-mail and password for a Bearer token."""
    member = services.authenticate(data["email"], data["password"])
    secret, _ = services.issue_token(member.id, data.get("name") or "API token")
    return {"token": secret, "member": member}


@bp.get("/members/me")
@bp.response(200, MemberOut)
@bp.doc(security=BEARER)
def me():
    """The member behind the token."""
    return api_member()


@bp.post("/members/<int:member_id>/kyc")
@bp.arguments(KycIn)
@bp.response(200, MemberOut)
@bp.doc(security=BEARER)
def set_kyc(data, member_id):
    """Operator: set a member's KYC status."""
    operator = api_member()
    require_operator(operator)
    return services.set_kyc_status(operator.id, member_id, data["status"], ip=request.remote_addr or "")


def _login_limit() -> str:
    from flask import current_app

    return current_app.config["LOGIN_RATE_LIMIT"]
