"""finance: hash chains, commit-safe paging, roll-ups, period close, adjustments, reversals

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 11:00:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: Union[str, None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

PK = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
INSTANT = sa.DateTime(timezone=True)
APPEND_ONLY = ('ledger_periods', 'chain_seals', 'balance_rollups', 'reversals')


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    # Plain ADD COLUMN: a batch (table copy) on SQLite would drop triggers.
    # The writing transaction's id (xid8), so that readers page only below their snapshot's xmin.
    op.add_column('entries', sa.Column(
        'xid', sa.BigInteger(), nullable=True,
        server_default=sa.text("(pg_current_xact_id()::text)::bigint") if postgres else None))
    # Link of the customer's hash chain: sha256(previous link + the entry's canonical content).
    op.add_column('entries', sa.Column('chain_hash', sa.String(length=64), nullable=True))
    op.create_index('ix_entries_program_recorded', 'entries', ['program_id', 'recorded_at'])
    op.create_index('ix_entries_account_recorded', 'entries', ['account_id', 'recorded_at', 'seq'])
    if postgres:
        op.create_index('ix_entries_program_xid_seq', 'entries', ['program_id', 'xid', 'seq'])
    op.add_column('customers', sa.Column('chain_head', sa.String(length=64), nullable=True))
    op.add_column('customers', sa.Column('erased_at', INSTANT, nullable=True))
    op.add_column('customers', sa.Column('closed_at', INSTANT, nullable=True))
    op.create_index('ix_customers_program_created', 'customers', ['program_id', 'created_at'])
    op.add_column('accounts', sa.Column('bucket', sa.String(length=20), nullable=True))
    for (account_id, path) in bind.execute(
            sa.text("SELECT id, path FROM accounts WHERE customer_pk IS NOT NULL")).fetchall():
        bind.execute(sa.text("UPDATE accounts SET bucket = :b WHERE id = :id"),
                     {"b": path.rsplit("/", 1)[1], "id": account_id})

    op.create_table(
        'chain_seals',
        sa.Column('id', PK, autoincrement=True, nullable=False),
        sa.Column('program_id', sa.String(length=40), sa.ForeignKey('programs.id'), nullable=False),
        sa.Column('sealed_at', INSTANT, nullable=False),
        sa.Column('through_seq', sa.BigInteger(), nullable=False),
        sa.Column('below_xid', sa.BigInteger(), nullable=True),
        sa.Column('customers', sa.BigInteger(), nullable=False),
        sa.Column('previous_digest', sa.String(length=64), nullable=True),
        sa.Column('digest', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_chain_seals_program', 'chain_seals', ['program_id', 'id'])
    op.create_table(
        'balance_rollups',
        sa.Column('id', PK, autoincrement=True, nullable=False),
        sa.Column('program_id', sa.String(length=40), sa.ForeignKey('programs.id'), nullable=False),
        sa.Column('as_of', INSTANT, nullable=False),
        sa.Column('account', sa.String(length=300), nullable=False),
        sa.Column('asset', sa.String(length=10), nullable=False),
        sa.Column('balance', sa.BigInteger(), nullable=False),
        sa.Column('accounts', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('program_id', 'as_of', 'account', name='uq_balance_rollups'),
    )
    op.create_table(
        'ledger_periods',
        sa.Column('id', PK, autoincrement=True, nullable=False),
        sa.Column('program_id', sa.String(length=40), sa.ForeignKey('programs.id'), nullable=False),
        sa.Column('period', sa.String(length=7), nullable=False),
        sa.Column('starts_at', INSTANT, nullable=False),
        sa.Column('ends_at', INSTANT, nullable=False),
        sa.Column('closed_at', INSTANT, nullable=False),
        sa.Column('actor', sa.String(length=80), nullable=False),
        sa.Column('request_id', sa.String(length=80), nullable=True),
        sa.Column('trial_balance', sa.JSON(), nullable=False),
        sa.Column('liability', sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('program_id', 'period', name='uq_ledger_periods'),
    )
    op.create_table(
        'adjustments',
        sa.Column('id', PK, autoincrement=True, nullable=False),
        sa.Column('program_id', sa.String(length=40), sa.ForeignKey('programs.id'), nullable=False),
        sa.Column('adjustment_id', sa.String(length=128), nullable=False),
        sa.Column('customer_pk', sa.BigInteger(), sa.ForeignKey('customers.pk'), nullable=False),
        sa.Column('asset', sa.String(length=10), nullable=False),
        sa.Column('amount', sa.BigInteger(), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('reason_code', sa.String(length=40), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('requested_by', sa.String(length=80), nullable=False),
        sa.Column('approved_by', sa.String(length=80), nullable=True),
        sa.Column('transaction_id', sa.String(length=40), nullable=True),
        sa.Column('created_at', INSTANT, nullable=False),
        sa.Column('booked_at', INSTANT, nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('program_id', 'adjustment_id', name='uq_adjustments_program_adjustment'),
        sa.CheckConstraint('amount <> 0', name='ck_adjustments_amount_nonzero'),
        sa.CheckConstraint("status IN ('pending_approval', 'booked')", name='ck_adjustments_status'),
    )
    op.create_table(
        'reversals',
        sa.Column('id', PK, autoincrement=True, nullable=False),
        sa.Column('program_id', sa.String(length=40), sa.ForeignKey('programs.id'), nullable=False),
        sa.Column('original_transaction_id', sa.String(length=40), sa.ForeignKey('transactions.id'),
                  nullable=False),
        sa.Column('reversal_transaction_id', sa.String(length=40), sa.ForeignKey('transactions.id'),
                  nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('actor', sa.String(length=80), nullable=False),
        sa.Column('created_at', INSTANT, nullable=False),
        sa.PrimaryKeyConstraint('id'),
        # At most one reversal per transaction: a concurrent second one fails here.
        sa.UniqueConstraint('original_transaction_id', name='uq_reversals_original'),
    )
    for table in APPEND_ONLY:
        if postgres:
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                       "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()")
            op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                       "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()")
        else:
            for operation in ("UPDATE", "DELETE"):
                op.execute(f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
                           f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {operation} refused'); END")


def downgrade() -> None:
    for table in ('reversals', 'adjustments', 'ledger_periods', 'balance_rollups', 'chain_seals'):
        op.drop_table(table)
    op.drop_column('accounts', 'bucket')
    op.drop_index('ix_customers_program_created', 'customers')
    for column in ('closed_at', 'erased_at', 'chain_head'):
        op.drop_column('customers', column)
    op.drop_index('ix_entries_account_recorded', 'entries')
    op.drop_index('ix_entries_program_recorded', 'entries')
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index('ix_entries_program_xid_seq', 'entries')
    op.drop_column('entries', 'chain_hash')
    op.drop_column('entries', 'xid')
