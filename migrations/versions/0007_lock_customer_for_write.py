"""PostgreSQL: a customer's lock and what a write reads under it, in one round trip

`ledger_lock_customer_for_write(program_id, customer_id, now)` locks the customer's row (FOR NO KEY
UPDATE, as `SqlCustomers.lock`), then returns the customer, its program, its accounts with their
cached balances (as arrays, so that the customer and the program come once), the time of its latest
entry, the chain head, and the three upkeep flags (pending value due, holds lapsed, any capture
ever), in one row. A purchase and a hold made these two
statements, and the second could not be joined into the first: under READ COMMITTED a statement
that waited for a lock re-reads only the locked row, so joined rows would come from the snapshot
taken before the wait. A VOLATILE function takes a fresh snapshot for each query it runs, so the
query after the lock sees what the previous holder of the lock committed. SQLite keeps the two
statements (it has no row locks; BEGIN IMMEDIATE serialises its writers).

Revision ID: 0007
Revises: 0006
"""
from typing import Sequence, Union

from alembic import op

revision: str = "0007"
down_revision: Union[str, None] = "0006"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

LOCK_FOR_WRITE = """
CREATE OR REPLACE FUNCTION ledger_lock_customer_for_write(
    p_program_id varchar, p_customer_id varchar, p_now timestamptz)
RETURNS TABLE (
    pk bigint, program_id varchar, customer_id varchar, email varchar, phone varchar, name varchar,
    display_name varchar, birthday varchar, leaderboard_opt_in boolean, status varchar,
    created_at timestamptz, updated_at timestamptz, tier_id varchar, tier_changed_at timestamptz,
    tier_evaluate_at timestamptz, tier_manual_until timestamptz, referral_code varchar, referred_by_pk bigint,
    program_settings json, program_created_at timestamptz, program_earning_version bigint,
    account_ids bigint[], account_paths varchar[], account_balances bigint[], latest_recorded_at timestamptz,
    chain_head varchar, releases_due boolean, holds_lapsed boolean, has_captures boolean)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    locked bigint;
BEGIN
    SELECT c.pk INTO locked FROM customers c
     WHERE c.program_id = p_program_id AND c.customer_id = p_customer_id
       FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    -- A new snapshot: taken after the lock, so it sees the previous holder's commit.
    RETURN QUERY
    SELECT c.pk, c.program_id, c.customer_id, c.email, c.phone, c.name, c.display_name, c.birthday,
           c.leaderboard_opt_in, c.status, c.created_at, c.updated_at, c.tier_id, c.tier_changed_at,
           c.tier_evaluate_at, c.tier_manual_until, c.referral_code, c.referred_by_pk,
           p.settings, p.created_at, p.earning_version,
           acc.ids, acc.paths, acc.balances, acc.latest, c.chain_head,
           EXISTS (SELECT 1 FROM pending_releases r
                    WHERE r.customer_pk = locked AND r.released_transaction_id IS NULL
                      AND r.release_at <= p_now AND r.amount > r.reversed_amount),
           EXISTS (SELECT 1 FROM redemptions h
                    WHERE h.customer_pk = locked AND h.status = 'held' AND h.expires_at <= p_now),
           EXISTS (SELECT 1 FROM redemptions h WHERE h.customer_pk = locked AND h.status = 'captured')
      FROM customers c
      JOIN programs p ON p.id = c.program_id
     CROSS JOIN LATERAL (
           SELECT array_agg(a.id ORDER BY a.id) AS ids, array_agg(a.path ORDER BY a.id) AS paths,
                  array_agg(a.balance ORDER BY a.id) AS balances, max(e.recorded_at) AS latest
             FROM accounts a LEFT JOIN entries e ON e.seq = a.last_seq
            WHERE a.customer_pk = c.pk) acc
     WHERE c.pk = locked;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(LOCK_FOR_WRITE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS ledger_lock_customer_for_write(varchar, varchar, timestamptz)")
