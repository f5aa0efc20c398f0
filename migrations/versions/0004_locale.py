"""members choose their language

Revision ID: 0004_locale
Revises: 0003_lending
Create Date: 2026-11-22 22:40:00

"""
import sqlalchemy as sa
from alembic import op

revision = "0004_locale"
down_revision = "0003_lending"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.add_column(sa.Column("locale", sa.String(length=8), nullable=True))


def downgrade():
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_column("locale")
