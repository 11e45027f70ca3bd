"""encounter_events: what happened to hospital stays, per patient

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 00:20:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('encounter_events',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('stay', sa.String(length=300), nullable=False),
    sa.Column('event', sa.String(length=80), nullable=False),
    sa.Column('status', sa.String(length=30), nullable=False),
    sa.Column('encounter_class', sa.String(length=20), nullable=True),
    sa.Column('start', sa.DateTime(), nullable=True),
    sa.Column('end', sa.DateTime(), nullable=True),
    sa.Column('patient_identifier', sa.String(length=300), nullable=True),
    sa.Column('service_provider', sa.String(length=100), nullable=True),
    sa.Column('occurred_at', sa.DateTime(), nullable=True),
    sa.Column('message_id', sa.String(length=36), nullable=False),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.Column('resource', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('encounter_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_encounter_events_patient_identifier'), ['patient_identifier'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_encounter_events_stay'), ['stay'], unique=False)


def downgrade() -> None:
    op.drop_table('encounter_events')
