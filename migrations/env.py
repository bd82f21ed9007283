"""Alembic environment for the bosun journal.

bosun runs migrations itself (``journal.migrate``), handing over an open connection in
``config.attributes["connection"]``; the ``alembic`` command line works too, given
``-x url=...`` or ``sqlalchemy.url`` in ``alembic.ini``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from journal.schema import metadata

config = context.config


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()
        return

    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("no journal URL: pass -x url=sqlite:////path/journal.db")
    engine = create_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()


run_migrations()
