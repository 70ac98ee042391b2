"""COPY a Polars frame into a table: the one bulk-write path every module uses."""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Iterable, Iterator

import polars as pl
import psycopg
from psycopg import sql

# Rows per CSV chunk sent, and chunks rendered ahead of the one being sent: the client holds at
# most (1 + CHUNKS_AHEAD) chunks of CSV at once (a chunk of documents is about 25 MB).
CHUNK_ROWS = 50_000
CHUNKS_AHEAD = 2


def csv_chunk(frame: pl.DataFrame) -> bytes:
    """``frame`` as headerless CSV bytes as PostgreSQL's COPY reads them (empty unquoted field = NULL)."""
    buffer = io.BytesIO()
    frame.write_csv(buffer, include_header=False, datetime_format="%Y-%m-%d %H:%M:%S%.f")
    return buffer.getvalue()


def copy_frame(connection: psycopg.Connection, table: str, frame: pl.DataFrame, chunk_rows: int = CHUNK_ROWS) -> None:
    """Stream ``frame`` into ``table`` (columns by name) with COPY ... FORMAT csv, in chunks."""
    copy_frames(connection, table, frame.columns, [frame], chunk_rows)


def copy_frames(
    connection: psycopg.Connection, table: str, columns: list[str], frames: Iterable[pl.DataFrame], chunk_rows: int = CHUNK_ROWS
) -> int:
    """Stream every frame of ``frames`` (each with ``columns``) into ``table`` in one COPY ...
    FORMAT csv; returns the rows sent. ``frames`` may be a generator that computes each frame
    when asked: the next frame is computed and rendered while the previous chunks are sent."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        for frame in frames:
            for chunk in frame.select(columns).iter_slices(chunk_rows):
                yield csv_chunk(chunk)
            sent += frame.height

    with connection.cursor() as cursor, cursor.copy(statement) as copy:
        _send_while_rendering(chunks(), copy.write)
    return sent


def _send_while_rendering(chunks: Iterator[bytes], send) -> None:
    """Call ``send`` on every chunk from a thread of its own while this one renders the next
    (Polars and the socket both release the GIL, so the two overlap), never more than
    ``CHUNKS_AHEAD`` rendered chunks waiting: the memory stays bounded however slow the server
    is. (psycopg's own queued writer bounds its queue in items, not bytes.) An error on either
    side stops both and is raised here."""
    waiting: queue.Queue[bytes | None] = queue.Queue(maxsize=CHUNKS_AHEAD)
    failed: list[BaseException] = []

    def sender() -> None:
        while (chunk := waiting.get()) is not None:
            if failed:
                continue  # drain, so the renderer never blocks on a full queue
            try:
                send(chunk)
            except BaseException as error:  # noqa: BLE001 - handed to the rendering thread
                failed.append(error)

    thread = threading.Thread(target=sender, name="copy-sender", daemon=True)
    thread.start()
    try:
        for chunk in chunks:
            if failed:
                break
            waiting.put(chunk)
    finally:
        waiting.put(None)
        thread.join()
    if failed:
        raise failed[0]
