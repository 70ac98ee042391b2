"""db.periods.snapshot_difference, the report a refused close gives: how many users differ, per
column, and the first five as examples, between a stored final snapshot and a new computation.
Pure frames, hand-derived."""

from __future__ import annotations

import polars as pl

from db.periods import SNAPSHOT_VALUES, snapshot_difference

SCHEMA = {"user_id": pl.Int64, **{c: pl.String for c in SNAPSHOT_VALUES}}


def _snapshot(rows: dict[int, dict[str, str]]) -> pl.DataFrame:
    """Snapshot rows as text, every value "0" unless given."""
    return pl.DataFrame(
        [{"user_id": user_id, **{c: "0" for c in SNAPSHOT_VALUES}, **values} for user_id, values in rows.items()], schema=SCHEMA
    )


def test_equal_snapshots_differ_nowhere():
    same = _snapshot({1: {"rank": "growth"}, 2: {}})
    assert snapshot_difference(same, same) == {"users_differing": 0, "by_column": {}, "examples": []}


def test_users_changed_gone_and_new_are_counted_per_column_with_examples():
    stored = _snapshot({1: {}, 2: {"rank": "start", "full_volume": "10.00"}, 3: {}})
    computed = _snapshot({1: {}, 2: {"rank": "builder", "full_volume": "12.50"}, 4: {}})
    # 2 changed in two columns; 3 is gone from the computation; 4 is new in it
    report = snapshot_difference(stored, computed)
    assert report["users_differing"] == 3
    assert report["by_column"] == {c: (3 if c in ("full_volume", "rank") else 2) for c in SNAPSHOT_VALUES}
    # the examples come in no particular order; each lists its columns in snapshot order
    assert sorted(report["examples"]) == [
        "user 2: full_volume 10.00 -> 12.50, rank start -> builder",
        "user 3: " + ", ".join(f"{c} 0 -> None" for c in SNAPSHOT_VALUES),
        "user 4: " + ", ".join(f"{c} None -> 0" for c in SNAPSHOT_VALUES),
    ]


def test_at_most_five_users_are_shown():
    stored = _snapshot({u: {} for u in range(1, 8)})
    computed = _snapshot({u: {"rank": "growth"} for u in range(1, 8)})
    report = snapshot_difference(stored, computed)
    assert report["users_differing"] == 7 and report["by_column"] == {"rank": 7}
    shown = [int(line.split(":")[0].removeprefix("user ")) for line in report["examples"]]
    assert len(shown) == 5 and set(shown) <= set(range(1, 8))
    assert report["examples"] == [f"user {u}: rank 0 -> growth" for u in shown]
