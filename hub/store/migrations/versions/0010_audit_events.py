"""audit_events: an append-only record of every access (IHE BALP as the model)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08 06:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_events',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('recorded', sa.DateTime(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('subtype', sa.String(length=40), nullable=False),
    sa.Column('action', sa.String(length=1), nullable=False),
    sa.Column('outcome', sa.String(length=2), nullable=False),
    sa.Column('client_id', sa.String(length=200), nullable=True),
    sa.Column('organisation', sa.String(length=200), nullable=True),
    sa.Column('address', sa.String(length=100), nullable=True),
    sa.Column('method', sa.String(length=10), nullable=False),
    sa.Column('path', sa.String(length=500), nullable=False),
    sa.Column('entity', sa.String(length=300), nullable=True),
    sa.Column('patient', sa.String(length=300), nullable=True),
    sa.Column('correlation', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_events_recorded'), ['recorded'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_organisation'), ['organisation'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_entity'), ['entity'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_patient'), ['patient'], unique=False)


def downgrade() -> None:
    op.drop_table('audit_events')
