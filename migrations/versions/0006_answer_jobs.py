"""answers as jobs: running answers, their events, an error code per message

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 13:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'answer_jobs',
        sa.Column('answer_id', sa.String(length=40), nullable=False),
        sa.Column('worker', sa.String(length=80), nullable=False),
        sa.Column('language', sa.String(length=8), nullable=False),
        sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('stop_requested', sa.Boolean(), nullable=False),
        sa.Column('listened_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_event_id', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('answer_id', name=op.f('pk_answer_jobs')))
    op.create_index('ix_answer_jobs_worker_ended', 'answer_jobs', ['worker', 'ended_at'])
    op.create_index('ix_answer_jobs_ended_heartbeat', 'answer_jobs', ['ended_at', 'heartbeat_at'])
    op.create_table(
        'answer_events',
        sa.Column('answer_id', sa.String(length=40), nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('event', sa.String(length=16), nullable=False),
        sa.Column('data', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('answer_id', 'seq', name=op.f('pk_answer_events')))
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('error_code', sa.String(length=32), nullable=True))
    # Answers stored before this had no code; an error answer's is its failure's.
    op.execute("UPDATE messages SET error_code = 'upstream_error' WHERE status = 'error'")


def downgrade():
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('error_code')
    op.drop_table('answer_events')
    op.drop_index('ix_answer_jobs_ended_heartbeat', table_name='answer_jobs')
    op.drop_index('ix_answer_jobs_worker_ended', table_name='answer_jobs')
    op.drop_table('answer_jobs')
