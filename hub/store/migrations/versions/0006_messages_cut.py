"""messages.cut: a body kept only in part (a 413's first bytes, up to the size limit)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08 02:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('messages') as batch:
        batch.add_column(sa.Column('cut', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('messages') as batch:
        batch.drop_column('cut')
