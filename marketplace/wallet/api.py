"""JSON API: the caller's wallet (shared/API.md "Wallet")."""

from ..accounts.auth import api_member
from ..apiutil import BEARER, ApiBlueprint, page_slice
from ..ledger.idempotency import idempotency_key, idempotent
from ..payments import authorizations
from ..pools.schemas import PledgeOut
from . import services
from .schemas import CardAuthorizationOut, DepositIn, PaymentOut, ReauthorizeIn, TransactionOut, WalletOut, WithdrawalIn

bp = ApiBlueprint("wallet_api", __name__, url_prefix="/api/v1/wallet", description="The caller's wallet")


@bp.get("")
@bp.response(200, WalletOut)
@bp.doc(security=BEARER)
def wallet():
    """Balance, held and available per currency."""
    return {"balances": services.balances(api_member().id)}


@bp.post("/deposits")
@idempotent
@bp.arguments(DepositIn)
@bp.response(201, PaymentOut)
@bp.doc(security=BEARER)
def deposit(data):
    """Pay money in through the payments provider."""
    return services.deposit(
        api_member().id,
        data["amount"],
        data["currency"],
        data.get("payment_method"),
        idempotency_key=idempotency_key(),
    )


@bp.post("/withdrawals")
@idempotent
@bp.arguments(WithdrawalIn)
@bp.response(201, PaymentOut)
@bp.doc(security=BEARER)
def withdraw(data):
    """Pay money out: refunds to your card deposits first, the rest by an operator-approved payout.

    The amount leaves the wallet at once; 409 insufficient_funds beyond the
    available balance. ``status`` stays ``pending`` until every part is paid.
    """
    return services.withdraw(api_member().id, data["amount"], data["currency"])


@bp.get("/payments/<int:payment_id>")
@bp.response(200, PaymentOut)
@bp.doc(security=BEARER)
def payment(payment_id):
    """One of the caller's deposits or withdrawals, with its current status (and a withdrawal's parts)."""
    return services.get_payment(api_member().id, payment_id)


@bp.get("/transactions")
@bp.response(200, TransactionOut(many=True))
@bp.paginate()
@bp.doc(security=BEARER)
def transactions(pagination_parameters):
    """Wallet movements, newest first, with the balance after each."""
    member_id = api_member().id
    offset, limit = page_slice(pagination_parameters, services.count_transactions(member_id))
    return services.transactions(member_id, limit=limit, offset=offset)


@bp.get("/card-authorizations")
@bp.response(200, CardAuthorizationOut(many=True))
@bp.doc(security=BEARER)
def card_authorizations():
    """Card holds backing the caller's card-funded pledges, newest first."""
    return authorizations.for_member(api_member().id)


@bp.post("/card-authorizations/<int:auth_id>/reauthorize")
@idempotent
@bp.arguments(ReauthorizeIn)
@bp.response(201, CardAuthorizationOut)
@bp.doc(security=BEARER)
def reauthorize(data, auth_id):
    """A fresh card authorization for the same pledge (card holds expire after 7 days); the old one is cancelled."""
    return authorizations.reauthorize(
        api_member().id, auth_id, payment_method=data.get("payment_method"), idempotency_key=idempotency_key()
    )


@bp.post("/card-authorizations/<int:auth_id>/switch-to-wallet")
@idempotent
@bp.response(200, PledgeOut)
@bp.doc(security=BEARER)
def switch_to_wallet(auth_id):
    """Back the pledge with wallet funds instead of the card (409 insufficient_funds if the wallet cannot)."""
    return authorizations.switch_to_wallet(api_member().id, auth_id)
