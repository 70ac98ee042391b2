"""The one bulk-write path: frames COPYed in one statement, chunks sent while the next renders,
never more than a few rendered ahead, and a failure on either side raised, not hung on."""

from __future__ import annotations

import threading

import polars as pl
import pytest

from db import copy as bulk


def test_frames_from_a_generator_arrive_whole_in_one_copy(db):
    frames = (pl.DataFrame({"id": range(start, start + 7), "note": [f"n,{i}\"q" for i in range(7)]}) for start in (0, 7, 14))
    with db.connect_raw() as connection:
        connection.execute("CREATE TEMP TABLE t (id integer, note text)")
        sent = bulk.copy_frames(connection, "t", ["id", "note"], frames, chunk_rows=3)
        rows = connection.execute("SELECT id, note FROM t ORDER BY id").fetchall()
    assert sent == 21
    assert rows == [(i, f'n,{i % 7}"q') for i in range(21)]


def test_rendering_stays_at_most_a_few_chunks_ahead_of_a_slow_server():
    release, rendered, sent = threading.Event(), [], []

    def chunks():
        for i in range(20):
            rendered.append(i)
            yield bytes([i])

    def slow_send(chunk):
        release.wait()
        sent.append(chunk)

    worker = threading.Thread(target=bulk._send_while_rendering, args=(chunks(), slow_send))
    worker.start()
    worker.join(timeout=1)  # the renderer is blocked on the full queue, not finished
    assert worker.is_alive()
    # one chunk in the sender's hands, CHUNKS_AHEAD queued, one rendered and waiting to be queued
    assert len(rendered) <= bulk.CHUNKS_AHEAD + 2
    release.set()
    worker.join()
    assert sent == [bytes([i]) for i in range(20)]


def test_a_failed_send_stops_the_rendering_and_is_raised():
    rendered = []

    def chunks():
        for i in range(1_000):
            rendered.append(i)
            yield b"x"

    def send(chunk):
        raise ConnectionError("server closed the connection")

    with pytest.raises(ConnectionError, match="server closed"):
        bulk._send_while_rendering(chunks(), send)
    assert len(rendered) < 1_000


def test_a_failed_render_aborts_the_copy_and_stores_nothing(db):
    def frames():
        yield pl.DataFrame({"id": [1, 2]})
        raise ValueError("compute failed")

    with db.connect_raw() as connection:
        connection.execute("CREATE TABLE t (id integer)")
        connection.commit()
        with pytest.raises(ValueError, match="compute failed"):
            bulk.copy_frames(connection, "t", ["id"], frames())
        connection.rollback()
        assert connection.execute("SELECT count(*) FROM t").fetchone() == (0,)
