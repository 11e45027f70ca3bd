"""auth_clients, auth_keys, auth_used_assertions: the hub's own token issuer

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08 03:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('auth_clients',
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('organisation', sa.String(length=200), nullable=False),
    sa.Column('scope', sa.Text(), nullable=False),
    sa.Column('secret_hash', sa.String(length=200), nullable=True),
    sa.Column('jwks', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('client_id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('auth_keys',
    sa.Column('kid', sa.String(length=64), nullable=False),
    sa.Column('private_pem', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('kid')
    )
    op.create_table('auth_used_assertions',
    sa.Column('jti', sa.String(length=200), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('jti')
    )
    with op.batch_alter_table('auth_used_assertions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_auth_used_assertions_expires_at'), ['expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('auth_used_assertions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_auth_used_assertions_expires_at'))
    op.drop_table('auth_used_assertions')
    op.drop_table('auth_keys')
    op.drop_table('auth_clients')
