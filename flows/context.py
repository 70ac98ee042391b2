"""The database a command or flow works on, chosen from the settings in one place."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

from db import migrate
from db.connection import open_database, server_uri
from flows.config import Settings


Access = Literal["read", "write", "create"]


@contextlib.contextmanager
def opened_database(settings: Settings, access: Access, *, quiet: bool = False) -> Iterator:
    """The configured server (or the embedded one), checked or prepared for ``access``:

    * ``read`` (audit, dry runs, runs, show): nothing is created; a database without the
      platform's tables or the project's current migrations raises ``SchemaNotReady``;
    * ``write`` (run, close, backfill, reopen): the platform's tables must be there (else
      ``SchemaNotReady``), the project's ``mlm_`` tables are migrated (created on first use);
    * ``create`` (db upgrade, demo-data, demo): the platform's tables where missing, then the
      migrations, for a database the project fills itself.
    """
    check = {"read": migrate.require_ready, "write": migrate.prepare_for_writes, "create": migrate.prepare}[access]
    with server_uri(settings.database_url_value(), settings.data_dir, quiet=quiet) as uri:
        db = open_database(uri)
        try:
            check(db.engine)
            yield db
        finally:
            db.engine.dispose()
