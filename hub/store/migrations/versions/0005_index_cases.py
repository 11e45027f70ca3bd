"""index_cases, index_meetings: the cases the hub keeps in the case index (SF1470) and their meetings

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 12:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('index_cases',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=False),
    sa.Column('state', sa.JSON(), nullable=False),
    sa.Column('removed', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('key'),
    sa.UniqueConstraint('uuid')
    )
    op.create_table('index_meetings',
    sa.Column('appointment_id', sa.String(length=64), nullable=False),
    sa.Column('case_key', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['case_key'], ['index_cases.key'], ),
    sa.PrimaryKeyConstraint('appointment_id')
    )
    with op.batch_alter_table('index_meetings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_index_meetings_case_key'), ['case_key'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('index_meetings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_index_meetings_case_key'))
    op.drop_table('index_meetings')
    op.drop_table('index_cases')
