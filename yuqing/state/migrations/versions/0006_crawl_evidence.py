"""crawl evidence and near-duplicate folding: cluster sizes over near-duplicate texts, MinHash
signatures with LSH buckets, compressed content-addressed captures, crawled posts (re-checks,
disappearance)

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        'cluster_sizes',
        sa.Column('cluster_id', sa.String(length=64), nullable=False),
        sa.Column('size', sa.Integer(), server_default='1', nullable=False),
        sa.Column('first_seen', TS, nullable=False),
        sa.Column('last_seen', TS, nullable=False),
        sa.PrimaryKeyConstraint('cluster_id'),
    )
    # every existing exact-text cluster keeps its size
    op.execute(
        "INSERT INTO cluster_sizes (cluster_id, size, first_seen, last_seen) "
        "SELECT cluster_id, SUM(size), MIN(first_seen), MAX(last_seen) FROM clusters GROUP BY cluster_id"
    )
    op.create_table(
        'near_dup_signatures',
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('text_hash', sa.String(length=64), nullable=False),
        sa.Column('cluster_id', sa.String(length=64), nullable=False),
        sa.Column('signature', sa.LargeBinary(), nullable=False),
        sa.Column('created_at', TS, nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('near_dup_signatures', schema=None) as batch_op:
        batch_op.create_index('ix_near_dup_signatures_created', ['created_at'], unique=False)
    op.create_table(
        'near_dup_buckets',
        sa.Column('bucket', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('signature_id', ID, autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint('bucket', 'signature_id'),
    )
    op.create_table(
        'evidence',
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('codec', sa.String(length=8), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('content_type', sa.String(length=200), nullable=True),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.Column('created_at', TS, nullable=False),
        sa.PrimaryKeyConstraint('sha256'),
    )
    op.create_table(
        'post_evidence',
        sa.Column('doc_id', sa.String(length=64), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('url', sa.Text(), nullable=False),
        sa.Column('status', sa.Integer(), nullable=False),
        sa.Column('captured_at', TS, nullable=False),
        sa.PrimaryKeyConstraint('doc_id', 'sha256'),
    )
    with op.batch_alter_table('post_evidence', schema=None) as batch_op:
        batch_op.create_index('ix_post_evidence_sha256', ['sha256'], unique=False)
        batch_op.create_index('ix_post_evidence_captured', ['captured_at'], unique=False)
    op.create_table(
        'crawled_posts',
        sa.Column('doc_id', sa.String(length=64), nullable=False),
        sa.Column('source', sa.String(length=200), nullable=False),
        sa.Column('url', sa.Text(), nullable=True),
        sa.Column('direct', sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column('first_seen', TS, nullable=False),
        sa.Column('last_seen', TS, nullable=False),
        sa.Column('checked_at', TS, nullable=True),
        sa.Column('disappeared_at', TS, nullable=True),
        sa.PrimaryKeyConstraint('doc_id'),
    )
    with op.batch_alter_table('crawled_posts', schema=None) as batch_op:
        batch_op.create_index('ix_crawled_posts_source_check', ['source', 'disappeared_at', 'checked_at'], unique=False)
        batch_op.create_index('ix_crawled_posts_last_seen', ['last_seen'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('crawled_posts', schema=None) as batch_op:
        batch_op.drop_index('ix_crawled_posts_last_seen')
        batch_op.drop_index('ix_crawled_posts_source_check')
    op.drop_table('crawled_posts')
    with op.batch_alter_table('post_evidence', schema=None) as batch_op:
        batch_op.drop_index('ix_post_evidence_captured')
        batch_op.drop_index('ix_post_evidence_sha256')
    op.drop_table('post_evidence')
    op.drop_table('evidence')
    op.drop_table('near_dup_buckets')
    with op.batch_alter_table('near_dup_signatures', schema=None) as batch_op:
        batch_op.drop_index('ix_near_dup_signatures_created')
    op.drop_table('near_dup_signatures')
    op.drop_table('cluster_sizes')
