"""texts shown in the reader's language: notifications.params, bids.outcome_params

A notification keeps its English ``message`` (the JSON API, old rows) and now
also its template and parameters (``texts.Msg.to_json``), so its page can show
it translated; a bid keeps the same for the explanation of how it cleared.
Loan requests need no column: their ``grade_reasons`` JSON carries ``msg``.

Revision ID: 0006_texts
Revises: 0005_session_epoch
Create Date: 2026-11-23 12:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = "0006_texts"
down_revision = "0005_session_epoch"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("params", sa.JSON(), nullable=True))
    with op.batch_alter_table("bids", schema=None) as batch_op:
        batch_op.add_column(sa.Column("outcome_params", sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table("bids", schema=None) as batch_op:
        batch_op.drop_column("outcome_params")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_column("params")
