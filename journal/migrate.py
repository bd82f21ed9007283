"""Schema migrations of the journal, run through Alembic.

A journal older than this code is upgraded one revision at a time; a journal stamped with a
revision this code does not know was written by a newer bosun and is refused untouched.

Alembic is imported only when a journal is not at ``HEAD_REVISION``: importing it added
roughly 80 ms to every daemon start on the 2-core VM of docs/benchmarks.md, and a journal at
the head needs none of it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, text

import migrations
from journal.errors import SchemaTooNew

if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(migrations.__file__).resolve().parent

# The newest revision in migrations/versions. A new revision changes this constant too; a
# test compares it with the head Alembic finds in the scripts.
HEAD_REVISION = "0001"

# The table in which Alembic stamps a database's revision.
VERSION_TABLE = "alembic_version"


def alembic_config() -> Config:
    """Build an Alembic configuration that points at bosun's revisions."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """Return the newest schema revision among this code's migrations, as Alembic finds it."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, f"no revisions found in {MIGRATIONS_DIR}"
    return head


def current_revision(connection: Connection) -> str | None:
    """Return the journal's schema revision, or None for a database Alembic never stamped."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    # bosun's revisions form one line, so a stamped journal has exactly one row here.
    return connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def upgrade(connection: Connection, url: str) -> tuple[str | None, str]:
    """Bring the journal behind ``connection`` to the head revision.

    Returns the revisions before and after. Raises ``SchemaTooNew`` without touching anything
    when the journal carries a revision this code does not know.
    """
    found = current_revision(connection)
    if found == HEAD_REVISION:
        return found, HEAD_REVISION

    from alembic import command
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError

    config = alembic_config()
    script = ScriptDirectory.from_config(config)
    head = head_revision()
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
