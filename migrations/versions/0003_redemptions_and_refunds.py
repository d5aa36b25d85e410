"""redemptions and refunds

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 04:53:34.837248
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0003'
down_revision: Union[str, None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('redemptions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('program_id', sa.String(length=40), nullable=False),
    sa.Column('redemption_id', sa.String(length=128), nullable=False),
    sa.Column('customer_pk', sa.BigInteger(), nullable=False),
    sa.Column('asset', sa.String(length=10), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.Column('captured_amount', sa.BigInteger(), nullable=True),
    sa.Column('order_id', sa.String(length=128), nullable=True),
    sa.Column('order_amount', sa.BigInteger(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('hold_transaction_id', sa.String(length=40), nullable=False),
    sa.Column('settle_transaction_id', sa.String(length=40), nullable=True),
    sa.ForeignKeyConstraint(['customer_pk'], ['customers.pk'], ),
    sa.ForeignKeyConstraint(['program_id'], ['programs.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('program_id', 'redemption_id', name='uq_redemptions_program_redemption'),
    sa.CheckConstraint('amount > 0', name='ck_redemptions_amount_positive'),
    sa.CheckConstraint('captured_amount IS NULL OR (captured_amount >= 0 AND captured_amount <= amount)',
                       name='ck_redemptions_captured_range'),
    sa.CheckConstraint("status IN ('held', 'captured', 'voided', 'expired')", name='ck_redemptions_status'),
    )
    with op.batch_alter_table('redemptions', schema=None) as batch_op:
        batch_op.create_index('ix_redemptions_customer_status_expiry', ['customer_pk', 'status', 'expires_at'], unique=False)
        batch_op.create_index('ix_redemptions_program_order', ['program_id', 'order_id'], unique=False)
        batch_op.create_index('ix_redemptions_status_expiry', ['status', 'expires_at'], unique=False)

    op.create_table('redemption_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('redemption_pk', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('transaction_id', sa.String(length=40), nullable=True),
    sa.Column('actor', sa.String(length=80), nullable=False),
    sa.ForeignKeyConstraint(['redemption_pk'], ['redemptions.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('redemption_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_redemption_events_redemption_pk'), ['redemption_pk'], unique=False)

    op.create_table('refunds',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('program_id', sa.String(length=40), nullable=False),
    sa.Column('refund_id', sa.String(length=128), nullable=False),
    sa.Column('purchase_id', sa.BigInteger(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('lines', sa.JSON(), nullable=True),
    sa.Column('points_reversed', sa.BigInteger(), nullable=False),
    sa.Column('cashback_reversed', sa.BigInteger(), nullable=False),
    sa.Column('points_restored', sa.BigInteger(), nullable=False),
    sa.Column('cashback_restored', sa.BigInteger(), nullable=False),
    sa.Column('points_uncollected', sa.BigInteger(), nullable=False),
    sa.Column('cashback_uncollected', sa.BigInteger(), nullable=False),
    sa.Column('transaction_id', sa.String(length=40), nullable=True),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['program_id'], ['programs.id'], ),
    sa.ForeignKeyConstraint(['purchase_id'], ['purchases.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('program_id', 'refund_id', name='uq_refunds_program_refund'),
    sa.CheckConstraint('amount > 0', name='ck_refunds_amount_positive'),
    )
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refunds_purchase_id'), ['purchase_id'], unique=False)

    # Plain ADD COLUMN: a batch (table copy) on SQLite would drop triggers.
    op.add_column('pending_releases', sa.Column('reversed_amount', sa.BigInteger(), server_default='0', nullable=False))
    op.add_column('purchases', sa.Column('earn_rates', sa.JSON(), nullable=True))

    append_only = ("redemption_events", "refunds")
    if op.get_bind().dialect.name == "postgresql":
        for table in append_only:
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                       f"FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()")
            op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                       f"FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()")
    else:
        for table in append_only:
            for operation in ("UPDATE", "DELETE"):
                op.execute(f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
                           f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {operation} refused'); END")



def downgrade() -> None:
    op.drop_column('purchases', 'earn_rates')
    op.drop_column('pending_releases', 'reversed_amount')

    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refunds_purchase_id'))

    op.drop_table('refunds')
    with op.batch_alter_table('redemption_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_redemption_events_redemption_pk'))

    op.drop_table('redemption_events')
    with op.batch_alter_table('redemptions', schema=None) as batch_op:
        batch_op.drop_index('ix_redemptions_status_expiry')
        batch_op.drop_index('ix_redemptions_program_order')
        batch_op.drop_index('ix_redemptions_customer_status_expiry')

    op.drop_table('redemptions')
