"""message tree: a parent per message, a current message per conversation

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 09:10:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

# Every existing conversation becomes one branch: each message follows the one before it in
# (created_at, id) order, which is not the insert order (an answer's row is written when it
# ends, with the time it began). Two messages of one role may follow each other.
CHAIN_MESSAGES = """
UPDATE messages SET parent_id = chained.previous_id
FROM (SELECT id, LAG(id) OVER (PARTITION BY conversation_id ORDER BY created_at, id)
             AS previous_id
      FROM messages) AS chained
WHERE messages.id = chained.id AND chained.previous_id IS NOT NULL
"""

# The branch's last message is current; an empty conversation keeps NULL.
CURRENT_MESSAGES = """
UPDATE conversations SET current_message_id = (
    SELECT messages.id FROM messages WHERE messages.conversation_id = conversations.id
    ORDER BY messages.created_at DESC, messages.id DESC LIMIT 1)
"""


def upgrade():
    # On SQLite a batch rebuilds each table (migrations/env.py turns its foreign keys off
    # meanwhile); PostgreSQL alters in place.
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('parent_id', sa.String(length=40), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_messages_parent_id_messages'), 'messages',
                                    ['parent_id'], ['id'], ondelete='SET NULL')
        batch_op.create_index('ix_messages_parent_conversation', ['parent_id', 'conversation_id'],
                              unique=False)

    # Conversations and messages now refer to each other: this key is added to a table that
    # exists, as the models' use_alter says.
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('current_message_id', sa.String(length=40), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_conversations_current_message_id_messages'),
                                    'messages', ['current_message_id'], ['id'],
                                    ondelete='SET NULL')
        batch_op.create_index('ix_conversations_current_message', ['current_message_id'],
                              unique=False)

    op.execute(CHAIN_MESSAGES)
    op.execute(CURRENT_MESSAGES)


def downgrade():
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.drop_index('ix_conversations_current_message')
        batch_op.drop_constraint(batch_op.f('fk_conversations_current_message_id_messages'),
                                 type_='foreignkey')
        batch_op.drop_column('current_message_id')

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_parent_conversation')
        batch_op.drop_constraint(batch_op.f('fk_messages_parent_id_messages'), type_='foreignkey')
        batch_op.drop_column('parent_id')
