"""The widths of the ``users`` columns the recompute writes its money to, as this database has them."""

from __future__ import annotations

from db.connection import Database
from transforms.column_limits import ColumnLimit

# computed state column (cents) -> the users columns it is written to (db.load.merge_documents)
WRITTEN_MONEY = {
    "personal_volume_total_cents": ("personalVolumeTotal",),
    "full_volume_cents": ("fullVolume", "teamVolumeTotal"),
}


def largest_cents(precision: int, scale: int) -> int:
    """The largest absolute value a ``numeric(precision, scale)`` holds, in cents (scale >= 2)."""
    return (10**precision - 1) // 10 ** (scale - 2)


def written_money_limits(db: Database) -> list[ColumnLimit]:
    """One limit per computed money column and written column of ``users`` that has a declared
    precision (an unconstrained ``numeric`` holds any volume and has none)."""
    columns = [c for written in WRITTEN_MONEY.values() for c in written]
    with db.connect_raw() as connection:
        declared = connection.execute(
            """SELECT column_name, numeric_precision, numeric_scale FROM information_schema.columns
               WHERE table_schema = current_schema() AND table_name = 'users' AND column_name = ANY(%s)
                 AND data_type = 'numeric' AND numeric_precision IS NOT NULL""",
            [columns],
        ).fetchall()
    widths = {name: (precision, scale) for name, precision, scale in declared}
    return [
        ColumnLimit(computed, column, f"numeric({widths[column][0]},{widths[column][1]})", largest_cents(*widths[column]))
        for computed, written in WRITTEN_MONEY.items()
        for column in written
        if column in widths and widths[column][1] >= 2
    ]
