"""referrals, engagement events and achievements

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 09:20:00
"""
import secrets
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: Union[str, None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

PK = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
INSTANT = sa.DateTime(timezone=True)
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def upgrade() -> None:
    # Plain ADD COLUMN: a batch (table copy) on SQLite would drop triggers.
    op.add_column('customers', sa.Column('referral_code', sa.String(length=16), nullable=True))
    op.add_column('customers', sa.Column('referred_by_pk', sa.BigInteger(), nullable=True))
    op.add_column('pending_releases', sa.Column('source', sa.String(length=20), server_default='purchase',
                                                nullable=False))
    bind = op.get_bind()
    for (pk,) in bind.execute(sa.text("SELECT pk FROM customers WHERE referral_code IS NULL")).fetchall():
        code = "".join(secrets.choice(ALPHABET) for _ in range(10))
        bind.execute(sa.text("UPDATE customers SET referral_code = :code WHERE pk = :pk"), {"code": code, "pk": pk})
    op.create_index('uq_customers_program_referral_code', 'customers', ['program_id', 'referral_code'], unique=True)
    op.create_table(
        'referrals',
        sa.Column('id', PK, autoincrement=True, nullable=False),
        sa.Column('program_id', sa.String(length=40), nullable=False),
        sa.Column('referrer_pk', sa.BigInteger(), nullable=False),
        sa.Column('referee_pk', sa.BigInteger(), nullable=False),
        sa.Column('code', sa.String(length=16), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('reason', sa.String(length=40), nullable=True),
        sa.Column('purchase_id', sa.BigInteger(), nullable=True),
        sa.Column('referrer_points', sa.BigInteger(), server_default='0', nullable=False),
        sa.Column('referrer_cashback', sa.BigInteger(), server_default='0', nullable=False),
        sa.Column('referee_points', sa.BigInteger(), server_default='0', nullable=False),
        sa.Column('referee_cashback', sa.BigInteger(), server_default='0', nullable=False),
        sa.Column('qualified_at', INSTANT, nullable=True),
        sa.Column('rewarded_at', INSTANT, nullable=True),
        sa.Column('created_at', INSTANT, nullable=False),
        sa.Column('updated_at', INSTANT, nullable=False),
        sa.ForeignKeyConstraint(['program_id'], ['programs.id']),
        sa.ForeignKeyConstraint(['referrer_pk'], ['customers.pk']),
        sa.ForeignKeyConstraint(['referee_pk'], ['customers.pk']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('referee_pk', name='uq_referrals_referee'),
        sa.CheckConstraint("status IN ('registered', 'purchased', 'reversed', 'capped')", name='ck_referrals_status'),
        sa.CheckConstraint('referrer_pk <> referee_pk', name='ck_referrals_not_self'),
    )
    op.create_index('ix_referrals_referrer', 'referrals', ['referrer_pk', 'qualified_at'])
    op.create_table(
        'events',
        sa.Column('id', PK, autoincrement=True, nullable=False),
        sa.Column('program_id', sa.String(length=40), nullable=False),
        sa.Column('event_id', sa.String(length=128), nullable=False),
        sa.Column('customer_pk', sa.BigInteger(), nullable=False),
        sa.Column('type', sa.String(length=60), nullable=False),
        sa.Column('properties', sa.JSON(), nullable=True),
        sa.Column('points', sa.BigInteger(), nullable=False),
        sa.Column('rewards', sa.JSON(), nullable=True),
        sa.Column('transaction_id', sa.String(length=40), nullable=True),
        sa.Column('occurred_at', INSTANT, nullable=False),
        sa.Column('recorded_at', INSTANT, nullable=False),
        sa.ForeignKeyConstraint(['program_id'], ['programs.id']),
        sa.ForeignKeyConstraint(['customer_pk'], ['customers.pk']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('program_id', 'event_id', name='uq_events_program_event'),
        sa.CheckConstraint('points >= 0', name='ck_events_points_nonnegative'),
    )
    op.create_index('ix_events_customer_type', 'events', ['customer_pk', 'type', 'occurred_at'])
    op.create_table(
        'customer_achievements',
        sa.Column('id', PK, autoincrement=True, nullable=False),
        sa.Column('program_id', sa.String(length=40), nullable=False),
        sa.Column('customer_pk', sa.BigInteger(), nullable=False),
        sa.Column('achievement_id', sa.String(length=40), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('occasion', sa.String(length=20), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('points', sa.BigInteger(), nullable=False),
        sa.Column('window_at', INSTANT, nullable=False),
        sa.Column('definition', sa.JSON(), nullable=False),
        sa.Column('transaction_id', sa.String(length=40), nullable=True),
        sa.Column('revoke_transaction_id', sa.String(length=40), nullable=True),
        sa.Column('earned_at', INSTANT, nullable=False),
        sa.Column('revoked_at', INSTANT, nullable=True),
        sa.ForeignKeyConstraint(['program_id'], ['programs.id']),
        sa.ForeignKeyConstraint(['customer_pk'], ['customers.pk']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('customer_pk', 'achievement_id', 'occasion', name='uq_customer_achievements'),
        sa.CheckConstraint("status IN ('earned', 'revoked')", name='ck_customer_achievements_status'),
    )
    if bind.dialect.name == "postgresql":
        op.execute("CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events "
                   "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()")
        op.execute("CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events "
                   "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()")
    else:
        for operation in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER events_no_{operation.lower()} BEFORE {operation} ON events "
                       f"BEGIN SELECT RAISE(ABORT, 'events is append-only: {operation} refused'); END")


def downgrade() -> None:
    op.drop_table('customer_achievements')
    op.drop_index('ix_events_customer_type', 'events')
    op.drop_table('events')
    op.drop_index('ix_referrals_referrer', 'referrals')
    op.drop_table('referrals')
    op.drop_index('uq_customers_program_referral_code', 'customers')
    op.drop_column('pending_releases', 'source')
    op.drop_column('customers', 'referred_by_pk')
    op.drop_column('customers', 'referral_code')
