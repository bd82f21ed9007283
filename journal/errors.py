"""Errors raised by the journal.

Only ``journal/`` catches SQLAlchemy and driver exceptions; everything above receives these.
"""

from __future__ import annotations


class JournalError(Exception):
    """Base class of every journal error."""


class VersionConflict(JournalError):
    """Raised when an append names a stream version that is no longer the stream's last.

    Nothing of the batch was written.
    """

    def __init__(self, stream: str, expected: int, actual: int) -> None:
        self.stream = stream
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"version conflict on stream {stream}: expected version {expected}, "
            f"stream is at version {actual}"
        )


class SchemaTooNew(JournalError):
    """Raised when the journal was migrated by a newer bosun than this one; nothing was touched."""

    def __init__(self, url: str, found: str, known_head: str) -> None:
        self.found = found
        self.known_head = known_head
        super().__init__(
            f"journal {url} has schema revision {found}, which this bosun does not know "
            f"(its newest revision is {known_head}); upgrade bosun, or open a backup taken "
            f"before the newer version ran"
        )


class JournalUnavailable(JournalError):
    """Raised when the database cannot be opened, read or written (locked, full, read-only, corrupt)."""

    def __init__(self, url: str, action: str, cause: str) -> None:
        self.url = url
        self.action = action
        self.cause = cause
        super().__init__(f"{action} journal {url}: {cause}")


class InvalidEvent(JournalError):
    """Raised when an event cannot be stored (not JSON-serialisable, empty type, bad stream name)."""
