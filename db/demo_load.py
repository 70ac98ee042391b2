"""Load the demo platform's frames into the platform's tables: COPY, one transaction, empty tables only.

Used by ``db.demo`` (``load_demo``, ``generate_and_load``): the loader takes the frames as the
generator makes them, on a thread of its own, so on 2 cores PostgreSQL ingests one table while
the generator builds the next. What a bulk load defers (the plain indexes, the foreign keys'
checks) is restored exactly, inside the same transaction; the tables may be the project's
(``db.migrate.prepare``) or the platform's own (the same, column for column).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator

import polars as pl
import psycopg
from psycopg import sql

from db.connection import Database
from db.copy import copy_frame

# At most this many rows per CSV chunk fed to COPY (see COPY_CHUNK_BYTES).
COPY_CHUNK_ROWS = 1_000_000
# Bytes of CSV per COPY chunk: bounds the client's memory (the queue holds a few chunks).
COPY_CHUNK_BYTES = 64 * 2**20

DEMO_TABLES = ("projects", "options", "users", "purchases", "bonuses")
# The big tables, whose plain indexes are built after the load.
BULK_TABLES = ("users", "purchases", "bonuses")


class DemoLoader:
    """One loading transaction on a thread of its own: each frame handed to ``load`` is COPYed
    while the caller generates the next (on 2 cores, the generator and PostgreSQL work at once).
    Committed when the block ends cleanly, rolled back otherwise.

    Entering waits until the tables are locked and found empty, so a refusal (ValueError)
    comes before anything is generated; a failure of the load is raised by the next ``load``
    or at the block's end.
    """

    _DONE, _ABORT = object(), object()

    def __init__(self, db: Database):
        self._db = db
        self._frames: queue.SimpleQueue = queue.SimpleQueue()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="demo-loader", daemon=True)

    def __enter__(self) -> "DemoLoader":
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def load(self, table: str, frame: pl.DataFrame) -> None:
        """COPY ``frame`` (exactly ``table``'s columns) into ``table``, after the frames handed over before it."""
        if self._error is not None:
            raise self._error
        self._frames.put((table, frame))

    def __exit__(self, kind, error, trace) -> None:
        self._frames.put(self._DONE if error is None else self._ABORT)
        self._thread.join()
        if error is None and self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            with self._db.connect_raw(autocommit=True, options="-c timezone=UTC") as conn:
                with conn.transaction():
                    load_tables(conn, self._ready.set, self._next_frames())
        except BaseException as error:  # handed to the caller's thread
            self._error = error
        finally:
            self._ready.set()

    def _next_frames(self) -> Iterator[tuple[str, pl.DataFrame]]:
        """The frames handed over, in order, until the block ends (an aborted block raises, to roll back)."""
        while (item := self._frames.get()) is not self._DONE:
            if item is self._ABORT:
                raise RuntimeError("the demo's generation failed: nothing is loaded")
            yield item


def load_tables(conn: psycopg.Connection, ready: Callable[[], None], frames: Iterator[tuple[str, pl.DataFrame]]) -> None:
    """Inside the caller's transaction: check the demo tables are empty, call ``ready``, COPY ``frames`` in, then
    rebuild what the load deferred (indexes, foreign keys), move the id sequences and refresh the statistics."""
    # Nobody may add rows between the emptiness check and the load (and the index and
    # constraint swap below needs this lock anyway).
    conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(identifiers(DEMO_TABLES)))
    refuse_non_empty(conn)
    # The usual bulk-load practice: fill the tables, then build their plain indexes once.
    # At 10M purchases, maintaining an index row by row took ~40 s (rows arrive in time
    # order, so it is written at random), building it after ~10 s. The definitions are
    # restored exactly, inside the same transaction.
    indexes = [index for table in BULK_TABLES for index in plain_indexes(conn, table)]
    for name, _ in indexes:
        conn.execute(sql.SQL("DROP INDEX {}").format(name))
    with foreign_keys_checked_once(conn):
        ready()
        for table, frame in frames:
            copy_frame(conn, table, frame, chunk_rows(frame))
        # Sort the index keys in memory: at 10M rows, 256MB spilled to disk and took twice as long.
        conn.execute("SET LOCAL maintenance_work_mem = '1GB'")
        for _, definition in indexes:
            conn.execute(definition)
    for table, column in SERIAL_COLUMNS:
        bump_sequence(conn, table, column)
    # Fresh statistics, so the first recompute's queries are planned for the real sizes.
    # Inside the loading transaction: its sample reads rows this transaction wrote, which
    # sets no hint bits, so no page is rewritten (with data checksums on, as PostgreSQL
    # 18 has by default, a hint bit logs the whole page: after the commit, ANALYZE of the
    # three tables took 2.5x as long).
    conn.execute(sql.SQL("ANALYZE {}").format(identifiers(BULK_TABLES)))


SERIAL_COLUMNS = (("projects", "id"), ("options", "optionID"), ("users", "userID"), ("purchases", "purchaseID"), ("bonuses", "bonusID"))


def chunk_rows(frame: pl.DataFrame) -> int:
    """Rows per COPY chunk for ``frame``: about COPY_CHUNK_BYTES of CSV (a users row, with its documents, is ~10x a purchase)."""
    row_bytes = frame.estimated_size() / max(1, frame.height)
    return max(1_000, min(COPY_CHUNK_ROWS, int(COPY_CHUNK_BYTES / max(1.0, row_bytes))))


@contextlib.contextmanager
def foreign_keys_checked_once(conn: psycopg.Connection) -> Iterator[None]:
    """Inside the loading transaction: the demo tables' foreign keys are not checked row by row while the block loads.

    Where the role may set ``session_replication_role`` (a superuser, as the embedded and test
    servers have, or one granted it), the checks' triggers are off for the transaction: the
    generator makes every reference valid by construction (tests/db/test_demo.py reads them
    back), and at 10M purchases the row-by-row checks, or checking them again after the load
    (one join per key), cost ~30 s. Elsewhere each foreign key is dropped and, after the
    block, added again under its own name, which checks it once, set-based.
    """
    if replication_role_set(conn):
        yield
        return
    keys = [key for table in DEMO_TABLES for key in foreign_key_constraints(conn, table)]
    for table, name, _ in keys:
        conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(table, name))
    yield
    conn.execute("SET LOCAL work_mem = '256MB'")  # each check is a hash join: keep it in memory
    for table, name, definition in keys:
        conn.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} ").format(table, name) + sql.SQL(definition))


def replication_role_set(conn: psycopg.Connection) -> bool:
    """Whether ``session_replication_role`` is now ``replica`` for the current transaction (false: the role may not)."""
    try:
        with conn.transaction():  # a savepoint: a refusal leaves the loading transaction usable
            conn.execute("SET LOCAL session_replication_role = replica")
    except psycopg.errors.InsufficientPrivilege:
        return False
    return True


def identifiers(names: tuple[str, ...]) -> sql.Composed:
    """Table names as a comma-separated list of quoted identifiers."""
    return sql.SQL(", ").join(map(sql.Identifier, names))


def plain_indexes(conn: psycopg.Connection, table: str) -> list[tuple[sql.Identifier, str]]:
    """The table's non-unique indexes that back no constraint: (qualified name, CREATE INDEX statement) each."""
    rows = conn.execute(
        """
        SELECT n.nspname, i.relname, pg_get_indexdef(i.oid)
        FROM pg_index x
        JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_namespace n ON n.oid = i.relnamespace
        WHERE x.indrelid = %s::regclass
          AND NOT x.indisunique
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
        ORDER BY i.relname
        """,
        (table,),
    ).fetchall()
    return [(sql.Identifier(schema, name), definition) for schema, name, definition in rows]


def foreign_key_constraints(conn: psycopg.Connection, table: str) -> list[tuple[sql.Identifier, sql.Identifier, str]]:
    """The table's foreign keys: (qualified table, constraint name, its definition as ALTER TABLE ADD takes it) each."""
    rows = conn.execute(
        """
        SELECT n.nspname, t.relname, c.conname, pg_get_constraintdef(c.oid)
        FROM pg_constraint c
        JOIN pg_class t ON t.oid = c.conrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        WHERE c.conrelid = %s::regclass AND c.contype = 'f'
        ORDER BY c.conname
        """,
        (table,),
    ).fetchall()
    return [(sql.Identifier(schema, name), sql.Identifier(constraint), definition) for schema, name, constraint, definition in rows]


def refuse_non_empty(conn: psycopg.Connection) -> None:
    """Raise ValueError when a demo table already holds rows: the demo never mixes with data."""
    for table in DEMO_TABLES:
        query = sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(table))
        if conn.execute(query).fetchone()[0]:
            raise ValueError(
                f"refusing to load demo data: table {table!r} already has rows; "
                "load the demo only into an empty database"
            )


def bump_sequence(conn: psycopg.Connection, table: str, column: str) -> None:
    """Move ``table.column``'s id sequence (if it has one) past the loaded ids, so later inserts do not collide."""
    sequence = conn.execute("SELECT pg_get_serial_sequence(%s, %s)", (table, column)).fetchone()[0]
    if sequence is None:
        return
    top = conn.execute(
        sql.SQL("SELECT max({}) FROM {}").format(sql.Identifier(column), sql.Identifier(table))
    ).fetchone()[0]
    if top is not None:
        conn.execute("SELECT setval(%s, %s)", (sequence, top))
