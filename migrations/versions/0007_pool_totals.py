"""pool pledge totals kept by the database: pool_pledge_totals and its triggers

A pool's pledged volume and pledge count were summed from its pledges on
every read (the API, the pool page, the lists): the cost grew with the
pledges (2.3 ms of PostgreSQL per read at 15,000). Now each pool has a fixed
number of rows of running totals that triggers on ``pledges`` keep in the
same transaction as every write (marketplace/pools/ddl.py); this migration
makes them for the pools that exist, with pools and pledges locked against
writes on PostgreSQL meanwhile.

Revision ID: 0007_pool_totals
Revises: 0006_texts
Create Date: 2026-12-06 04:00:00

"""

import sqlalchemy as sa
from alembic import op

from marketplace.pools import ddl as pools_ddl

revision = "0007_pool_totals"
down_revision = "0006_texts"
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("LOCK TABLE pools, pledges IN SHARE ROW EXCLUSIVE MODE")  # until this migration commits
    op.create_table(
        "pool_pledge_totals",
        sa.Column("pool_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("shard", sa.SmallInteger(), nullable=False),
        sa.Column("volume", sa.BigInteger(), nullable=False),
        sa.Column("pledges", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("shard >= 0 AND shard < 16", name=op.f("ck_pool_pledge_totals_shard_in_range")),
        sa.CheckConstraint("volume >= 0", name=op.f("ck_pool_pledge_totals_volume_not_negative")),
        sa.CheckConstraint("pledges >= 0", name=op.f("ck_pool_pledge_totals_pledges_not_negative")),
        sa.ForeignKeyConstraint(
            ["pool_id"], ["pools.id"], name=op.f("fk_pool_pledge_totals_pool_id_pools"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("pool_id", "shard", name=op.f("pk_pool_pledge_totals")),
    )
    pools_ddl.backfill(op.execute)
    pools_ddl.create(op)


def downgrade():
    pools_ddl.drop(op)
    op.drop_table("pool_pledge_totals")
