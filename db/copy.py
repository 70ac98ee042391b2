"""COPY a Polars frame into a table: the one bulk-write path every module uses."""

from __future__ import annotations

import io

import polars as pl
import psycopg
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter

CHUNK_ROWS = 200_000


def csv_chunk(frame: pl.DataFrame) -> bytes:
    """``frame`` as headerless CSV bytes as PostgreSQL's COPY reads them (empty unquoted field = NULL)."""
    buffer = io.BytesIO()
    frame.write_csv(buffer, include_header=False, datetime_format="%Y-%m-%d %H:%M:%S%.f")
    return buffer.getvalue()


def copy_frame(connection: psycopg.Connection, table: str, frame: pl.DataFrame, chunk_rows: int = CHUNK_ROWS) -> None:
    """Stream ``frame`` into ``table`` (columns by name) with COPY ... FORMAT csv, in chunks."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, frame.columns))
    )
    with connection.cursor() as cursor:
        # The queued writer sends from a thread, so Polars renders the next chunk meanwhile; its
        # queue is bounded, and so is the memory.
        with cursor.copy(statement, writer=QueuedLibpqWriter(cursor)) as copy:
            for chunk in frame.iter_slices(chunk_rows):
                copy.write(csv_chunk(chunk))
