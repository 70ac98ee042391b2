"""Reading the runs ledger back: recent runs, one run in full, and its validation failures."""

from __future__ import annotations

import sqlalchemy as sa

from db.connection import Database
from db.schema import runs, validation_failures

# Every ledger column but the summary document, which can be large: what a list of runs shows.
LIST_COLUMNS = [c for c in runs.c if c.name != "summary"]


def _positive(limit: int) -> int:
    """``limit`` itself, refused when it is not a positive integer."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive integer, got {limit!r}")
    return limit


def recent_runs(db: Database, limit: int = 20) -> list[dict]:
    """The ``limit`` newest runs (without their summary document), newest first."""
    statement = sa.select(*LIST_COLUMNS).order_by(runs.c.run_id.desc()).limit(_positive(limit))
    with db.engine.connect() as connection:
        return [dict(row) for row in connection.execute(statement).mappings()]


def run_detail(db: Database, run_id: int) -> dict | None:
    """One run's ledger row, with its summary document and error; None for an unknown id."""
    with db.engine.connect() as connection:
        row = connection.execute(sa.select(runs).where(runs.c.run_id == run_id)).mappings().first()
    return dict(row) if row else None


def run_failures(db: Database, run_id: int, limit: int = 50) -> list[dict]:
    """The first ``limit`` validation failures of a run (``user_id``, ``check_name``, ``detail``), in recorded order."""
    statement = (
        sa.select(validation_failures.c.failure_id, validation_failures.c.user_id, validation_failures.c.check_name, validation_failures.c.detail)
        .where(validation_failures.c.run_id == run_id)
        .order_by(validation_failures.c.failure_id)
        .limit(_positive(limit))
    )
    with db.engine.connect() as connection:
        return [dict(row) for row in connection.execute(statement).mappings()]


def failure_count(db: Database, run_id: int) -> int:
    """How many validation failures a run recorded."""
    statement = sa.select(sa.func.count()).select_from(validation_failures).where(validation_failures.c.run_id == run_id)
    with db.engine.connect() as connection:
        return connection.execute(statement).scalar_one()
