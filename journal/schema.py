"""Tables of the journal.

The schema itself is owned by the Alembic revisions in ``migrations/``; these ``Table`` objects
describe the same columns for queries and must change together with a new revision.
"""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table, Text, UniqueConstraint, Index

metadata = MetaData()

events = Table(
    "events",
    metadata,
    # The global order. AUTOINCREMENT on SQLite so a seq is never reused, even after the
    # last row is removed by someone with the trigger dropped.
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("stream", String(255), nullable=False),
    Column("version", Integer, nullable=False),
    Column("type", String(64), nullable=False),
    Column("data", Text, nullable=False),  # canonical JSON
    # ISO 8601 UTC with microseconds, stored as text so the hashed form is exactly what is read.
    Column("recorded_at", String(32), nullable=False),
    Column("command_id", String(64), nullable=True),
    Column("host", String(255), nullable=False),
    Column("hash", String(64), nullable=False),
    UniqueConstraint("stream", "version", name="uq_events_stream_version"),
    sqlite_autoincrement=True,
)
Index("ix_events_command_id", events.c.command_id)

snapshots = Table(
    "snapshots",
    metadata,
    Column("stream", String(255), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("last_seq", Integer, nullable=False),
    Column("state", Text, nullable=False),  # JSON of the folded state at that version
    Column("schema", Integer, nullable=False),  # the fold's snapshot format; others are ignored
    Column("taken_at", String(32), nullable=False),
)
