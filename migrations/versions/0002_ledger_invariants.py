"""Ledger invariants the database itself enforces, written by hand (autogenerate misses them).

- Append-only: UPDATE, DELETE (and on PostgreSQL TRUNCATE) on entries, transactions,
  lot consumptions and program changes are refused.
- PostgreSQL: a deferred constraint trigger refuses, at COMMIT, a transaction whose entries
  do not sum to zero per asset (SQLSTATE 23514), and a transaction booked without entries.
  On SQLite the same rule is enforced by the service and checked by `ledger verify`.

Revision ID: 0002
Revises: 0001
"""
from typing import Sequence, Union

from alembic import op

revision: str = "0002"
down_revision: Union[str, None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

APPEND_ONLY_TABLES = ("entries", "transactions", "lot_consumptions", "program_changes")

PG_FUNCTIONS = [
    """
    CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'ledger table % is append-only: % refused', TG_TABLE_NAME, TG_OP
            USING ERRCODE = 'restrict_violation';
    END
    $$
    """,
    """
    CREATE OR REPLACE FUNCTION ledger_check_balanced() RETURNS trigger
    LANGUAGE plpgsql AS $$
    DECLARE
        bad record;
    BEGIN
        SELECT asset, SUM(amount) AS total INTO bad
          FROM entries WHERE transaction_id = NEW.transaction_id
         GROUP BY asset HAVING SUM(amount) <> 0 LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'transaction % does not balance for %: entries sum to %',
                NEW.transaction_id, bad.asset, bad.total
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE OR REPLACE FUNCTION ledger_check_has_entries() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM entries WHERE transaction_id = NEW.id) THEN
            RAISE EXCEPTION 'transaction % has no entries', NEW.id
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NULL;
    END
    $$
    """,
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for ddl in PG_FUNCTIONS:
            op.execute(ddl)
        for table in APPEND_ONLY_TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()"
            )
        op.execute(
            "CREATE CONSTRAINT TRIGGER entries_balanced AFTER INSERT ON entries "
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_balanced()"
        )
        op.execute(
            "CREATE CONSTRAINT TRIGGER transactions_have_entries AFTER INSERT ON transactions "
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_has_entries()"
        )
    else:
        for table in APPEND_ONLY_TABLES:
            for operation in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {operation} refused'); END"
                )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS transactions_have_entries ON transactions")
        op.execute("DROP TRIGGER IF EXISTS entries_balanced ON entries")
        for table in APPEND_ONLY_TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        for name in ("ledger_check_has_entries", "ledger_check_balanced", "ledger_refuse_change"):
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    else:
        for table in APPEND_ONLY_TABLES:
            for operation in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{operation}")
