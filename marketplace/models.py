"""Import every model so the metadata (and Alembic) sees the whole schema."""

from .accounts.models import ApiToken, Member  # noqa: F401
from .conversation.models import Comment, Review  # noqa: F401
from .ledger.models import Account, Hold, IdempotencyRecord, JournalEntry, Posting  # noqa: F401
from .lending.models import (  # noqa: F401
    Installment,
    LenderCashFlow,
    LendingMarket,
    LendingOffer,
    Loan,
    LoanPart,
    LoanRequest,
    PartInstallment,
    Repayment,
)
from .notifications.models import Notification  # noqa: F401
from .operators.models import AuditLog, TestClock  # noqa: F401
from .payments.models import CardAuthorization, Payment, PayoutPart, StripeCustomer, WebhookEvent  # noqa: F401
from .pools.models import Bid, BidTier, Pledge, Pool  # noqa: F401
