"""Scan chunks: slices of a big scan stage that several workers run in parallel.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 00:40:00
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'scan_chunk',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('job_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('stage', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column('index', sa.Integer(), nullable=False),
        sa.Column('digest', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('payload', sa.JSON(), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column('runner', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('result', sa.JSON(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('heartbeat_at', sa.DateTime(), nullable=True),
        sa.Column('finished_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('job_id', 'stage', 'index', name='uq_scan_chunk_job_stage_index'),
    )
    with op.batch_alter_table('scan_chunk', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_scan_chunk_job_id'), ['job_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('scan_chunk', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_scan_chunk_job_id'))
    op.drop_table('scan_chunk')
