"""The runs ledger (``mlm_runs``): every run is recorded before it reads and after it ends.

A run whose process dies is ended by the next run (which holds the run lock, so the dead one is
not alive): ``abandoned`` if it died before its write committed (the server rolled it back),
``committed`` if it died after (its data is written; ``verified`` says what the next run's
check of it found, NULL when it could not be checked).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from db.connection import Database
from db.schema import runs, validation_failures


def start_run(db: Database, *, mode: str, period: str, as_of: datetime, plan_version: str, dry_run: bool) -> int:
    """Record a run as ``running`` (committed at once, so even a killed run leaves a trace); its id."""
    with db.engine.begin() as connection:
        return connection.execute(
            sa.insert(runs)
            .values(mode=mode, status="running", period=period, as_of=as_of, plan_version=plan_version, dry_run=dry_run)
            .returning(runs.c.run_id)
        ).scalar_one()


def finish_run(db: Database, run_id: int, *, status: str, summary: dict | None = None, error: str | None = None, **values) -> None:
    """Record how a run ended: ``succeeded``, ``failed`` or ``refused``, with its summary, merged
    over what the run noted while it ran (``note_summary``): a run that fails keeps its notes."""
    given = sa.literal(json.loads(json.dumps(summary, default=str)) if summary is not None else {}, runs.c.summary.type)
    with db.engine.begin() as connection:
        connection.execute(
            sa.update(runs)
            .where(runs.c.run_id == run_id)
            .values(
                status=status,
                finished_at=sa.func.now(),
                summary=sa.func.coalesce(runs.c.summary, sa.literal({}, runs.c.summary.type)).op("||")(given),
                error=error,
                **values,
            )
        )


def note_summary(db: Database, run_id: int, values: dict) -> None:
    """Add ``values`` to a running run's summary (kept however the run ends)."""
    noted = sa.literal(json.loads(json.dumps(values, default=str)), runs.c.summary.type)
    with db.engine.begin() as connection:
        connection.execute(
            sa.update(runs).where(runs.c.run_id == run_id).values(summary=sa.func.coalesce(runs.c.summary, sa.literal({}, runs.c.summary.type)).op("||")(noted))
        )


def record_failures(db: Database, run_id: int, failures: list[dict]) -> None:
    """Store validation failures (``user_id``, ``check_name``, ``detail``) of a run."""
    if not failures:
        return
    with db.engine.begin() as connection:
        connection.execute(sa.insert(validation_failures), [{"run_id": run_id, **f} for f in failures])


def note_write_committed(db: Database, run_id: int, written_table: str) -> None:
    """Note on a running run, right after its write committed, that it did and how many users
    it wrote (the rows of ``written_table``, a quoted table name): if its process dies now, the
    next run knows the data is written, and whether the list of written users it checks against
    is whole (unlogged, it is emptied if the server crashes)."""
    with db.engine.begin() as connection:
        connection.execute(
            sa.text(
                f"""UPDATE mlm_runs SET summary = COALESCE(summary, '{{}}'::jsonb) || '{{"write_committed": true}}'::jsonb,
                           users_changed = (SELECT count(*) FROM {written_table})
                    WHERE run_id = :run_id AND status = 'running'"""
            ),
            {"run_id": run_id},
        )


def write_committed(db: Database, run_id: int) -> bool:
    """Whether ``note_write_committed`` was recorded for the run."""
    with db.engine.connect() as connection:
        noted = connection.execute(sa.select(runs.c.summary["write_committed"].as_boolean()).where(runs.c.run_id == run_id)).scalar()
    return bool(noted)


@dataclass(frozen=True)
class Unfinished:
    """A run another run found unfinished: still ``running`` (its process died), or
    ``committed`` and never verified. ``noted_written``: the users it noted writing, if it did."""

    run_id: int
    status: str
    write_committed: bool
    noted_written: int | None


def unfinished_runs(db: Database) -> list[Unfinished]:
    """Runs still ``running``, and committed runs not verified (the caller holds the run lock, so
    none of them is alive)."""
    committed = runs.c.summary["write_committed"].as_boolean()
    with db.engine.connect() as connection:
        rows = connection.execute(
            sa.select(runs.c.run_id, runs.c.status, sa.func.coalesce(committed, False), runs.c.users_changed)
            .where((runs.c.status == "running") | ((runs.c.status == "committed") & runs.c.verified.is_(None)))
            .order_by(runs.c.run_id)
        ).all()
    return [Unfinished(run_id, status, bool(noted), users if noted else None) for run_id, status, noted, users in rows]


def record_committed(db: Database, run_id: int, *, verified: bool | None, note: str, failures: list[dict] = ()) -> None:
    """End a run whose write committed but that did not finish: ``committed``, ``verified`` as
    checking it found (its failures stored), ``note`` added to its error (a run that failed
    after committing keeps the error it failed with)."""
    record_failures(db, run_id, list(failures))
    with db.engine.begin() as connection:
        connection.execute(
            sa.update(runs)
            .where(runs.c.run_id == run_id)
            .values(
                status="committed",
                verified=verified,
                error=sa.func.concat_ws("; ", runs.c.error, note),
                finished_at=sa.func.coalesce(runs.c.finished_at, sa.func.now()),
            )
        )


def abandon_stale_runs(db: Database) -> int:
    """Mark runs still ``running`` as ``abandoned``: the caller holds the run lock, so none of them
    is alive (their process died; their transaction was rolled back by the server)."""
    with db.engine.begin() as connection:
        return connection.execute(
            sa.update(runs)
            .where(runs.c.status == "running")
            .values(status="abandoned", finished_at=sa.func.now(), error="the run's process ended before it finished")
        ).rowcount
