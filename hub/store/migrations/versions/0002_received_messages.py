"""received_messages: inbound messages by identity, with their answers

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 00:20:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('received_messages',
    sa.Column('key', sa.String(length=300), nullable=False),
    sa.Column('message_id', sa.String(length=36), nullable=False),
    sa.Column('answer_id', sa.String(length=36), nullable=True),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['answer_id'], ['messages.id'], ),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], ),
    sa.PrimaryKeyConstraint('key')
    )


def downgrade() -> None:
    op.drop_table('received_messages')
