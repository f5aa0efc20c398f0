"""JSON API: buying pools (shared/API.md "Buying pools")."""

from flask import current_app, request

from ..accounts.auth import admit_api_member_id, api_member, bearer_digest, checks_own_token, live_token_member_id
from ..apiutil import BEARER, ApiBlueprint, page_slice
from ..errors import NotFound
from ..ledger.idempotency import idempotency_key, idempotent
from ..memo import Memo
from ..reads import read_connection
from . import queries, services
from .schemas import BidIn, BidOut, PledgeIn, PledgeOut, PoolIn, PoolOut, PoolQuery

bp = ApiBlueprint("pools_api", __name__, url_prefix="/api/v1", description="Buying pools: pledges, bids, clearing")


@bp.post("/pools")
@bp.arguments(PoolIn)
@bp.response(201, PoolOut)
@bp.errors(409)
@bp.doc(security=BEARER)
def create_pool(data):
    """Open a buying pool (verified members and operators)."""
    pool = services.create_pool(api_member().id, **data)
    return services.present_pool(pool)


@bp.get("/pools")
@bp.arguments(PoolQuery, location="query")
@bp.response(200, PoolOut(many=True))
@bp.paginate()
@bp.doc(security=BEARER)
def list_pools(args, pagination_parameters):
    """Pools, optionally by status (open ones soonest deadline first) or title search."""
    api_member()
    pools, total = services.list_pools(
        status=args.get("status"),
        q=args.get("q"),
        offset=pagination_parameters.first_item,
        limit=pagination_parameters.page_size,
    )
    page_slice(pagination_parameters, total)
    return services.present_pools(pools)


# GET /pools/{id}'s body by pool, kept with the exact snapshot rows it was made from: the same rows
# give the same bytes (the body is the same for every caller), other rows make it anew.
_POOL_BODIES = Memo(512)
_POOL_OUT = PoolOut()
_SNAPSHOT_WITH_CALLER = queries.snapshot_statement(caller=live_token_member_id())


def pool_body(rows: tuple[tuple, ...]) -> bytes:
    """The JSON body ``@bp.response(200, PoolOut)`` makes of the pool these snapshot rows show."""
    body = _POOL_BODIES.get(rows[0][1], rows)
    if body is None:
        data = _POOL_OUT.dump(queries.present(queries.snapshot_of(rows)))
        body = _POOL_BODIES.put(rows[0][1], rows, current_app.json.response(data).get_data())
    return body


@bp.get("/pools/<int:pool_id>")
@bp.response(200, PoolOut)
@bp.doc(security=BEARER)
@checks_own_token
def get_pool(pool_id):
    """One pool with its pledged volume and current best unit price."""
    params = {"digest": bearer_digest(), "pool_id": pool_id}  # 401 first if there is no token at all
    with read_connection() as connection:  # the live-token check and the pool: one plain statement
        caller, rows = queries.caller_and_rows(connection, _SNAPSHOT_WITH_CALLER, params)
    admit_api_member_id(caller)  # 401 before 404, as for every API route
    if not rows or rows[0][0] != 0:
        raise NotFound(f"No pool {pool_id}.")
    return current_app.response_class(pool_body(rows), mimetype=current_app.json.mimetype)


@bp.post("/pools/<int:pool_id>/pledges")
@idempotent
@bp.arguments(PledgeIn())
@bp.response(201, PledgeOut)
@bp.errors(402, 503)
@bp.doc(security=BEARER)
def pledge(data, pool_id):
    """Pledge a quantity at a maximum unit price; holds quantity x max price.

    A card pledge is 402 ``card_declined`` if the card is refused, 503
    ``provider_unavailable`` if the payment provider cannot be reached.
    """
    return services.place_pledge(pool_id, api_member().id, **data, idempotency_key=idempotency_key())


@bp.get("/pools/<int:pool_id>/pledges")
@bp.response(200, PledgeOut(many=True))
@bp.doc(security=BEARER)
def pool_pledges(pool_id):
    """The caller's pledges in this pool (the organizer and operators see all)."""
    return services.pledges_in_pool(pool_id, api_member().id)


@bp.delete("/pools/<int:pool_id>/pledges/<int:pledge_id>")
@bp.response(200, PledgeOut)
@bp.errors(409)
@bp.doc(security=BEARER)
def withdraw(pool_id, pledge_id):
    """Withdraw one's own pledge while the pool is open; the hold is released."""
    return services.withdraw_pledge(pool_id, pledge_id, api_member().id)


@bp.get("/pledges")
@bp.response(200, PledgeOut(many=True))
@bp.paginate()
@bp.doc(security=BEARER)
def my_pledges(pagination_parameters):
    """The caller's pledges in every pool, newest first."""
    member_id = api_member().id
    offset, limit = page_slice(pagination_parameters, services.count_my_pledges(member_id))
    return services.my_pledges(member_id, offset=offset, limit=limit)


@bp.post("/pools/<int:pool_id>/bids")
@bp.arguments(BidIn)
@bp.response(201, BidOut)
@bp.errors(409)
@bp.doc(security=BEARER)
def bid(data, pool_id):
    """Suppliers: bid volume-tiered prices (replaces your earlier bid)."""
    return services.place_bid(pool_id, api_member().id, **data)


@bp.get("/pools/<int:pool_id>/bids")
@bp.response(200, BidOut(many=True))
@bp.doc(security=BEARER)
def bids(pool_id):
    """Open: your own bid (operators: all). Closed: every bid and how it cleared."""
    return services.bids_for(pool_id, api_member().id)


@bp.post("/pools/<int:pool_id>/close")
@idempotent
@bp.response(200, PoolOut)
@bp.doc(security=BEARER)
def close(pool_id):
    """Organizer or operator: clear and settle the pool now."""
    pool = services.close_pool(pool_id, api_member().id, ip=request.remote_addr or "")
    return services.present_pool(pool)


@bp.post("/pools/<int:pool_id>/delivery")
@idempotent
@bp.response(200, PoolOut)
@bp.doc(security=BEARER)
def delivery(pool_id):
    """The winning supplier confirms delivery; escrow is paid out less the fee."""
    return services.present_pool(services.confirm_delivery(pool_id, api_member().id))


@bp.post("/pools/<int:pool_id>/cancel")
@idempotent
@bp.response(200, PoolOut)
@bp.doc(security=BEARER)
def cancel(pool_id):
    """Organizer (open pool) or operator (open or awarded pool): cancel and release/refund."""
    pool = services.cancel_pool(pool_id, api_member().id, ip=request.remote_addr or "")
    return services.present_pool(pool)
