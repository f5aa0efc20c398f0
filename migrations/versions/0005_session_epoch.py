"""sign-out ends every session: members.session_epoch

Revision ID: 0005_session_epoch
Revises: 0004_stripe
Create Date: 2026-11-23 01:30:00

"""
import sqlalchemy as sa
from alembic import op

revision = "0005_session_epoch"
down_revision = "0004_stripe"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.add_column(sa.Column("session_epoch", sa.Integer(), server_default="0", nullable=False))


def downgrade():
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_column("session_epoch")
