"""crawl queue: the scheduler requests crawls, crawler processes run them

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'crawl_queue',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('source', sa.String(length=200), nullable=False),
        sa.Column('status', sa.String(length=16), server_default='pending', nullable=False),
        sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('claimed_by', sa.String(length=200), nullable=True),
        sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
        sa.Column('report', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('crawl_queue', schema=None) as batch_op:
        batch_op.create_index('ix_crawl_queue_status', ['status', 'id'], unique=False)
        batch_op.create_index(
            'uq_crawl_queue_active_source', ['source'], unique=True,
            sqlite_where=sa.text("status IN ('pending', 'running')"),
            postgresql_where=sa.text("status IN ('pending', 'running')"),
        )


def downgrade() -> None:
    with op.batch_alter_table('crawl_queue', schema=None) as batch_op:
        batch_op.drop_index('uq_crawl_queue_active_source')
        batch_op.drop_index('ix_crawl_queue_status')
    op.drop_table('crawl_queue')
