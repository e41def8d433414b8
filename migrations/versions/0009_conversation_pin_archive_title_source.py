"""conversations: pinned, archived, and whether the user chose the title; the list indexes
lead with archived and pinned

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 03:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

# A title other than the default was chosen by the user or made from the first message; the
# two cannot be told apart any more, and only a conversation with no answer yet gets a
# model-made title, so an existing title is taken as the user's.
USER_TITLES = "UPDATE conversations SET title_by_user = (title <> '新会话')"


def upgrade():
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pinned', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('archived', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('title_by_user', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.drop_index('ix_conversations_user_updated')
        batch_op.drop_index('ix_conversations_user_project_updated')
        batch_op.create_index('ix_conversations_user_list',
                              ['user_id', 'archived', 'pinned', 'updated_at', 'id'],
                              unique=False)
        batch_op.create_index('ix_conversations_user_project_list',
                              ['user_id', 'project_id', 'archived', 'pinned', 'updated_at', 'id'],
                              unique=False)
    op.execute(USER_TITLES)


def downgrade():
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.drop_index('ix_conversations_user_project_list')
        batch_op.drop_index('ix_conversations_user_list')
        batch_op.create_index('ix_conversations_user_project_updated',
                              ['user_id', 'project_id', 'updated_at', 'id'], unique=False)
        batch_op.create_index('ix_conversations_user_updated', ['user_id', 'updated_at', 'id'],
                              unique=False)
        batch_op.drop_column('title_by_user')
        batch_op.drop_column('archived')
        batch_op.drop_column('pinned')
