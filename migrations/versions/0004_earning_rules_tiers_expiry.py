"""earning rules, campaigns, tiers and points expiry

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 08:40:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: Union[str, None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

PK = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
INSTANT = sa.DateTime(timezone=True)
APPEND_ONLY = ("earning_config_versions", "earning_awards", "tier_changes")


def upgrade() -> None:
    op.create_table(
        'earning_config_versions',
        sa.Column('id', PK, autoincrement=True, nullable=False),
        sa.Column('program_id', sa.String(length=40), nullable=False),
        sa.Column('version', sa.BigInteger(), nullable=False),
        sa.Column('config', sa.JSON(), nullable=False),
        sa.Column('created_at', INSTANT, nullable=False),
        sa.Column('actor', sa.String(length=80), nullable=False),
        sa.Column('request_id', sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(['program_id'], ['programs.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('program_id', 'version', name='uq_earning_config_versions'),
        sa.CheckConstraint('version > 0', name='ck_earning_config_versions_positive'),
    )
    op.create_table(
        'earning_awards',
        sa.Column('id', PK, autoincrement=True, nullable=False),
        sa.Column('program_id', sa.String(length=40), nullable=False),
        sa.Column('customer_pk', sa.BigInteger(), nullable=False),
        sa.Column('purchase_id', sa.BigInteger(), nullable=False),
        sa.Column('source', sa.String(length=20), nullable=False),
        sa.Column('source_id', sa.String(length=40), nullable=False),
        sa.Column('occasion', sa.String(length=20), nullable=True),
        sa.Column('points', sa.BigInteger(), nullable=False),
        sa.Column('awarded_at', INSTANT, nullable=False),
        sa.ForeignKeyConstraint(['program_id'], ['programs.id']),
        sa.ForeignKeyConstraint(['customer_pk'], ['customers.pk']),
        sa.ForeignKeyConstraint(['purchase_id'], ['purchases.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.CheckConstraint("source IN ('rule', 'campaign')", name='ck_earning_awards_source'),
        sa.CheckConstraint('points > 0', name='ck_earning_awards_points_positive'),
    )
    op.create_index('ix_earning_awards_customer_source', 'earning_awards', ['customer_pk', 'source_id', 'awarded_at'])
    op.create_table(
        'campaign_budgets',
        sa.Column('program_id', sa.String(length=40), nullable=False),
        sa.Column('campaign_id', sa.String(length=40), nullable=False),
        sa.Column('used_points', sa.BigInteger(), server_default='0', nullable=False),
        sa.ForeignKeyConstraint(['program_id'], ['programs.id']),
        sa.PrimaryKeyConstraint('program_id', 'campaign_id'),
        sa.CheckConstraint('used_points >= 0', name='ck_campaign_budgets_used_nonnegative'),
    )
    op.create_table(
        'tier_changes',
        sa.Column('id', PK, autoincrement=True, nullable=False),
        sa.Column('program_id', sa.String(length=40), nullable=False),
        sa.Column('customer_pk', sa.BigInteger(), nullable=False),
        sa.Column('from_tier', sa.String(length=40), nullable=True),
        sa.Column('to_tier', sa.String(length=40), nullable=False),
        sa.Column('reason', sa.String(length=30), nullable=False),
        sa.Column('metric', sa.BigInteger(), nullable=True),
        sa.Column('purchase_id', sa.BigInteger(), nullable=True),
        sa.Column('manual_until', INSTANT, nullable=True),
        sa.Column('changed_at', INSTANT, nullable=False),
        sa.Column('actor', sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(['program_id'], ['programs.id']),
        sa.ForeignKeyConstraint(['customer_pk'], ['customers.pk']),
        sa.PrimaryKeyConstraint('id'),
        sa.CheckConstraint("reason IN ('qualified', 'upgrade_undone', 'evaluation_kept', 'evaluation_downgrade', "
                           "'manual', 'manual_ended')", name='ck_tier_changes_reason'),
    )
    op.create_index('ix_tier_changes_customer', 'tier_changes', ['customer_pk', 'id'])
    # Plain ADD COLUMN: a batch (table copy) on SQLite would drop triggers.
    for name, column_type in (("tier_id", sa.String(length=40)), ("tier_changed_at", INSTANT),
                              ("tier_evaluate_at", INSTANT), ("tier_manual_until", INSTANT)):
        op.add_column('customers', sa.Column(name, column_type, nullable=True))
    op.create_index('ix_customers_tier_evaluate_at', 'customers', ['tier_evaluate_at'])
    op.add_column('programs', sa.Column('earning_version', sa.BigInteger(), server_default='0', nullable=False))
    op.add_column('purchases', sa.Column('config_version', sa.BigInteger(), nullable=True))
    op.add_column('purchases', sa.Column('earning', sa.JSON(), nullable=True))
    op.add_column('refunds', sa.Column('points_unexpired', sa.BigInteger(), server_default='0', nullable=False))
    op.create_index('ix_purchases_customer_occurred', 'purchases', ['customer_pk', 'occurred_at'])
    op.create_index('ix_points_lots_expiry_open', 'points_lots', ['expires_at', 'remaining'])

    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                       f"FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()")
            op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                       f"FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()")
    else:
        for table in APPEND_ONLY:
            for operation in ("UPDATE", "DELETE"):
                op.execute(f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
                           f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {operation} refused'); END")


def downgrade() -> None:
    op.drop_index('ix_points_lots_expiry_open', 'points_lots')
    op.drop_index('ix_purchases_customer_occurred', 'purchases')
    op.drop_column('refunds', 'points_unexpired')
    op.drop_column('purchases', 'earning')
    op.drop_column('purchases', 'config_version')
    op.drop_column('programs', 'earning_version')
    op.drop_index('ix_customers_tier_evaluate_at', 'customers')
    for name in ("tier_manual_until", "tier_evaluate_at", "tier_changed_at", "tier_id"):
        op.drop_column('customers', name)
    op.drop_index('ix_tier_changes_customer', 'tier_changes')
    op.drop_table('tier_changes')
    op.drop_table('campaign_budgets')
    op.drop_index('ix_earning_awards_customer_source', 'earning_awards')
    op.drop_table('earning_awards')
    op.drop_table('earning_config_versions')
