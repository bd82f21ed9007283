"""Schema migrations of the journal, run through Alembic.

A journal older than this code is upgraded one revision at a time; a journal stamped with a
revision this code does not know was written by a newer bosun and is refused untouched.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection

import migrations
from journal.errors import SchemaTooNew

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(migrations.__file__).resolve().parent


def alembic_config() -> Config:
    """Build an Alembic configuration that points at bosun's revisions."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """Return the newest schema revision among this code's migrations."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, f"no revisions found in {MIGRATIONS_DIR}"
    return head


def current_revision(connection: Connection) -> str | None:
    """Return the journal's schema revision, or None for an empty database."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(connection: Connection, url: str) -> tuple[str | None, str]:
    """Bring the journal behind ``connection`` to the head revision.

    Returns the revisions before and after. Raises ``SchemaTooNew`` without touching anything
    when the journal carries a revision this code does not know.
    """
    config = alembic_config()
    script = ScriptDirectory.from_config(config)
    head = head_revision()
    found = current_revision(connection)

    if found is not None:
        try:
            script.get_revision(found)
        except CommandError:
            raise SchemaTooNew(url, found, head) from None

    if found == head:
        return found, head

    logger.info("upgrading journal %s schema from %s to %s", url, found or "empty", head)
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
    return found, head
