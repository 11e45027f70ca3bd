"""encounter_events.parties: the organisations the event's message came from or went to (routing keys)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08 05:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('encounter_events') as batch:
        batch.add_column(sa.Column('parties', sa.String(length=1000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('encounter_events') as batch:
        batch.drop_column('parties')
