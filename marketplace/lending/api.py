"""JSON API: person-to-person lending (shared/API.md "Lending")."""

from ..accounts.auth import api_member
from ..apiutil import BEARER, ApiBlueprint, page_slice
from ..errors import Forbidden
from ..ledger.idempotency import idempotent
from . import loans, market, portfolio, repayments
from .schemas import (
    LoanOut,
    LoanRequestIn,
    LoanRequestOut,
    LoanRequestQuery,
    OfferIn,
    OfferOut,
    PayoffQuoteOut,
    PortfolioOut,
    PortfolioQuery,
    RepaymentIn,
    RepaymentOut,
)

bp = ApiBlueprint(
    "lending_api", __name__, url_prefix="/api/v1", description="Person-to-person lending: requests, offers, loans"
)


@bp.post("/loan-requests")
@idempotent
@bp.arguments(LoanRequestIn)
@bp.response(201, LoanRequestOut)
@bp.doc(security=BEARER)
def create_request(data):
    """Ask for a loan (verified members); matched against the offers at once."""
    return market.create_request(api_member().id, **data)


@bp.get("/loan-requests")
@bp.arguments(LoanRequestQuery, location="query")
@bp.response(200, LoanRequestOut(many=True))
@bp.paginate()
@bp.doc(security=BEARER)
def list_requests(args, pagination_parameters):
    """Loan requests, newest first: ``status=open`` is the marketplace's open book; ``mine=true`` your own."""
    member = api_member()
    rows, total = market.list_requests(
        status=args.get("status"),
        borrower_id=member.id if args.get("mine") else None,
        offset=pagination_parameters.first_item,
        limit=pagination_parameters.page_size,
    )
    page_slice(pagination_parameters, total)
    return rows


@bp.get("/loan-requests/<int:request_id>")
@bp.response(200, LoanRequestOut)
@bp.doc(security=BEARER)
def get_request(request_id):
    """One loan request with its grade, reasons and how much is funded."""
    api_member()
    return market.get_request(request_id)


@bp.post("/loan-requests/<int:request_id>/cancel")
@idempotent
@bp.response(200, LoanRequestOut)
@bp.doc(security=BEARER)
def cancel_request(request_id):
    """The borrower withdraws an open request; reserved parts return to their offers."""
    return market.cancel_request(request_id, api_member().id)


@bp.post("/lending-offers")
@idempotent
@bp.arguments(OfferIn)
@bp.response(201, OfferOut)
@bp.doc(security=BEARER)
def create_offer(data):
    """Post a standing offer; ``amount`` is held from your wallet and matched at once."""
    return market.create_offer(api_member().id, **data)


@bp.get("/lending-offers")
@bp.response(200, OfferOut(many=True))
@bp.paginate()
@bp.doc(security=BEARER)
def list_offers(pagination_parameters):
    """Your own offers, newest first."""
    member_id = api_member().id
    offset, limit = page_slice(pagination_parameters, 0)
    rows, total = market.list_offers(member_id, offset=offset, limit=limit)
    pagination_parameters.item_count = total
    return rows


@bp.get("/lending-offers/<int:offer_id>")
@bp.response(200, OfferOut)
@bp.doc(security=BEARER)
def get_offer(offer_id):
    """One of your offers."""
    member = api_member()
    offer = market.get_offer(offer_id)
    if offer.lender_id != member.id and not member.is_operator:
        raise Forbidden("Only the lender can see its offer.")
    return offer


@bp.delete("/lending-offers/<int:offer_id>")
@bp.response(200, OfferOut)
@bp.errors(409)
@bp.doc(security=BEARER)
def cancel_offer(offer_id):
    """Cancel your offer; what is not lent is released to your wallet."""
    return market.cancel_offer(offer_id, api_member().id)


@bp.get("/loans")
@bp.response(200, LoanOut(many=True))
@bp.doc(security=BEARER)
def my_loans():
    """Your loans as a borrower, newest first."""
    return [loans.present_loan(loan) for loan in loans.loans_of_borrower(api_member().id)]


@bp.get("/loans/<int:loan_id>")
@bp.response(200, LoanOut)
@bp.doc(security=BEARER)
def get_loan(loan_id):
    """A loan with its parts and schedule (its borrower, its lenders, operators)."""
    return loans.present_loan(loans.loan_for(loan_id, api_member().id))


@bp.post("/loans/<int:loan_id>/repayments")
@idempotent
@bp.arguments(RepaymentIn)
@bp.response(201, RepaymentOut)
@bp.doc(security=BEARER)
def repay(data, loan_id):
    """The borrower repays from the wallet: oldest installment first, interest before principal."""
    repayment = repayments.repay(loan_id, api_member().id, data["amount"])
    return _with_loan(repayment)


@bp.get("/loans/<int:loan_id>/payoff")
@bp.response(200, PayoffQuoteOut)
@bp.errors(409)
@bp.doc(security=BEARER)
def payoff_quote(loan_id):
    """What paying the loan off today would cost: principal plus interest accrued to today.

    409 ``invalid_state`` once the loan is no longer active (repaid or defaulted).
    """
    member = api_member()
    loan = loans.loan_for(loan_id, member.id)
    if loan.borrower_id != member.id:
        raise Forbidden("Only the borrower can ask for a payoff quote.")
    return repayments.payoff_quote(loan)


@bp.post("/loans/<int:loan_id>/payoff")
@idempotent
@bp.response(201, RepaymentOut)
@bp.doc(security=BEARER)
def payoff(loan_id):
    """Repay all outstanding principal plus interest accrued to today."""
    return _with_loan(repayments.payoff(loan_id, api_member().id))


@bp.get("/portfolio")
@bp.arguments(PortfolioQuery, location="query")
@bp.response(200, PortfolioOut)
@bp.doc(security=BEARER)
def get_portfolio(args):
    """Your lending: invested, outstanding, interest received, defaulted, XIRR; per currency."""
    return portfolio.portfolio(api_member().id, args.get("currency"))


def _with_loan(repayment):
    loan = loans.get_loan(repayment.loan_id)
    return {
        "id": repayment.id,
        "loan_id": repayment.loan_id,
        "kind": repayment.kind,
        "amount": repayment.amount,
        "principal": repayment.principal,
        "interest": repayment.interest,
        "entry_id": repayment.entry_id,
        "created_at": repayment.created_at,
        "loan": loans.present_loan(loan),
    }
