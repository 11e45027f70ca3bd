"""conversions, conversion_letters, pending_letters: converted messages and letters waiting for their parts

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 09:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('conversions',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('direction', sa.String(length=10), nullable=False),
    sa.Column('header_id', sa.String(length=100), nullable=False),
    sa.Column('message', sa.JSON(), nullable=False),
    sa.Column('source_id', sa.String(length=36), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('answered_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['source_id'], ['messages.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('conversions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_conversions_header_id'), ['header_id'], unique=False)
    op.create_table('conversion_letters',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('conversion_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('envelope_id', sa.String(length=50), nullable=False),
    sa.Column('letter_id', sa.String(length=50), nullable=False),
    sa.Column('version_code', sa.String(length=20), nullable=False),
    sa.Column('sender_ean', sa.String(length=20), nullable=False),
    sa.Column('receiver_ean', sa.String(length=20), nullable=False),
    sa.Column('asks_positive', sa.Boolean(), nullable=False),
    sa.Column('answer', sa.String(length=30), nullable=True),
    sa.Column('receipt', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['conversion_id'], ['conversions.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('conversion_letters', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_conversion_letters_conversion_id'), ['conversion_id'], unique=False)
        batch_op.create_index('ix_conversion_letters_envelope', ['sender_ean', 'envelope_id'], unique=False)
    op.create_table('pending_letters',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('sender_ean', sa.String(length=20), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('object_ids', sa.JSON(), nullable=False),
    sa.Column('message_id', sa.String(length=36), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('pending_letters', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pending_letters_sender_ean'), ['sender_ean'], unique=False)


def downgrade() -> None:
    op.drop_table('pending_letters')
    op.drop_table('conversion_letters')
    op.drop_table('conversions')
