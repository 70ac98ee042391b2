"""Heap halves: two ``ctid`` conditions that, scanned on two connections, read every row of a
table exactly once."""

from __future__ import annotations

import adbc_driver_postgresql.dbapi as adbc

from db.extract import heap_halves


def _halves_and_counts(db, rows: int):
    with adbc.connect(db.uri) as connection, connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE wide (id int, padding text)")
        cursor.execute(f"INSERT INTO wide SELECT i, repeat('x', 200) FROM generate_series(1, {rows}) AS i")
        halves = heap_halves(cursor, "wide")
        if halves is None:
            return None, None
        counts = []
        for condition in halves:
            cursor.execute(f"SELECT count(*), count(DISTINCT id) FROM wide WHERE {condition}")
            counts.append(cursor.fetchone())
        cursor.execute(f"SELECT count(*) FROM wide WHERE ({halves[0]}) AND ({halves[1]})")
        overlap = cursor.fetchone()[0]
        return halves, (counts, overlap)


def test_two_halves_read_every_row_once(db):
    halves, (counts, overlap) = _halves_and_counts(db, 20_000)
    assert halves is not None
    (first, first_distinct), (second, second_distinct) = counts
    assert first + second == 20_000 and overlap == 0
    assert first == first_distinct and second == second_distinct
    assert min(first, second) > 8_000  # halves by page: about as many rows each


def test_a_table_of_one_page_is_not_split(db):
    halves, _ = _halves_and_counts(db, 3)
    assert halves is None
