"""Create what the recompute needs, or say what is missing without creating anything.

Three ways in, one per kind of command (``flows.config.opened_database`` picks one):

* ``prepare``: the platform's tables where missing, then the project's migrations. Only for a
  database the project fills itself: ``db upgrade``, ``demo-data``, ``demo``, the tests.
* ``prepare_for_writes``: the platform's tables must already be there (the project never makes
  up the platform's schema on the platform's database); the project's own ``mlm_`` tables are
  migrated on first use.
* ``require_ready``: read-only commands create nothing; a database without the platform's
  tables or the project's current migrations is refused with one line naming the fix.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from db import schema

_MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "mlm_alembic_version"  # as db/migrations/env.py names it

# The platform's tables the recompute reads (users, purchases, bonuses) or writes (users,
# rank_history, monthly_stats); the platform's other tables are never touched, so they are not required.
RECOMPUTE_TABLES = ("users", "purchases", "bonuses", "rank_history", "monthly_stats")


class SchemaNotReady(RuntimeError):
    """The database lacks the platform's tables or the project's migrations; the message says
    which, and the command that sets them up. Nothing was created."""


def ensure_platform_tables(engine: sa.Engine) -> None:
    """Create the platform's tables that do not exist yet; an existing table is left exactly as it is."""
    schema.metadata.create_all(engine, tables=list(schema.PLATFORM_TABLES), checkfirst=True)


def _alembic_config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Bring the project's own tables to ``revision`` (Alembic), in one transaction."""
    with engine.begin() as connection:
        command.upgrade(_alembic_config(connection), revision)


def current_revision(engine: sa.Engine) -> str | None:
    """The project's migration the database is at (None: never migrated); reads, creates nothing."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def head_revision() -> str:
    """The newest migration this version of the project ships."""
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def missing_platform_tables(engine: sa.Engine) -> list[str]:
    """The tables of ``RECOMPUTE_TABLES`` the database lacks, resolved as every statement
    resolves them (``to_regclass`` follows the search path)."""
    with engine.connect() as connection:
        present = set(
            connection.execute(
                sa.text("SELECT name FROM unnest(CAST(:names AS text[])) AS name WHERE to_regclass(quote_ident(name)) IS NOT NULL"),
                {"names": list(RECOMPUTE_TABLES)},
            ).scalars()
        )
    return [name for name in RECOMPUTE_TABLES if name not in present]


def _database_name(engine: sa.Engine) -> str:
    return engine.url.database or "?"


def require_platform_tables(engine: sa.Engine) -> None:
    """Refuse (SchemaNotReady) a database that lacks the platform's tables the recompute uses."""
    missing = missing_platform_tables(engine)
    if missing:
        raise SchemaNotReady(
            f"database {_database_name(engine)} has no platform table {', '.join(missing)}, so it is not the platform's "
            "database (check MLM_DATABASE_URL); to set up an empty one, run mlm-recompute demo-data (a demo platform) "
            "or mlm-recompute db upgrade (empty platform tables). Nothing was created"
        )


def require_ready(engine: sa.Engine) -> None:
    """Refuse (SchemaNotReady) a database a read-only command cannot read as it is: the platform's
    tables missing, or the project's ``mlm_`` tables not migrated to this version's head."""
    require_platform_tables(engine)
    current, head = current_revision(engine), head_revision()
    if current != head:
        state = "has no mlm_ tables" if current is None else f"has its mlm_ tables at migration {current}, this version needs {head}"
        raise SchemaNotReady(
            f"database {_database_name(engine)} {state}; run mlm-recompute db upgrade first "
            "(read-only commands create nothing)"
        )


def prepare_for_writes(engine: sa.Engine) -> None:
    """What a writing run needs: the platform's tables present (never created here), then the
    project's own tables migrated (on first use they are created)."""
    require_platform_tables(engine)
    upgrade(engine)


def prepare(engine: sa.Engine) -> None:
    """Everything a run needs on a database the project fills itself: platform tables where
    missing, then the migrations."""
    ensure_platform_tables(engine)
    upgrade(engine)
