"""The runs ledger (``mlm_runs``): every run is recorded before it reads and after it ends."""

from __future__ import annotations

import json
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
    """Record how a run ended: ``succeeded``, ``failed`` or ``refused``, with its summary."""
    with db.engine.begin() as connection:
        connection.execute(
            sa.update(runs)
            .where(runs.c.run_id == run_id)
            .values(
                status=status,
                finished_at=sa.func.now(),
                summary=json.loads(json.dumps(summary, default=str)) if summary is not None else None,
                error=error,
                **values,
            )
        )


def record_failures(db: Database, run_id: int, failures: list[dict]) -> None:
    """Store validation failures (``user_id``, ``check_name``, ``detail``) of a run."""
    if not failures:
        return
    with db.engine.begin() as connection:
        connection.execute(sa.insert(validation_failures), [{"run_id": run_id, **f} for f in failures])


def abandon_stale_runs(db: Database) -> int:
    """Mark runs still ``running`` as ``abandoned``: the caller holds the run lock, so none of them
    is alive (their process died; their transaction was rolled back by the server)."""
    with db.engine.begin() as connection:
        return connection.execute(
            sa.update(runs)
            .where(runs.c.status == "running")
            .values(status="abandoned", finished_at=sa.func.now(), error="the run's process ended before it finished")
        ).rowcount
