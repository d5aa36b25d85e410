"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-26 04:30:10.779865
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision: str = '0001'
down_revision: Union[str, None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('idempotency_records',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('program_id', sa.String(length=40), nullable=False),
    sa.Column('scope', sa.String(length=20), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('body', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('program_id', 'scope', 'key', name='uq_idempotency_program_scope_key')
    )
    op.create_table('programs',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('creation_key_hash', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('creation_key_hash')
    )
    op.create_table('api_keys',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('program_id', sa.String(length=40), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=True),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('replaced_by', sa.String(length=40), nullable=True),
    sa.ForeignKeyConstraint(['program_id'], ['programs.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key_hash')
    )
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_keys_program_id'), ['program_id'], unique=False)

    op.create_table('customers',
    sa.Column('pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('program_id', sa.String(length=40), nullable=False),
    sa.Column('customer_id', sa.String(length=128), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('phone', sa.String(length=40), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('display_name', sa.String(length=100), nullable=True),
    sa.Column('birthday', sa.String(length=10), nullable=True),
    sa.Column('leaderboard_opt_in', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['program_id'], ['programs.id'], ),
    sa.PrimaryKeyConstraint('pk'),
    sa.UniqueConstraint('program_id', 'customer_id', name='uq_customers_program_customer')
    )
    op.create_table('program_changes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('program_id', sa.String(length=40), nullable=False),
    sa.Column('actor', sa.String(length=80), nullable=False),
    sa.Column('request_id', sa.String(length=80), nullable=True),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('before', sa.JSON(), nullable=False),
    sa.Column('after', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['program_id'], ['programs.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('program_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_program_changes_program_id'), ['program_id'], unique=False)

    op.create_table('transactions',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('program_id', sa.String(length=40), nullable=False),
    sa.Column('customer_pk', sa.BigInteger(), nullable=True),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('reference_kind', sa.String(length=20), nullable=False),
    sa.Column('reference_id', sa.String(length=128), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('actor', sa.String(length=80), nullable=False),
    sa.Column('request_id', sa.String(length=80), nullable=True),
    sa.Column('idempotency_key', sa.String(length=255), nullable=True),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['program_id'], ['programs.id'], ),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('id')
    )
    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.create_index('ix_transactions_customer_seq', ['customer_pk', 'seq'], unique=False)
        batch_op.create_index('ix_transactions_program_reference', ['program_id', 'reference_kind', 'reference_id'], unique=False)

    op.create_table('accounts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('program_id', sa.String(length=40), nullable=False),
    sa.Column('path', sa.String(length=300), nullable=False),
    sa.Column('asset', sa.String(length=10), nullable=False),
    sa.Column('customer_pk', sa.BigInteger(), nullable=True),
    sa.Column('balance', sa.BigInteger(), nullable=True),
    sa.Column('last_seq', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['customer_pk'], ['customers.pk'], ),
    sa.ForeignKeyConstraint(['program_id'], ['programs.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('program_id', 'path', name='uq_accounts_program_path'),
    sa.CheckConstraint("asset IN ('points', 'cashback')", name='ck_accounts_asset'),
    )
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_accounts_customer_pk'), ['customer_pk'], unique=False)

    op.create_table('points_lots',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('program_id', sa.String(length=40), nullable=False),
    sa.Column('customer_pk', sa.BigInteger(), nullable=False),
    sa.Column('transaction_id', sa.String(length=40), nullable=False),
    sa.Column('source', sa.String(length=40), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('remaining', sa.BigInteger(), nullable=False),
    sa.Column('value_at_issue', sa.BigInteger(), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('available_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['customer_pk'], ['customers.pk'], ),
    sa.ForeignKeyConstraint(['program_id'], ['programs.id'], ),
    sa.ForeignKeyConstraint(['transaction_id'], ['transactions.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.CheckConstraint('amount > 0', name='ck_points_lots_amount_positive'),
    sa.CheckConstraint('remaining >= 0 AND remaining <= amount', name='ck_points_lots_remaining_range'),
    )
    with op.batch_alter_table('points_lots', schema=None) as batch_op:
        batch_op.create_index('ix_points_lots_customer_expiry', ['customer_pk', 'expires_at'], unique=False)

    op.create_table('purchases',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('program_id', sa.String(length=40), nullable=False),
    sa.Column('order_id', sa.String(length=128), nullable=False),
    sa.Column('customer_pk', sa.BigInteger(), nullable=False),
    sa.Column('transaction_id', sa.String(length=40), nullable=True),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('tax', sa.BigInteger(), nullable=False),
    sa.Column('shipping', sa.BigInteger(), nullable=False),
    sa.Column('channel', sa.String(length=40), nullable=True),
    sa.Column('lines', sa.JSON(), nullable=True),
    sa.Column('points_earned', sa.BigInteger(), nullable=False),
    sa.Column('cashback_earned', sa.BigInteger(), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_pk'], ['customers.pk'], ),
    sa.ForeignKeyConstraint(['program_id'], ['programs.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('program_id', 'order_id', name='uq_purchases_program_order'),
    sa.CheckConstraint('amount > 0', name='ck_purchases_amount_positive'),
    sa.CheckConstraint('points_earned >= 0 AND cashback_earned >= 0', name='ck_purchases_earned_nonnegative'),
    )
    with op.batch_alter_table('purchases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_purchases_customer_pk'), ['customer_pk'], unique=False)

    op.create_table('entries',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('program_id', sa.String(length=40), nullable=False),
    sa.Column('transaction_id', sa.String(length=40), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('asset', sa.String(length=10), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('balance_after', sa.BigInteger(), nullable=True),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.ForeignKeyConstraint(['program_id'], ['programs.id'], ),
    sa.ForeignKeyConstraint(['transaction_id'], ['transactions.id'], ),
    sa.PrimaryKeyConstraint('seq'),
    sa.CheckConstraint('amount <> 0', name='ck_entries_amount_nonzero'),
    sa.CheckConstraint("asset IN ('points', 'cashback')", name='ck_entries_asset'),
    )
    with op.batch_alter_table('entries', schema=None) as batch_op:
        batch_op.create_index('ix_entries_account_seq', ['account_id', 'seq'], unique=False)
        batch_op.create_index('ix_entries_program_seq', ['program_id', 'seq'], unique=False)
        batch_op.create_index(batch_op.f('ix_entries_transaction_id'), ['transaction_id'], unique=False)

    op.create_table('lot_consumptions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('lot_id', sa.BigInteger(), nullable=False),
    sa.Column('transaction_id', sa.String(length=40), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['lot_id'], ['points_lots.id'], ),
    sa.ForeignKeyConstraint(['transaction_id'], ['transactions.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.CheckConstraint('amount > 0', name='ck_lot_consumptions_amount_positive'),
    )
    with op.batch_alter_table('lot_consumptions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lot_consumptions_lot_id'), ['lot_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_lot_consumptions_transaction_id'), ['transaction_id'], unique=False)

    op.create_table('pending_releases',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('program_id', sa.String(length=40), nullable=False),
    sa.Column('customer_pk', sa.BigInteger(), nullable=False),
    sa.Column('purchase_id', sa.BigInteger(), nullable=False),
    sa.Column('asset', sa.String(length=10), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('release_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('released_transaction_id', sa.String(length=40), nullable=True),
    sa.ForeignKeyConstraint(['customer_pk'], ['customers.pk'], ),
    sa.ForeignKeyConstraint(['program_id'], ['programs.id'], ),
    sa.ForeignKeyConstraint(['purchase_id'], ['purchases.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.CheckConstraint('amount > 0', name='ck_pending_releases_amount_positive'),
    )
    with op.batch_alter_table('pending_releases', schema=None) as batch_op:
        batch_op.create_index('ix_pending_releases_customer_due', ['customer_pk', 'release_at'], unique=False)
        batch_op.create_index('ix_pending_releases_due', ['released_transaction_id', 'release_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('pending_releases', schema=None) as batch_op:
        batch_op.drop_index('ix_pending_releases_due')
        batch_op.drop_index('ix_pending_releases_customer_due')

    op.drop_table('pending_releases')
    with op.batch_alter_table('lot_consumptions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lot_consumptions_transaction_id'))
        batch_op.drop_index(batch_op.f('ix_lot_consumptions_lot_id'))

    op.drop_table('lot_consumptions')
    with op.batch_alter_table('entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_entries_transaction_id'))
        batch_op.drop_index('ix_entries_program_seq')
        batch_op.drop_index('ix_entries_account_seq')

    op.drop_table('entries')
    with op.batch_alter_table('purchases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_purchases_customer_pk'))

    op.drop_table('purchases')
    with op.batch_alter_table('points_lots', schema=None) as batch_op:
        batch_op.drop_index('ix_points_lots_customer_expiry')

    op.drop_table('points_lots')
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_accounts_customer_pk'))

    op.drop_table('accounts')
    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.drop_index('ix_transactions_program_reference')
        batch_op.drop_index('ix_transactions_customer_seq')

    op.drop_table('transactions')
    with op.batch_alter_table('program_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_program_changes_program_id'))

    op.drop_table('program_changes')
    op.drop_table('customers')
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_keys_program_id'))

    op.drop_table('api_keys')
    op.drop_table('programs')
    op.drop_table('idempotency_records')
