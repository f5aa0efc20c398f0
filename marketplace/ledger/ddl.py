"""PostgreSQL-only guards: the database itself refuses what the ledger forbids.

- a deferred constraint trigger rejects, at commit, any journal entry whose
  postings do not sum to zero per currency or that has fewer than two;
- triggers reject UPDATE and DELETE of postings and journal entries;
- (in the table definitions) a unique index on idempotency keys and a CHECK
  that keeps a wallet's available balance non-negative.

Called from the Alembic migrations; ``drop`` undoes ``create``.
"""

CREATE = [
    """
    CREATE OR REPLACE FUNCTION ledger_entry_balanced() RETURNS trigger AS $$
    DECLARE
        entry bigint;
        bad record;
        n integer;
    BEGIN
        IF TG_TABLE_NAME = 'postings' THEN
            entry := NEW.entry_id;
        ELSE
            entry := NEW.id;
        END IF;
        SELECT count(*) INTO n FROM postings WHERE entry_id = entry;
        IF n < 2 THEN
            RAISE EXCEPTION 'journal entry % has % posting(s); at least two are required', entry, n
                USING ERRCODE = 'check_violation';
        END IF;
        FOR bad IN
            SELECT currency, sum(amount) AS total FROM postings
            WHERE entry_id = entry GROUP BY currency HAVING sum(amount) <> 0
        LOOP
            RAISE EXCEPTION 'journal entry % is unbalanced: % postings sum to %', entry, bad.currency, bad.total
                USING ERRCODE = 'check_violation';
        END LOOP;
        RETURN NULL;
    END;
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE CONSTRAINT TRIGGER postings_balanced
        AFTER INSERT ON postings
        DEFERRABLE INITIALLY DEFERRED
        FOR EACH ROW EXECUTE FUNCTION ledger_entry_balanced()
    """,
    """
    CREATE CONSTRAINT TRIGGER journal_entries_balanced
        AFTER INSERT ON journal_entries
        DEFERRABLE INITIALLY DEFERRED
        FOR EACH ROW EXECUTE FUNCTION ledger_entry_balanced()
    """,
    """
    CREATE OR REPLACE FUNCTION ledger_immutable() RETURNS trigger AS $$
    BEGIN
        RAISE EXCEPTION '% rows are immutable: post a reversing entry instead (% refused)', TG_TABLE_NAME, TG_OP
            USING ERRCODE = 'restrict_violation';
    END;
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER postings_immutable BEFORE UPDATE OR DELETE ON postings
        FOR EACH ROW EXECUTE FUNCTION ledger_immutable()
    """,
    """
    CREATE TRIGGER journal_entries_immutable BEFORE UPDATE OR DELETE ON journal_entries
        FOR EACH ROW EXECUTE FUNCTION ledger_immutable()
    """,
]

DROP = [
    "DROP TRIGGER IF EXISTS journal_entries_immutable ON journal_entries",
    "DROP TRIGGER IF EXISTS postings_immutable ON postings",
    "DROP FUNCTION IF EXISTS ledger_immutable()",
    "DROP TRIGGER IF EXISTS journal_entries_balanced ON journal_entries",
    "DROP TRIGGER IF EXISTS postings_balanced ON postings",
    "DROP FUNCTION IF EXISTS ledger_entry_balanced()",
]


def create(op) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in CREATE:
        op.execute(statement)


def drop(op) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in DROP:
        op.execute(statement)
