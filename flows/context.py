"""The database a command or flow works on, chosen from the settings in one place."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from db import migrate
from db.connection import Database, open_database, server_uri
from flows.config import Settings


@contextlib.contextmanager
def configured_database(settings: Settings, *, quiet: bool = False) -> Iterator[Database]:
    """The configured server (or the embedded one), its schema brought up to date."""
    with server_uri(settings.database_url, settings.data_dir, quiet=quiet) as uri:
        db = open_database(uri)
        try:
            migrate.prepare(db.engine)
            yield db
        finally:
            db.engine.dispose()
