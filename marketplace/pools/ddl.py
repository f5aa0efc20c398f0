"""The database keeps each pool's pledge totals (``pool_pledge_totals``) itself, on both databases.

- a trigger on ``pools`` gives every new pool its :data:`TOTAL_SHARDS` rows
  of zeros;
- triggers on ``pledges`` add a pledge's quantity and 1 to its row (``pool_id``,
  ``id % TOTAL_SHARDS``) when it starts to count, and take them off when it
  stops (withdrawn, deleted): on insert, on delete, and on an update of its
  pool, quantity or status that changes what it counts for. A change between
  counted statuses (``active`` to ``filled`` or ``released`` at close) does
  not touch the totals: the update trigger's WHEN leaves such rows alone, so
  closing a pool of 100,000 pledges writes no total;
- a pledge whose pool has no totals row is refused rather than left out.

Called from the Alembic migration 0007; ``drop`` undoes ``create``;
``backfill`` computes the rows of the pools that exist (the migration, and
tests that check it).
"""

from __future__ import annotations

from .models import COUNTED_PLEDGES, TOTAL_SHARDS

_COUNTED = ", ".join(f"'{status}'" for status in COUNTED_PLEDGES)
_SHARDS = " UNION ALL ".join(f"SELECT {n} AS shard" for n in range(TOTAL_SHARDS))
# An update that changes what the pledge counts for: in or out of the counted statuses, or, counted, its
# pool, quantity or shard. ``IS DISTINCT FROM`` (PostgreSQL) is ``IS NOT`` in SQLite.
_CHANGES = (
    "(OLD.status IN ({c})) {ne} (NEW.status IN ({c})) OR (NEW.status IN ({c}) AND ("
    "OLD.pool_id {ne} NEW.pool_id OR OLD.quantity {ne} NEW.quantity OR OLD.id {ne} NEW.id))"
)

POSTGRESQL = [
    f"""
    CREATE OR REPLACE FUNCTION pool_totals_new_pool() RETURNS trigger AS $$
    BEGIN
        INSERT INTO pool_pledge_totals (pool_id, shard, volume, pledges)
        SELECT NEW.id, shard, 0, 0 FROM generate_series(0, {TOTAL_SHARDS - 1}) AS shard;
        RETURN NULL;
    END
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER pools_pledge_totals AFTER INSERT ON pools
        FOR EACH ROW EXECUTE FUNCTION pool_totals_new_pool()
    """,
    f"""
    CREATE OR REPLACE FUNCTION pool_totals_count_pledge() RETURNS trigger AS $$
    BEGIN
        IF TG_OP <> 'INSERT' AND OLD.status IN ({_COUNTED}) THEN
            UPDATE pool_pledge_totals SET volume = volume - OLD.quantity, pledges = pledges - 1
             WHERE pool_id = OLD.pool_id AND shard = OLD.id % {TOTAL_SHARDS};
        END IF;
        IF TG_OP <> 'DELETE' AND NEW.status IN ({_COUNTED}) THEN
            UPDATE pool_pledge_totals SET volume = volume + NEW.quantity, pledges = pledges + 1
             WHERE pool_id = NEW.pool_id AND shard = NEW.id % {TOTAL_SHARDS};
            IF NOT FOUND THEN
                RAISE EXCEPTION 'pool % has no pledge totals row % (pledge %)',
                    NEW.pool_id, NEW.id % {TOTAL_SHARDS}, NEW.id;
            END IF;
        END IF;
        RETURN NULL;
    END
    $$ LANGUAGE plpgsql
    """,
    f"""
    CREATE TRIGGER pledges_totals_insert AFTER INSERT ON pledges
        FOR EACH ROW WHEN (NEW.status IN ({_COUNTED})) EXECUTE FUNCTION pool_totals_count_pledge()
    """,
    f"""
    CREATE TRIGGER pledges_totals_update AFTER UPDATE OF id, pool_id, quantity, status ON pledges
        FOR EACH ROW WHEN ({_CHANGES.format(c=_COUNTED, ne="IS DISTINCT FROM")})
        EXECUTE FUNCTION pool_totals_count_pledge()
    """,
    f"""
    CREATE TRIGGER pledges_totals_delete AFTER DELETE ON pledges
        FOR EACH ROW WHEN (OLD.status IN ({_COUNTED})) EXECUTE FUNCTION pool_totals_count_pledge()
    """,
]

_SQLITE_TAKE_OLD = f"""
        UPDATE pool_pledge_totals SET volume = volume - OLD.quantity, pledges = pledges - 1
         WHERE OLD.status IN ({_COUNTED}) AND pool_id = OLD.pool_id AND shard = OLD.id % {TOTAL_SHARDS};"""
_SQLITE_ADD_NEW = f"""
        SELECT RAISE(ABORT, 'the pool has no pledge totals row for this pledge')
         WHERE NEW.status IN ({_COUNTED}) AND NOT EXISTS (SELECT 1 FROM pool_pledge_totals
                            WHERE pool_id = NEW.pool_id AND shard = NEW.id % {TOTAL_SHARDS});
        UPDATE pool_pledge_totals SET volume = volume + NEW.quantity, pledges = pledges + 1
         WHERE NEW.status IN ({_COUNTED}) AND pool_id = NEW.pool_id AND shard = NEW.id % {TOTAL_SHARDS};"""

SQLITE = [
    f"""
    CREATE TRIGGER pools_pledge_totals AFTER INSERT ON pools FOR EACH ROW BEGIN
        INSERT INTO pool_pledge_totals (pool_id, shard, volume, pledges)
        VALUES {", ".join(f"(NEW.id, {n}, 0, 0)" for n in range(TOTAL_SHARDS))};
    END
    """,
    f"""
    CREATE TRIGGER pledges_totals_insert AFTER INSERT ON pledges
        FOR EACH ROW WHEN NEW.status IN ({_COUNTED}) BEGIN{_SQLITE_ADD_NEW}
    END
    """,
    f"""
    CREATE TRIGGER pledges_totals_update AFTER UPDATE OF id, pool_id, quantity, status ON pledges
        FOR EACH ROW WHEN {_CHANGES.format(c=_COUNTED, ne="IS NOT")} BEGIN{_SQLITE_TAKE_OLD}{_SQLITE_ADD_NEW}
    END
    """,
    f"""
    CREATE TRIGGER pledges_totals_delete AFTER DELETE ON pledges
        FOR EACH ROW WHEN OLD.status IN ({_COUNTED}) BEGIN{_SQLITE_TAKE_OLD}
    END
    """,
]

DROP = {
    "postgresql": [
        "DROP TRIGGER IF EXISTS pledges_totals_delete ON pledges",
        "DROP TRIGGER IF EXISTS pledges_totals_update ON pledges",
        "DROP TRIGGER IF EXISTS pledges_totals_insert ON pledges",
        "DROP FUNCTION IF EXISTS pool_totals_count_pledge()",
        "DROP TRIGGER IF EXISTS pools_pledge_totals ON pools",
        "DROP FUNCTION IF EXISTS pool_totals_new_pool()",
    ],
    "sqlite": [
        "DROP TRIGGER IF EXISTS pledges_totals_delete",
        "DROP TRIGGER IF EXISTS pledges_totals_update",
        "DROP TRIGGER IF EXISTS pledges_totals_insert",
        "DROP TRIGGER IF EXISTS pools_pledge_totals",
    ],
}

# Every pool's rows, then each row's sum of the counted pledges it holds (plain SQL both databases run).
BACKFILL = [
    f"""
    INSERT INTO pool_pledge_totals (pool_id, shard, volume, pledges)
    SELECT pools.id, shards.shard, 0, 0 FROM pools CROSS JOIN ({_SHARDS}) AS shards
     WHERE NOT EXISTS (SELECT 1 FROM pool_pledge_totals t WHERE t.pool_id = pools.id AND t.shard = shards.shard)
    """,
    f"""
    UPDATE pool_pledge_totals SET
        volume = (SELECT coalesce(sum(p.quantity), 0) FROM pledges p
                   WHERE p.pool_id = pool_pledge_totals.pool_id AND p.status IN ({_COUNTED})
                     AND p.id % {TOTAL_SHARDS} = pool_pledge_totals.shard),
        pledges = (SELECT count(*) FROM pledges p
                   WHERE p.pool_id = pool_pledge_totals.pool_id AND p.status IN ({_COUNTED})
                     AND p.id % {TOTAL_SHARDS} = pool_pledge_totals.shard)
    """,
]


def create(op) -> None:
    dialect = op.get_bind().dialect.name
    for statement in POSTGRESQL if dialect == "postgresql" else SQLITE:
        op.execute(statement)


def drop(op) -> None:
    for statement in DROP["postgresql" if op.get_bind().dialect.name == "postgresql" else "sqlite"]:
        op.execute(statement)


def backfill(execute) -> None:
    """Make and fill the totals rows of every pool (``execute`` runs one statement as ``text()``, as
    ``op.execute`` does); the caller keeps pledges from changing meanwhile."""
    for statement in BACKFILL:
        execute(statement)
