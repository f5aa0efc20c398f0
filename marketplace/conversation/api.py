"""JSON API: comment threads and verified reviews (shared/API.md "Conversation")."""

from flask import current_app

from ..accounts.auth import api_member
from ..apiutil import BEARER, ApiBlueprint, page_slice
from ..extensions import limiter
from . import services
from .schemas import CommentIn, CommentOut, ReviewIn, ReviewOut, SupplierOut

bp = ApiBlueprint("conversation_api", __name__, url_prefix="/api/v1", description="Comments, reviews, supplier ratings")


def _comment_limit() -> str:
    return current_app.config["COMMENT_RATE_LIMIT"]


def _member_key() -> str:
    return f"member:{api_member().id}"


def _list(target_type, target_id, pagination_parameters):
    api_member()
    offset, limit = page_slice(pagination_parameters, 0)
    comments = services.comments(target_type, target_id, offset=offset, limit=limit)
    pagination_parameters.item_count = services.count_comments(target_type, target_id)
    return comments


@bp.get("/pools/<int:pool_id>/comments")
@bp.response(200, CommentOut(many=True))
@bp.paginate()
@bp.doc(security=BEARER)
def pool_comments(pool_id, pagination_parameters):
    """The pool's discussion, oldest first."""
    return _list("pool", pool_id, pagination_parameters)


@bp.post("/pools/<int:pool_id>/comments")
@limiter.limit(_comment_limit, key_func=_member_key, methods=["POST"])
@bp.arguments(CommentIn)
@bp.response(201, CommentOut)
@bp.errors(429)
@bp.doc(security=BEARER)
def add_pool_comment(data, pool_id):
    """Add a plain-text comment (shown escaped; rate-limited)."""
    return services.add_comment("pool", pool_id, api_member().id, data["body"])


@bp.get("/loan-requests/<int:request_id>/comments")
@bp.response(200, CommentOut(many=True))
@bp.paginate()
@bp.doc(security=BEARER)
def request_comments(request_id, pagination_parameters):
    """A loan request's discussion, oldest first."""
    return _list("loan_request", request_id, pagination_parameters)


@bp.post("/loan-requests/<int:request_id>/comments")
@limiter.limit(_comment_limit, key_func=_member_key, methods=["POST"])
@bp.arguments(CommentIn)
@bp.response(201, CommentOut)
@bp.errors(429)
@bp.doc(security=BEARER)
def add_request_comment(data, request_id):
    """Add a plain-text comment to a loan request."""
    return services.add_comment("loan_request", request_id, api_member().id, data["body"])


@bp.post("/pools/<int:pool_id>/reviews")
@bp.arguments(ReviewIn)
@bp.response(201, ReviewOut)
@bp.errors(409)
@bp.doc(security=BEARER)
def review(data, pool_id):
    """Review the supplier: only members whose pledge was filled, once, after delivery."""
    return services.add_review(pool_id, api_member().id, data["rating"], data["body"])


@bp.get("/pools/<int:pool_id>/reviews")
@bp.response(200, ReviewOut(many=True))
@bp.doc(security=BEARER)
def reviews(pool_id):
    """The pool's reviews."""
    api_member()
    return services.pool_reviews(pool_id)


@bp.get("/suppliers/<int:supplier_id>")
@bp.response(200, SupplierOut)
@bp.doc(security=BEARER)
def supplier(supplier_id):
    """A supplier's profile: rating from verified buyers only."""
    api_member()
    return services.supplier_profile(supplier_id)
