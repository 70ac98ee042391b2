"""One period's recompute as plain steps: extract, compute, load, validate, verify.

The Prefect flows and the CLI compose this; it is kept free of Prefect so the ``scenario``
command and the tests can call it directly. One run holds the run lock from before its extract
to after its verification, and writes in exactly one transaction.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import polars as pl

from db import column_limits, extract, ledger, load, validate
from db.connection import Database
from db.periods import PeriodRefused
from db.unit_of_work import UnitOfWork, run_connection, write_connection
from flows import progress as stage_progress
from flows.failures import note_ledger_not_updated
from transforms.documents import Provenance
from transforms.plan import Plan
from transforms.problems import InputRejected
from transforms.column_limits import overflow_problems, without_users
from transforms.recompute import Inputs, Recomputed, recompute


class ValidationFailed(RuntimeError):
    """The written state did not prove out; the transaction was rolled back (or, after commit,
    the verification failed). ``failures`` lists the users and checks."""

    def __init__(self, run_id: int, failures: list[dict], *, after_commit: bool = False):
        self.run_id = run_id
        self.failures = failures
        self.after_commit = after_commit
        users = sorted({f["user_id"] for f in failures if f["user_id"] is not None})
        checks = sorted({f["check_name"] for f in failures})
        moment = "after commit (the data was written)" if after_commit else "before commit; nothing was written"
        shown = ", ".join(map(str, users[:20])) + (f" and {len(users) - 20} more" if len(users) > 20 else "")
        super().__init__(f"run {run_id}: validation failed {moment}: {len(failures)} failure(s) in {checks}; userIDs {shown}")


@dataclass
class RunOutcome:
    """What a run did: its id, status, what changed, and how long each stage took."""

    run_id: int
    mode: str
    plan_version: str
    status: str
    period: str
    as_of: datetime
    dry_run: bool
    recomputed: Recomputed
    watermark: extract.Watermark
    changes: dict
    users_staged: int
    users_written: int
    rank_history_rows: int
    snapshot_rows: int
    verified: bool | None
    timings: dict[str, float] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict:
        state = self.recomputed.state
        return {
            "mode": self.mode,
            "plan_version": self.plan_version,
            "run_id": self.run_id,
            "status": self.status,
            "period": self.period,
            "as_of": self.as_of.isoformat(),
            "dry_run": self.dry_run,
            "watermark": vars(self.watermark),
            "users_computed": state.height,
            "users_compared": self.users_staged,
            "users_written": self.users_written,
            "changes": self.changes,
            "rank_history_rows": self.rank_history_rows,
            "snapshot_rows": self.snapshot_rows,
            "new_pioneers": state.filter(pl.col("is_new_pioneer").fill_null(False))["user_id"].to_list(),
            "quarantined": [p.as_dict() for p in self.recomputed.problems],
            "verified": self.verified,
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
            "rows": self.rows,
        }


Progress = Callable[[str, float | None], None]


def _quiet(stage: str, seconds: float | None) -> None:
    """The default progress report: the running command's reporter (none outside a command)."""
    stage_progress.report(stage, seconds)


@contextmanager
def _stage(timings: dict[str, float], name: str, progress: Progress = _quiet):
    """Time a stage, telling ``progress`` when it starts (None) and when it ends (seconds)."""
    progress(name, None)
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = time.perf_counter() - started
        progress(name, timings[name])


@dataclass
class RecordedRun:
    """A run's ledger entry while it runs: its id (0 for a dry run, which records nothing)."""

    run_id: int
    outcome: dict | None = None


@contextmanager
def recorded_run(db: Database, plan: Plan, *, mode: str, period: str, as_of: datetime, dry_run: bool, wait: bool):
    """Hold the run lock and keep the ledger: the run is recorded before it reads, and its end
    (succeeded, refused, failed) is recorded however the block ends. Set ``outcome`` on the
    yielded object to the success summary."""
    with run_connection(db, wait=wait) as connection:
        run = RecordedRun(run_id=0)
        if not dry_run:
            settle_unfinished_runs(db, connection)
            run.run_id = ledger.start_run(db, mode=mode, period=period, as_of=as_of, plan_version=plan.version, dry_run=False)
        try:
            yield run
        except InputRejected as rejected:
            problems = {"problems": [p.as_dict() for p in rejected.problems]}
            _record_end(run, rejected, lambda: ledger.finish_run(db, run.run_id, status="refused", error=str(rejected), summary=problems))
            raise
        except PeriodRefused as refused:
            _record_end(run, refused, lambda: ledger.finish_run(db, run.run_id, status="refused", error=str(refused)))
            raise
        except ValidationFailed as failed:
            _record_end(run, failed, lambda: _record_validation_failed(db, run.run_id, failed))
            raise
        except BaseException as error:
            _record_end(run, error, lambda: _record_failed(db, run.run_id, error))
            raise
        if run.run_id:
            summary = run.outcome or {}
            watermark = summary.get("watermark") or {}
            ledger.finish_run(
                db,
                run.run_id,
                status=summary.get("status", "succeeded"),
                users_changed=summary.get("users_written"),
                max_purchase_id=watermark.get("max_purchase_id"),
                purchase_count=watermark.get("purchase_count"),
                user_count=watermark.get("user_count"),
                verified=summary.get("verified"),
                summary=summary,
            )


def _record_end(run: RecordedRun, error: BaseException, record: Callable[[], object]) -> None:
    """Record how the run ended (a dry run records nothing). When the ledger cannot be written
    either (the server that failed the run is gone), the run's own error stays the one raised,
    noting that the ledger was not updated: the first failure is the one to report."""
    if not run.run_id:
        return
    try:
        record()
    except Exception as ledger_error:
        note_ledger_not_updated(error, ledger_error)


def _record_validation_failed(db: Database, run_id: int, failed: ValidationFailed) -> None:
    ledger.record_failures(db, run_id, failed.failures)
    ledger.finish_run(db, run_id, status="failed", error=str(failed), verified=False if failed.after_commit else None)


def _record_failed(db: Database, run_id: int, error: BaseException) -> None:
    """A run that failed: ``committed`` and unverified if its write had committed (verification
    failed to run), else ``failed``."""
    text = f"{type(error).__name__}: {error}"
    if ledger.write_committed(db, run_id):
        ledger.record_committed(db, run_id, verified=None, note=f"{text} (after its write committed; not verified)")
    else:
        ledger.finish_run(db, run_id, status="failed", error=text)


ENDED_AFTER_COMMIT = "the run's process ended after its write committed, before it finished"


def settle_unfinished_runs(db: Database, connection) -> None:
    """End the runs a dead process left unfinished (the caller holds the run lock), then drop
    their staging tables. A run whose write committed (it noted so, or its written table, made
    inside its transaction, survives) is ``committed``, and verified now against that table,
    as its own verification would have; any other is ``abandoned`` (its write rolled back)."""
    for run in ledger.unfinished_runs(db):
        table = load.staging_table(run.run_id)
        written_table = load.quoted(load.written_table(table))
        survives = connection.execute("SELECT to_regclass(%s) IS NOT NULL", [written_table]).fetchone()[0]
        written = connection.execute(f"SELECT count(*) FROM {written_table}").fetchone()[0] if survives else None
        # Unlogged, the table is emptied by a server crash: check against it only if it is whole.
        whole = written is not None and (written == run.noted_written if run.noted_written is not None else written > 0)
        ended = [ENDED_AFTER_COMMIT] if run.status == "running" else []
        if whole:
            failures = validate.failures_after_commit(db, table)
            verdict = (
                f"checked by the next run: {len(failures)} failure(s), stored values that differ from what it computed (see its failures)"
                if failures
                else f"verified by the next run: stored equals computed for the {written} users it wrote"
            )
            ledger.record_committed(db, run.run_id, verified=not failures, note="; ".join([*ended, verdict]), failures=failures)
        elif ended and (survives or run.write_committed):
            ledger.record_committed(db, run.run_id, verified=None, note="; ".join([*ended, "not verified: the list of the users it wrote is gone"]))
    ledger.abandon_stale_runs(db)
    load.drop_abandoned_staging(connection)


def run_period(
    db: Database,
    plan: Plan,
    *,
    as_of: datetime,
    period: str,
    root_telegram_id: int | None,
    mode: str = "nightly",
    quarantine: bool = False,
    is_final: bool = False,
    dry_run: bool = False,
    wait: bool = True,
    progress: Progress = _quiet,
) -> RunOutcome:
    """Recompute ``period`` as of ``as_of`` and write it in one transaction, validated before
    commit and verified after. A dry run does everything but commit, and records nothing.

    Raises InputRejected (bad input), RunLocked (``wait=False`` and another run holds the lock),
    ValidationFailed (nothing written, failures stored on the run).
    """
    with recorded_run(db, plan, mode=mode, period=period, as_of=as_of, dry_run=dry_run, wait=wait) as run:
        outcome = _run(db, plan, run.run_id, mode, as_of, period, root_telegram_id, quarantine, is_final, dry_run, progress)
        run.outcome = outcome.summary()
    return outcome


@dataclass(frozen=True)
class Written:
    """What one write transaction changed."""

    changes: dict
    users_staged: int
    users_written: int
    rank_history_rows: int
    snapshot_rows: int


def extract_stage(db: Database, plan: Plan, as_of: datetime, *, remember: bool = False) -> tuple[Inputs, extract.Watermark]:
    """The run's inputs, read in one snapshot; with ``remember``, the purchase months that had
    to be aggregated again are memoized for the next run."""
    return extract.inputs(db, as_of, plan.pioneer_min_purchase_cents, remember=remember)


def remembers_purchases(mode: str, dry_run: bool) -> bool:
    """Whether a run memoizes the purchase months it aggregated: nightly runs, which follow one
    another with nearby cut-offs. Backfill months run concurrently and would overwrite each
    other's memo with distant cut-offs; dry runs write nothing."""
    return mode == "nightly" and not dry_run


def compute_stage(
    inputs: Inputs, plan: Plan, *, run_id: int, as_of: datetime, period: str, root_telegram_id: int | None, quarantine: bool
) -> Recomputed:
    """Every user's state and documents for the period."""
    provenance = Provenance(run_id=run_id, plan_version=plan.version, as_of=as_of, calculated_at=datetime.now(timezone.utc))
    return recompute(inputs, plan, period=period, root_telegram_id=root_telegram_id, provenance=provenance, quarantine=quarantine)


def within_column_limits(db: Database, result: Recomputed, *, quarantine: bool) -> Recomputed:
    """``result`` if every computed volume fits the column it is written to; otherwise refused
    naming the users (InputRejected), or with them left out under quarantine."""
    overflowing = overflow_problems(result.state, column_limits.written_money_limits(db))
    if overflowing and not quarantine:
        raise InputRejected(overflowing)
    return without_users(result, overflowing) if overflowing else result


def write_stage(
    db: Database, result: Recomputed, plan: Plan, *, run_id: int, watermark: extract.Watermark, is_final: bool, dry_run: bool
) -> Written:
    """Stage, merge and validate in one transaction; commit unless validation failed or it is a dry run.

    The staging table outlives the commit so that ``verify_stage`` can re-read against it.
    """
    table = load.staging_table(run_id)
    with write_connection(db) as connection, UnitOfWork(connection) as uow:
        load.hold_users(connection)
        staged = load.stage_documents(connection, load.users_to_stage(result), table)
        load.lock_users_to_write(connection, table)
        changes = validate.pending_changes(connection, table)
        load.create_written_table(connection, table)
        written = load.merge_documents(connection, table)
        load.record_fingerprints(connection, table, run_id, all_written=written == staged)
        history = load.write_rank_history(connection, result, run_id)
        snapshots = load.write_snapshots(connection, result, run_id, is_final=is_final)
        stage_progress.part_done("write", written, next_part="validate")
        failures = validate.failures_in_transaction(
            connection,
            table,
            plan,
            as_of=result.as_of,
            max_purchase_id=watermark.max_purchase_id,
            root_user_id=_root_user_id(result),
            purchase_volume_cents=watermark.purchase_volume_cents,
        )
        if failures:
            raise ValidationFailed(run_id, failures)
        load.drop_before(connection, table)
        if not dry_run:
            uow.commit()
    return Written(changes, staged, written, history, snapshots)


def verify_stage(db: Database, run_id: int) -> None:
    """Re-read every written user from a new connection; raises ValidationFailed on any difference.

    First noted in the ledger: the write committed (a process killed from here on is recorded
    as committed, and verified by the next run, not as abandoned)."""
    table = load.staging_table(run_id)
    ledger.note_write_committed(db, run_id, load.quoted(load.written_table(table)))
    after = validate.failures_after_commit(db, table)
    with write_connection(db) as connection:
        load.drop_staging(connection, table)
    if after:
        raise ValidationFailed(run_id, after, after_commit=True)


def _run(db, plan, run_id, mode, as_of, period, root_telegram_id, quarantine, is_final, dry_run, progress) -> RunOutcome:
    timings: dict[str, float] = {}
    with _stage(timings, "extract", progress):
        inputs, watermark = extract_stage(db, plan, as_of, remember=remembers_purchases(mode, dry_run))
        stage_progress.rows("extract", inputs.monthly_volumes.height + inputs.users.height)
    with _stage(timings, "compute", progress):
        result = compute_stage(inputs, plan, run_id=run_id, as_of=as_of, period=period, root_telegram_id=root_telegram_id, quarantine=quarantine)
        extracted_rows = inputs.monthly_volumes.height + inputs.users.height
        del inputs  # the write holds the result and a batch of documents, not the inputs too
        result = within_column_limits(db, result, quarantine=quarantine)
        stage_progress.rows("compute", result.state.height)
    with _stage(timings, "write", progress):
        written = write_stage(db, result, plan, run_id=run_id, watermark=watermark, is_final=is_final, dry_run=dry_run)
    verified = None
    if not dry_run:
        with _stage(timings, "verify", progress):
            verify_stage(db, run_id)
            stage_progress.rows("verify", written.users_written)
        verified = True
    rows = {"extract": extracted_rows, "compute": result.state.height, "write": written.users_staged}
    return RunOutcome(
        run_id=run_id,
        mode=mode,
        plan_version=plan.version,
        status="dry run" if dry_run else "succeeded",
        period=period,
        as_of=as_of,
        dry_run=dry_run,
        recomputed=result,
        watermark=watermark,
        changes=written.changes,
        users_staged=written.users_staged,
        users_written=written.users_written,
        rank_history_rows=written.rank_history_rows,
        snapshot_rows=written.snapshot_rows,
        verified=verified,
        timings=timings,
        rows=rows,
    )


def _root_user_id(result: Recomputed) -> int | None:
    roots = result.state.filter(pl.col("is_root"))["user_id"]
    return int(roots[0]) if roots.len() else None
