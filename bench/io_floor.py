"""The input/output floor: moving the project's inputs out and its documents in, computing nothing.

* ``copy_out_inputs``: the extract's own queries, each as ``COPY (query) TO STDOUT (FORMAT
  binary)``, the bytes read and thrown away. The queries are the ones ``db.extract.inputs``
  actually sends (recorded from an untimed run of it, so the floor follows the extract whatever
  SQL it uses), replayed in the same order with the same session settings, on as many
  connections as the extract reads on (two), at the same time, as the extract does.
  Binary, because the extract's ADBC driver reads results through the same binary COPY. The
  queries' own work in PostgreSQL (grouping purchases per user and month) is part of the floor:
  it is what the extract asks the server for. What the extract does on the client (Arrow to
  Polars, joins) is not.
* ``copy_in_documents``: the documents the project computed, COPYed into a staging table of the
  write path's shape by ``db.load.stage_documents`` itself, in a transaction that is rolled back.

Their sum is the least any recompute that reads these inputs and writes these documents through
this client could take; the project's total divided by it is its overhead.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import polars as pl
from psycopg import sql

from db import extract, load
from db.connection import Database

FLOOR_STAGING = "mlm_floor_staging"


@dataclass(frozen=True)
class CopiedOut:
    """Seconds for the extract's queries COPYed out, how many queries, and the bytes received."""

    seconds: float
    queries: int
    bytes: int


class RecordingCursor:
    """An ADBC cursor that notes every statement it is given (text and parameters) and runs it."""

    def __init__(self, cursor):
        self._cursor = cursor
        self.statements: list[tuple[str, tuple]] = []

    def execute(self, operation, parameters=None, **kwargs):
        self.statements.append((operation, tuple(parameters or ())))
        return self._cursor.execute(operation, parameters, **kwargs)

    def __getattr__(self, name):
        return getattr(self._cursor, name)


def extract_statements(db: Database, as_of: datetime, pioneer_min_purchase_cents: int) -> list[list[tuple[str, tuple]]]:
    """The statements ``db.extract.inputs`` sends for this cut-off, in order, one list per
    connection it reads on (it runs once, read-only: nothing is memoized)."""
    recorded: list[RecordingCursor] = []
    real_snapshot = extract.snapshot

    @contextlib.contextmanager
    def recording_snapshot(*args, **kwargs):
        with real_snapshot(*args, **kwargs) as cursor:
            recorded.append(RecordingCursor(cursor))
            yield recorded[-1]

    extract.snapshot = recording_snapshot  # inputs() looks the snapshot up at call time
    try:
        extract.inputs(db, as_of, pioneer_min_purchase_cents)
    finally:
        extract.snapshot = real_snapshot
    return [cursor.statements for cursor in recorded]


def inline(query: str, parameters: tuple) -> sql.Composed:
    """``query`` with its ``$n`` placeholders replaced by literals (COPY takes no bind parameters)."""
    parts = re.split(r"\$(\d+)", query)
    pieces = [sql.SQL(part) if i % 2 == 0 else sql.Literal(parameters[int(part) - 1]) for i, part in enumerate(parts)]
    return sql.Composed(pieces)


def is_query(statement: str) -> bool:
    return re.match(r"\s*(SELECT|WITH)\b", statement, re.IGNORECASE) is not None


def _copy_out(db: Database, statements: list[tuple[str, tuple]]) -> tuple[int, int]:
    """COPY one connection's queries out, in one transaction; bytes received and queries."""
    received = queries = 0
    with db.connect_raw() as connection, connection.cursor() as cursor:
        for statement, parameters in statements:
            if "pg_export_snapshot" in statement:
                continue  # the extract's way of sharing its snapshot, not an input
            if is_query(statement):
                copy_statement = sql.SQL("COPY ({}) TO STDOUT (FORMAT binary)").format(inline(statement.strip(), parameters))
                with cursor.copy(copy_statement) as copy:
                    for block in copy:
                        received += len(block)
                queries += 1
            elif re.match(r"\s*SET\b", statement, re.IGNORECASE):
                cursor.execute(statement)
        connection.rollback()
    return received, queries


def copy_out_inputs(db: Database, as_of: datetime, pioneer_min_purchase_cents: int) -> CopiedOut:
    """COPY the extract's queries out, each connection's on a connection of its own, all at
    once, as the extract reads them; its SET statements are replayed as they are, anything
    else it sent (there is nothing else on a read-only extract) is left out."""
    per_connection = extract_statements(db, as_of, pioneer_min_purchase_cents)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(per_connection)) as pool:
        results = list(pool.map(lambda statements: _copy_out(db, statements), per_connection))
    seconds = time.perf_counter() - started
    return CopiedOut(seconds=seconds, queries=sum(q for _, q in results), bytes=sum(b for b, _ in results))


def copy_in_documents(db: Database, batches: Iterable[pl.DataFrame]) -> float:
    """Seconds to COPY the documents in ``batches`` (``[Recomputed.documents]``, or its batches
    already made: on a first run, what the project writes) into a staging table (``stage_documents``: the table's creation, the COPY and its
    ANALYZE), rolled back afterwards."""
    with db.connect_raw() as connection:
        started = time.perf_counter()
        load.stage_documents(connection, batches, FLOOR_STAGING)
        seconds = time.perf_counter() - started
        connection.rollback()
    return seconds
