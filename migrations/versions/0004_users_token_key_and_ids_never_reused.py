"""users: a token key per account, and ids never reused on SQLite

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 17:40:00.000000

"""
import secrets

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

users = sa.table('users', sa.column('id', sa.Integer()), sa.column('token_key', sa.String()))


def rebuild_on_sqlite():
    """SQLite gains or loses AUTOINCREMENT only with a rebuilt table (migrations/env.py turns
    its foreign keys off meanwhile, so dropping the old table cascades nowhere). PostgreSQL
    alters in place: its sequence never reused an id."""
    return 'always' if op.get_bind().dialect.name == 'sqlite' else 'auto'


def upgrade():
    op.add_column('users', sa.Column('token_key', sa.String(length=32), nullable=True))
    connection = op.get_bind()
    # Each existing account gets its own random key (the one models.user.new_token_key makes);
    # tokens issued before carry none, so they all end with this migration.
    for user_id in connection.scalars(sa.select(users.c.id)).all():
        connection.execute(users.update().where(users.c.id == user_id)
                           .values(token_key=secrets.token_urlsafe(16)))
    with op.batch_alter_table('users', recreate=rebuild_on_sqlite(),
                              table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.alter_column('token_key', existing_type=sa.String(length=32), nullable=False)


def downgrade():
    with op.batch_alter_table('users', recreate=rebuild_on_sqlite(),
                              table_kwargs={'sqlite_autoincrement': False}) as batch_op:
        batch_op.drop_column('token_key')
