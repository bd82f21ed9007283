"""The append-only, hash-chained event journal (the only package that imports SQLAlchemy)."""

from journal.errors import InvalidEvent, JournalError, JournalUnavailable, SchemaTooNew, VersionConflict
from journal.store import (
    EventStore,
    NewEvent,
    Snapshot,
    StoredEvent,
    VerifyResult,
    canonical_json,
    chain_hash,
    format_time,
    parse_time,
    utc_now,
)

__all__ = [
    "EventStore",
    "InvalidEvent",
    "JournalError",
    "JournalUnavailable",
    "NewEvent",
    "SchemaTooNew",
    "Snapshot",
    "StoredEvent",
    "VerifyResult",
    "VersionConflict",
    "canonical_json",
    "chain_hash",
    "format_time",
    "parse_time",
    "utc_now",
]
