"""The Prefect tasks: the pipeline's stages, passing small values (a URI, a folder, counts).

Retries apply to transient database errors only (a dropped connection, a serialization failure
or deadlock): never to bad input, a failed validation or a held lock, which a retry cannot fix.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from db.connection import open_database
from db.extract import Watermark
from flows import pipeline
from flows.failures import is_transient
from flows.workspace import Workspace
from transforms.plan import Plan


def transient_database_error(task_, task_run, state) -> bool:
    """Retry only when the failure is a database hiccup that another attempt may not meet, from
    psycopg (the write) or ADBC (the extract) alike (see ``failures.is_transient``)."""
    try:
        state.result()
    except Exception as error:
        return is_transient(error)
    return False


IO_TASK = dict(retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=transient_database_error, cache_policy=NO_CACHE)


def _log_rate(stage: str, rows: int, started: float) -> None:
    seconds = time.perf_counter() - started
    get_run_logger().info("%s: %s rows in %.2f s (%s rows/s)", stage, f"{rows:,}", seconds, f"{rows / max(seconds, 1e-9):,.0f}")


@task(name="extract", **IO_TASK)
def extract_task(uri: str, plan: Plan, as_of: datetime, folder: str, remember: bool = False) -> dict:
    """Read the inputs in one snapshot into the workspace; the watermark. With ``remember``, the
    purchase months aggregated again are memoized (see ``pipeline.remembers_purchases``)."""
    started = time.perf_counter()
    db = open_database(uri)
    try:
        inputs, watermark = pipeline.extract_stage(db, plan, as_of, remember=remember)
    finally:
        db.engine.dispose()
    Workspace(Path(folder)).save_inputs(inputs)
    _log_rate("extract", inputs.users.height + inputs.monthly_volumes.height, started)
    return vars(watermark)


@task(name="compute", cache_policy=NO_CACHE)
def compute_task(folder: str, plan: Plan, run_id: int, as_of: datetime, period: str, root_telegram_id: int | None, quarantine: bool) -> dict:
    """Apply the plan to the saved inputs; the result goes back to the workspace."""
    started = time.perf_counter()
    workspace = Workspace(Path(folder))
    result = pipeline.compute_stage(
        workspace.inputs(), plan, run_id=run_id, as_of=as_of, period=period, root_telegram_id=root_telegram_id, quarantine=quarantine
    )
    workspace.save_result(result)
    _log_rate("compute", result.state.height, started)
    return {"users": result.state.height, "quarantined": [p.as_dict() for p in result.problems]}


@task(name="column limits", **IO_TASK)
def column_limits_task(uri: str, folder: str, quarantine: bool) -> list[dict]:
    """Check the computed volumes against the widths of the columns they go to (refused naming
    the users, or left out under quarantine); what it left out."""
    workspace = Workspace(Path(folder))
    result = workspace.result()
    db = open_database(uri)
    try:
        checked = pipeline.within_column_limits(db, result, quarantine=quarantine)
    finally:
        db.engine.dispose()
    if checked is result:
        return []
    workspace.save_result(checked)
    return [p.as_dict() for p in checked.problems[len(result.problems) :]]


@task(name="write and validate", **IO_TASK)
def write_task(uri: str, folder: str, plan: Plan, run_id: int, watermark: dict, is_final: bool, dry_run: bool) -> dict:
    """Stage, merge and validate in one transaction (committed unless a dry run)."""
    started = time.perf_counter()
    result = Workspace(Path(folder)).result()
    db = open_database(uri)
    try:
        written = pipeline.write_stage(db, result, plan, run_id=run_id, watermark=Watermark(**watermark), is_final=is_final, dry_run=dry_run)
    finally:
        db.engine.dispose()
    _log_rate("write", result.state.height, started)
    return vars(written)


@task(name="verify", **IO_TASK)
def verify_task(uri: str, run_id: int) -> bool:
    """Re-read what was committed from a new connection."""
    started = time.perf_counter()
    db = open_database(uri)
    try:
        pipeline.verify_stage(db, run_id)
    finally:
        db.engine.dispose()
    _log_rate("verify", 0, started)
    return True


@task(name="report", cache_policy=NO_CACHE)
def report_task(summary: dict) -> None:
    """Publish the run's summary (Markdown) and its changes (table) as Prefect artifacts."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    from flows.report import changes_table, summary_markdown

    key = f"mlm-{summary.get('mode', 'run')}-{summary.get('period', '')}".lower().replace("_", "-")
    create_markdown_artifact(summary_markdown(summary), key=key, description="mlm-recompute run summary")
    create_table_artifact(changes_table(summary), key=f"{key}-changes", description="users changed, by owned key")
    # The run's page for people (tables and charts in one file), linked from the artifacts.
    from prefect.artifacts import create_link_artifact

    from flows.report import write_summary_page

    page = write_summary_page(summary).resolve()
    create_link_artifact(page.as_uri(), link_text=f"{page.name} (HTML report)", key=f"{key}-page", description="the run's HTML page")
