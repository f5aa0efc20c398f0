"""Import every model so the metadata (and Alembic) sees the whole schema."""

from .accounts.models import ApiToken, Member  # noqa: F401
from .ledger.models import Account, Hold, IdempotencyRecord, JournalEntry, Posting  # noqa: F401
from .operators.models import AuditLog, TestClock  # noqa: F401
from .payments.models import Payment  # noqa: F401
