"""PostgreSQL-only guards: the database itself refuses what the ledger forbids.

- deferred constraint triggers reject, at commit, any journal entry whose
  postings do not sum to zero per currency or that has fewer than two (each
  new posting checks its whole entry; each new entry checks it has postings);
- triggers reject UPDATE and DELETE of postings and journal entries;
- (in the table definitions) a unique index on idempotency keys and a CHECK
  that keeps a wallet's available balance non-negative.

Called from the Alembic migrations; ``drop`` undoes ``create``.
"""

CREATE = [
    # Per posting: its entry has >= 2 postings and sums to 0 per currency (one
    # indexed aggregate; the failing currency is looked up only to say which).
    """
    CREATE OR REPLACE FUNCTION ledger_entry_balanced() RETURNS trigger AS $$
    DECLARE
        n bigint;
        unbalanced boolean;
        bad record;
    BEGIN
        SELECT coalesce(sum(s.n), 0), coalesce(bool_or(s.total <> 0), false) INTO n, unbalanced
        FROM (SELECT count(*) AS n, sum(amount) AS total FROM postings
              WHERE entry_id = NEW.entry_id GROUP BY currency) AS s;
        IF n < 2 THEN
            RAISE EXCEPTION 'journal entry % has % posting(s); at least two are required', NEW.entry_id, n
                USING ERRCODE = 'check_violation';
        END IF;
        IF unbalanced THEN
            SELECT currency, sum(amount) AS total INTO bad FROM postings
            WHERE entry_id = NEW.entry_id GROUP BY currency HAVING sum(amount) <> 0 ORDER BY currency LIMIT 1;
            RAISE EXCEPTION 'journal entry % is unbalanced: % postings sum to %', NEW.entry_id, bad.currency, bad.total
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NULL;
    END;
    $$ LANGUAGE plpgsql
    """,
    # Per entry: it has a posting at all. Every posting fires the check above,
    # so an entry with one or more postings is fully checked through them.
    """
    CREATE OR REPLACE FUNCTION ledger_entry_has_postings() RETURNS trigger AS $$
    BEGIN
        PERFORM 1 FROM postings WHERE entry_id = NEW.id LIMIT 1;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'journal entry % has 0 posting(s); at least two are required', NEW.id
                USING ERRCODE = 'check_violation';
        END IF;
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
        FOR EACH ROW EXECUTE FUNCTION ledger_entry_has_postings()
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
    "DROP FUNCTION IF EXISTS ledger_entry_has_postings()",
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
