"""alerts: on-call pages, statement publication and countdowns, delivery backoff

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('published_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('published_by', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('statement_url', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('next_update_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('press_conference_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        'oncall_pages',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('alert_id', _ID, nullable=False),
        sa.Column('trigger_event_id', _ID, nullable=False),
        sa.Column('event_id', _ID, nullable=False),
        sa.Column('level', sa.String(length=16), nullable=False),
        sa.Column('step', sa.Integer(), nullable=False),
        sa.Column('contact', sa.String(length=200), nullable=False),
        sa.Column('paged_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['alert_id'], ['alerts.id']),
        sa.ForeignKeyConstraint(['trigger_event_id'], ['alert_events.id']),
        sa.ForeignKeyConstraint(['event_id'], ['alert_events.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('trigger_event_id', 'step', 'contact', name='uq_oncall_pages_run_step_contact'),
    )
    with op.batch_alter_table('oncall_pages', schema=None) as batch_op:
        batch_op.create_index('ix_oncall_pages_alert', ['alert_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('oncall_pages', schema=None) as batch_op:
        batch_op.drop_index('ix_oncall_pages_alert')
    op.drop_table('oncall_pages')
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('next_attempt_at')
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_column('press_conference_at')
        batch_op.drop_column('next_update_at')
        batch_op.drop_column('statement_url')
        batch_op.drop_column('published_by')
        batch_op.drop_column('published_at')
