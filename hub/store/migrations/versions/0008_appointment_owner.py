"""appointments.owner: the organisation that booked it (system|value), whose clients alone see it

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08 04:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('appointments') as batch:
        batch.add_column(sa.Column('owner', sa.String(length=200), nullable=True))
        batch.create_index(batch.f('ix_appointments_owner'), ['owner'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('appointments') as batch:
        batch.drop_index(batch.f('ix_appointments_owner'))
        batch.drop_column('owner')
