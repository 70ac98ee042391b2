"""Create what the recompute needs: the platform's tables where missing, then the project's own."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from db import schema

_MIGRATIONS = Path(__file__).parent / "migrations"


def ensure_platform_tables(engine: sa.Engine) -> None:
    """Create the platform's tables that do not exist yet; an existing table is left exactly as it is."""
    schema.metadata.create_all(engine, tables=list(schema.PLATFORM_TABLES), checkfirst=True)


def _alembic_config(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Bring the project's own tables to ``revision`` (Alembic), in one transaction."""
    with engine.begin() as connection:
        command.upgrade(_alembic_config(connection), revision)


def current_revision(engine: sa.Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": "mlm_alembic_version"})
        return context.get_current_revision()


def prepare(engine: sa.Engine) -> None:
    """Everything a run needs: platform tables where missing, then the migrations."""
    ensure_platform_tables(engine)
    upgrade(engine)
