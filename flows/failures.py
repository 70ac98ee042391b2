"""Expected failures of the command line told in one line: the database that cannot be reached.

A wrong host, port, password, role, database or URL scheme is an operator's setting, not a bug:
the command says which server it tried (host, port, database and user, never the password) and
what the driver answered, and exits with ``EXIT_DATABASE``. ``--debug`` or ``MLM_DEBUG=1``
shows the traceback instead.

Also which database errors are transient (``is_transient``: worth another attempt), for psycopg
and ADBC alike, and the note a run's error carries when the ledger could not record it.
"""

from __future__ import annotations

import re

import adbc_driver_manager
import psycopg
import psycopg.errors
import sqlalchemy.exc
from adbc_driver_manager import OperationalError as AdbcOperationalError
from sqlalchemy.engine import make_url

EXIT_DATABASE = 5

_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")


class DatabaseSettingError(ValueError):
    """``MLM_DATABASE_URL`` is not a PostgreSQL URL."""


def check_database_url(url: str | None) -> None:
    """Refuse a URL that is not PostgreSQL's before anything tries to connect with it."""
    if url is None:
        return
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in _SCHEMES:
        raise DatabaseSettingError(f"MLM_DATABASE_URL must be a postgresql:// URL, got one with scheme {scheme or '(none)'!r}")


def server_label(url: str | None, data_dir) -> str:
    """Which server a command works on, without the password."""
    if url is None:
        return f"the embedded server in {data_dir}"
    try:
        parsed = make_url(url)
    except sqlalchemy.exc.ArgumentError:
        return "the server of MLM_DATABASE_URL (not a URL)"
    where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
    return f"{where}, database {parsed.database or '(default)'} as {parsed.username or '(default user)'}"


def is_database_failure(error: BaseException) -> bool:
    """Whether ``error`` is the database being unreachable or refusing the connection."""
    if isinstance(error, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
        return True
    return isinstance(error, psycopg.OperationalError | psycopg.InterfaceError | AdbcOperationalError)


def is_transient(error: BaseException) -> bool:
    """Whether another attempt may not meet ``error``: a dropped or refused connection, a server
    shutting down, a serialization failure or deadlock, a cancelled statement.

    psycopg says so by class (``OperationalError``, ``TransactionRollback`` among them). ADBC
    (the extract) raises its own classes, whose ``OperationalError`` also covers errors no retry
    fixes, so its errors are classified by their SQLSTATE as psycopg classifies that SQLSTATE;
    one without a SQLSTATE failed beneath SQL (libpq lost or never had the connection), which
    ADBC reports as an ``OperationalError`` (I/O, timeout).
    """
    cause = error.orig if isinstance(error, sqlalchemy.exc.DBAPIError) and error.orig is not None else error
    if isinstance(cause, psycopg.OperationalError | ConnectionError):
        return True
    if isinstance(cause, adbc_driver_manager.Error):
        if cause.sqlstate:
            return issubclass(_psycopg_class(cause.sqlstate), psycopg.OperationalError)
        return isinstance(cause, AdbcOperationalError)
    return False


def _psycopg_class(sqlstate: str) -> type[psycopg.Error]:
    """The psycopg exception class of ``sqlstate`` (by its class of codes when not listed)."""
    try:
        return psycopg.errors.lookup(sqlstate)
    except KeyError:
        return psycopg.errors.get_base_exception(sqlstate)


LEDGER_NOT_UPDATED = "the runs ledger could not be updated either"


def note_ledger_not_updated(error: BaseException, ledger_error: BaseException) -> None:
    """Note on a run's own ``error`` that recording it in the ledger failed too (typically the
    same server going away): the run's error stays the one raised and reported."""
    error.add_note(f"{LEDGER_NOT_UPDATED}: {_first_line(ledger_error)}")


def _first_line(error: BaseException) -> str:
    cause = error.orig if isinstance(error, sqlalchemy.exc.DBAPIError) and error.orig is not None else error
    return next((line.strip() for line in str(cause).splitlines() if line.strip()), type(cause).__name__)


def database_failure_line(error: BaseException, url: str | None, data_dir) -> str:
    """The one line to print: the server tried and the first line of what failed (and whether
    the ledger could not record it), scrubbed of any password the driver's message might echo."""
    first = _first_line(error)
    first += "".join(f" ({note})" for note in getattr(error, "__notes__", ()) if note.startswith(LEDGER_NOT_UPDATED))
    try:
        password = make_url(url).password if url else None
    except sqlalchemy.exc.ArgumentError:
        password = None
    if password:
        first = first.replace(str(password), "***")
    first = re.sub(r"password=\S+", "password=***", first)
    return f"mlm-recompute: database error ({server_label(url, data_dir)}): {first}"
