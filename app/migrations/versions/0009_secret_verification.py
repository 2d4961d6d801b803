"""Secret findings: the result of a live verification (verified / invalid / unknown), and when.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 03:00:00
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('secret_finding', schema=None) as batch_op:
        batch_op.add_column(sa.Column('verification', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('verification_detail', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('verified_at', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('secret_finding', schema=None) as batch_op:
        batch_op.drop_column('verified_at')
        batch_op.drop_column('verification_detail')
        batch_op.drop_column('verification')
