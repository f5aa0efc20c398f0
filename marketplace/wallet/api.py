"""JSON API: the caller's wallet (shared/API.md "Wallet")."""

from ..accounts.auth import api_member
from ..apiutil import BEARER, ApiBlueprint, page_slice
from ..ledger.idempotency import idempotent
from . import services
from .schemas import DepositIn, PaymentOut, TransactionOut, WalletOut, WithdrawalIn

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
    return services.deposit(api_member().id, data["amount"], data["currency"], data.get("payment_method"))


@bp.post("/withdrawals")
@idempotent
@bp.arguments(WithdrawalIn)
@bp.response(201, PaymentOut)
@bp.doc(security=BEARER)
def withdraw(data):
    """Pay money out; 409 insufficient_funds beyond the available balance."""
    return services.withdraw(api_member().id, data["amount"], data["currency"])


@bp.get("/transactions")
@bp.response(200, TransactionOut(many=True))
@bp.paginate()
@bp.doc(security=BEARER)
def transactions(pagination_parameters):
    """Wallet movements, newest first, with the balance after each."""
    member_id = api_member().id
    offset, limit = page_slice(pagination_parameters, services.count_transactions(member_id))
    return services.transactions(member_id, limit=limit, offset=offset)
