"""API: post corrections, saved statement drafts, saved searches

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'corrections',
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('post_id', sa.String(length=128), nullable=False),
        sa.Column('field', sa.String(length=16), nullable=False),
        sa.Column('value', sa.Text(), nullable=False),
        sa.Column('previous', sa.Text(), nullable=True),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('lang', sa.String(length=16), nullable=True),
        sa.Column('post', sa.Text(), nullable=False),
        sa.Column('actor', sa.String(length=200), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('corrections', schema=None) as batch_op:
        batch_op.create_index('ix_corrections_post_field', ['post_id', 'field', 'id'], unique=False)

    op.create_table(
        'statement_drafts',
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('alert_id', ID, nullable=False),
        sa.Column('lang', sa.String(length=16), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('actor', sa.String(length=200), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['alert_id'], ['alerts.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('statement_drafts', schema=None) as batch_op:
        batch_op.create_index('ix_statement_drafts_alert_lang', ['alert_id', 'lang', 'id'], unique=False)

    op.create_table(
        'saved_searches',
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('owner', sa.String(length=200), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('params', sa.Text(), nullable=False),
        sa.Column('shared', sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('owner', 'name', name='uq_saved_searches_owner_name'),
    )


def downgrade() -> None:
    op.drop_table('saved_searches')
    with op.batch_alter_table('statement_drafts', schema=None) as batch_op:
        batch_op.drop_index('ix_statement_drafts_alert_lang')
    op.drop_table('statement_drafts')
    with op.batch_alter_table('corrections', schema=None) as batch_op:
        batch_op.drop_index('ix_corrections_post_field')
    op.drop_table('corrections')
