"""The ``mlm-recompute`` command line.

Exit codes: 0 success; 1 a scenario's expectations failed or validation failed; 2 usage, a
malformed file, a bad setting or a database not set up for the command (``SchemaNotReady``: the
line names ``db upgrade`` or ``demo-data``); 3 bad input refused (offending ids printed); 4 another run holds the lock;
5 the database cannot be reached or refused the connection (one line says which server and why).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_BAD_INPUT, EXIT_LOCKED = 0, 1, 2, 3, 4
_QUIET_HELP = "no progress on stderr (bars on a terminal, one line per stage otherwise)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlm-recompute", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show the traceback of an expected failure (or set MLM_DEBUG=1)")
    parser.add_argument("--quiet", action="store_true", help=_QUIET_HELP)
    sub = parser.add_subparsers(dest="command", required=True)

    plan = sub.add_parser("plan", help="the plan file, offline: check FILE, or print its JSON Schema")
    from flows.plan_command import add_arguments as add_plan_arguments

    add_plan_arguments(plan)

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="create missing platform tables and migrate the project's own tables")

    demo_data = sub.add_parser("demo-data", help="fill an empty database with a realistic demo platform")
    demo_data.add_argument("--users", type=int, default=10_000)
    demo_data.add_argument("--months", type=int, default=3)
    demo_data.add_argument("--seed", type=int, default=1)
    demo_data.add_argument("--purchases-per-user", type=int, default=10)
    demo_data.add_argument("--end-month", help="last month with purchases (YYYY-MM); default the current month")

    scenario = sub.add_parser("scenario", help="run a scenario file in a new database and check its expectations")
    scenario.add_argument("path", type=Path)
    scenario.add_argument("--json", action="store_true", help="also print the stored state of every user")

    run = sub.add_parser("run", help="the nightly recompute: the current month as of now, users' documents written")
    run.add_argument("--as-of", help="cut-off instant (ISO, UTC); default now")
    run.add_argument("--quarantine", action="store_true", help="leave bad rows out (listed) and write everyone else")
    run.add_argument("--dry-run", action="store_true", help="compute and validate, report what would change, write nothing")
    run.add_argument("--wait", action="store_true", help="wait for another run to finish instead of exiting with code 4")
    run.add_argument(
        "--any-cut-off", action="store_true", help="allow a cut-off later than now, or before the end of the newest closed month"
    )

    backfill = sub.add_parser("backfill", help="rebuild period snapshots for a range of ended months (Prefect flow)")
    backfill.add_argument("--from", dest="from_month", required=True, help="first month, YYYY-MM")
    backfill.add_argument("--to", dest="to_month", required=True, help="last month, YYYY-MM")
    backfill.add_argument("--reprocess", choices=["missing", "failed", "all"], default="missing")
    backfill.add_argument("--dry-run", action="store_true")

    close = sub.add_parser("close", help="close an ended month: final snapshot, monthly_stats (Prefect flow)")
    close.add_argument("--month", required=True, help="YYYY-MM")

    reopen = sub.add_parser("reopen", help="reopen the most recently closed month")
    reopen.add_argument("--month", required=True, help="YYYY-MM")
    reopen.add_argument("--reason", required=True)

    audit = sub.add_parser("audit", help="read-only: how far stored documents are from what the sources say")
    audit.add_argument("--as-of", help="cut-off instant (ISO, UTC); default now")
    audit.add_argument("--out", default=".mlm/audit", help="folder for audit-<as_of>.md, .json and .png (default .mlm/audit)")

    explain = sub.add_parser("explain", help="read-only: one user's volumes, activity, rank requirements, pioneer status and drift, from the sources")
    explain.add_argument("user_id", type=int)
    _cut_off_arguments(explain)
    explain.add_argument("--json", action="store_true", help="print the explanation as JSON")

    compare = sub.add_parser("compare-plans", help="read-only: the current plan and another applied to the same inputs")
    compare.add_argument("other_plan", type=Path, help="the other plan file (TOML)")
    _cut_off_arguments(compare)
    compare.add_argument("--out", default=".mlm/compare", help="folder for compare-<as_of>.md, .json, .png and .html (default .mlm/compare)")
    compare.add_argument("--json", action="store_true", help="print the report as JSON")

    tree = sub.add_parser("tree", help="read-only: a user's downline with each member's rank, activity, PV and full volume")
    tree.add_argument("user_id", type=int)
    tree.add_argument("--depth", type=int, default=2, help="levels below the user to list (default 2)")
    _cut_off_arguments(tree)
    tree.add_argument("--json", action="store_true", help="print the downline as JSON")

    runs = sub.add_parser("runs", help="list the most recent runs from the ledger, newest first")
    runs.add_argument("--limit", type=int, default=20, help="how many runs to list (default 20)")

    show = sub.add_parser("show", help="one run's summary from the ledger, and its validation failures")
    show.add_argument("run_id", type=int)

    lint_json = sub.add_parser(
        "lint-json", help="static check: SQLAlchemy JSON values changed in place and never flagged, so never saved (JSN001)"
    )
    from guard.cli import add_arguments as add_lint_json_arguments

    add_lint_json_arguments(lint_json)

    demo = sub.add_parser("demo", help="the quick start: demo data if the database is empty, then a nightly run")
    demo.add_argument("--users", type=int, default=10_000)
    demo.add_argument("--months", type=int, default=3)
    demo.add_argument("--seed", type=int, default=1)
    for name, command in sub.choices.items():
        if name not in ("lint-json", "plan"):  # offline commands: no progress to quieten
            # SUPPRESS: not given after the command, the global --quiet's value stands
            command.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help=_QUIET_HELP)
    return parser


def _cut_off_arguments(parser: argparse.ArgumentParser) -> None:
    """--as-of T or --month YYYY-MM (the month's end), for the read-only views."""
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--as-of", help="cut-off instant (ISO, UTC); default now")
    which.add_argument("--month", help="a month, YYYY-MM: as of its end")


def _cut_off(args) -> tuple[datetime, str]:
    """The cut-off and period the view asks for: a month's end, or an instant's month."""
    from flows.periods import month_end, parse_month
    from transforms.recompute import period_of

    if args.month:
        period = parse_month(args.month)
        return month_end(period), period
    as_of = _now_or(args.as_of)
    return as_of, period_of(as_of)


def _cmd_explain(args, settings) -> int:
    from flows.config import load_plan
    from flows.explain import explain, explain_lines

    plan = load_plan(settings.plan_path)
    as_of, period = _cut_off(args)
    with _database(settings, "read") as db:
        report = explain(db, plan, args.user_id, as_of=as_of, period=period, root_telegram_id=settings.root_telegram_id)
    print(json.dumps(report, indent=1, default=str) if args.json else "\n".join(explain_lines(report)))
    return EXIT_OK


def _cmd_compare_plans(args, settings) -> int:
    from flows.compare_plans import compare, compare_files, compare_lines
    from flows.config import load_plan

    current, other = load_plan(settings.plan_path), load_plan(args.other_plan)
    as_of, period = _cut_off(args)
    with _database(settings, "read") as db:
        report = compare(db, current, other, as_of=as_of, period=period, root_telegram_id=settings.root_telegram_id)
    report["files"] = compare_files(report, Path(args.out))
    print(json.dumps(report, indent=1, default=str) if args.json else "\n".join(compare_lines(report)))
    return EXIT_OK


def _cmd_tree(args, settings) -> int:
    from flows.config import load_plan
    from flows.tree_view import tree_lines, tree_report

    plan = load_plan(settings.plan_path)
    as_of, period = _cut_off(args)
    with _database(settings, "read") as db:
        report = tree_report(db, plan, args.user_id, args.depth, as_of=as_of, period=period, root_telegram_id=settings.root_telegram_id)
    print(json.dumps(report, indent=1, default=str) if args.json else "\n".join(tree_lines(report)))
    return EXIT_OK


def _database(settings, access):
    """The configured database, checked or prepared for ``access`` (read, write or create):
    read-only commands create nothing, and only db upgrade, demo-data and demo create the
    platform's tables (see ``flows.context.opened_database``)."""
    from flows.context import opened_database
    from flows.progress import active

    return opened_database(settings, access, quiet=active().quiet)


def _cmd_db(args, settings) -> int:
    with _database(settings, "create") as db:
        from db.migrate import current_revision

        print(f"database {db.name}: project schema at revision {current_revision(db.engine)}")
    return EXIT_OK


def _cmd_demo_data(args, settings) -> int:
    from db import demo

    with _database(settings, "create") as db:
        started = time.perf_counter()
        data = demo.generate_and_load(
            db,
            users=args.users,
            months=args.months,
            seed=args.seed,
            purchases_per_user=args.purchases_per_user,
            end_month=args.end_month or _current_month(),
        )
        print(f"loaded {data.users.height:,} users and {data.purchases.height:,} purchases in {time.perf_counter() - started:.1f} s")
    return EXIT_OK


def _cmd_scenario(args, settings) -> int:
    from db.connection import server_uri
    from flows.scenario import read_scenario, run_scenario

    scenario = read_scenario(args.path)
    with server_uri(settings.database_url_value(), settings.data_dir, quiet=True) as uri:
        result = run_scenario(uri, scenario, settings.plan_path)
    for ok, text in result.checks:
        print(("  ok    " if ok else "  FAIL  ") + text)
    if args.json:
        print(json.dumps({str(k): v for k, v in result.stored.items()}, indent=1, default=str))
    verdict = "passed" if result.passed else "FAILED"
    failed = sum(not ok for ok, _ in result.checks)
    print(f"scenario {scenario.name}: {verdict} ({len(result.checks) - failed} of {len(result.checks)} checks hold)")
    return EXIT_OK if result.passed else EXIT_FAILED


def _current_month() -> str:
    from transforms.recompute import period_of

    return period_of(datetime.now(timezone.utc))


def _now_or(text: str | None) -> datetime:
    from flows.scenario import parse_instant

    return parse_instant(text) if text else datetime.now(timezone.utc)


def _nightly(db, settings, as_of: datetime, *, quarantine: bool = False, dry_run: bool = False, wait: bool = False) -> int:
    from flows.config import load_plan
    from flows.pipeline import run_period
    from transforms.recompute import period_of

    plan = load_plan(settings.plan_path)
    outcome = run_period(
        db,
        plan,
        as_of=as_of,
        period=period_of(as_of),
        root_telegram_id=settings.root_telegram_id,
        quarantine=quarantine,
        dry_run=dry_run,
        wait=wait,
    )
    _print_summary(outcome.summary())
    return EXIT_OK


def _cmd_run(args, settings) -> int:
    as_of = _now_or(args.as_of)
    now = datetime.now(timezone.utc)
    if as_of > now and not args.any_cut_off:
        # a nightly run writes every user's live documents: as of a moment that has not come
        return _said(f"mlm-recompute: error: --as-of {as_of.isoformat()} is later than now ({now.isoformat(timespec='seconds')}); pass --any-cut-off if it is meant", EXIT_USAGE)
    with _database(settings, "read" if args.dry_run else "write") as db:
        refusal = None if args.any_cut_off else _before_closed_history(db, as_of)
        if refusal:
            return _said(f"mlm-recompute: error: {refusal}", EXIT_USAGE)
        return _nightly(db, settings, as_of, quarantine=args.quarantine, dry_run=args.dry_run, wait=args.wait)


def _before_closed_history(db, as_of: datetime) -> str | None:
    """Why a nightly cut-off before the end of the newest closed month is refused, or None."""
    from db.periods import closed_periods, month_bounds

    closed = closed_periods(db)
    if not closed:
        return None
    newest = max(closed)
    ends = month_bounds(newest)[1].replace(tzinfo=timezone.utc)
    if as_of >= ends:
        return None
    return (
        f"--as-of {as_of.isoformat()} is before the end of {newest}, the newest closed month: live documents would "
        "be set back in time (history is rebuilt by backfill and close); pass --any-cut-off if it is meant"
    )


def _cmd_demo(args, settings) -> int:
    import sqlalchemy as sa

    from db import demo

    with _database(settings, "create") as db:
        with db.engine.connect() as connection:
            empty = connection.execute(sa.text("SELECT NOT EXISTS (SELECT 1 FROM users)")).scalar()
        if empty:
            print(f"empty database: generating a demo platform of {args.users:,} users over {args.months} months")
            # Purchases run up to this month, so the nightly run has an active month to show.
            demo.generate_and_load(db, users=args.users, months=args.months, seed=args.seed, end_month=_current_month())
        return _nightly(db, settings, datetime.now(timezone.utc))


def _print_summary(summary: dict) -> None:
    from flows.report import summary_lines

    print("\n".join(summary_lines(summary)))


@contextlib.contextmanager
def _expected_flow_failures_said_once(args):
    """Prefect's engine logs a flow's exception with its traceback; an expected refusal (a period
    rule, a database not set up, bad input, the run lock) is said once, in one line, by
    ``_command``, so those records are dropped (kept with --debug or MLM_DEBUG=1); so is a
    database that cannot be reached, which ``main`` says in one line (exit 5)."""
    from db.migrate import SchemaNotReady
    from db.periods import PeriodRefused
    from db.unit_of_work import RunLocked
    from flows.failures import is_database_failure
    from transforms.problems import InputRejected

    expected = (PeriodRefused, SchemaNotReady, InputRejected, RunLocked)

    def keep(record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return error is None or not (isinstance(error, expected) or is_database_failure(error))

    logger = logging.getLogger("prefect.flow_runs")
    if not args.debug:  # --debug, or MLM_DEBUG (main folds the setting in)
        logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


def _cmd_backfill(args, settings) -> int:
    from flows.periods import backfill, backfill_task_runner, months_between

    months_between(args.from_month, args.to_month)  # a bad month is a usage error, before Prefect starts
    runner = backfill.with_options(task_runner=backfill_task_runner(settings.dask_address))
    with _expected_flow_failures_said_once(args):
        _print_summary(runner(args.from_month, args.to_month, reprocess=args.reprocess, dry_run=args.dry_run))
    return EXIT_OK


def _cmd_close(args, settings) -> int:
    from flows.periods import close, parse_month

    parse_month(args.month)  # a bad month is a usage error, before Prefect starts
    with _expected_flow_failures_said_once(args):
        _print_summary(close(args.month))
    return EXIT_OK


def _cmd_reopen(args, settings) -> int:
    from flows.periods import parse_month
    from db import periods

    month = parse_month(args.month)
    with _database(settings, "write") as db:
        import getpass

        periods.reopen(db, month, actor=getpass.getuser(), reason=args.reason)
    print(f"reopened {month}: {args.reason}")
    return EXIT_OK


def _cmd_audit(args, settings) -> int:
    # Read-only: stored documents against their structure and against a dry run of the nightly.
    from flows.audit import audit_lines, audit_report
    from flows.config import load_plan

    plan = load_plan(settings.plan_path)
    with _database(settings, "read") as db:
        report = audit_report(db, plan, _now_or(args.as_of), settings.root_telegram_id, args.out)
    print("\n".join(audit_lines(report)))
    status = report["drift"]["status"]
    return EXIT_OK if status == "computed" else EXIT_BAD_INPUT if status == "refused" else EXIT_FAILED


def _cmd_runs(args, settings) -> int:
    from db.runs_query import recent_runs
    from flows.report import runs_table

    with _database(settings, "read") as db:
        print(runs_table(recent_runs(db, limit=args.limit)))
    return EXIT_OK


def _cmd_show(args, settings) -> int:
    from db.runs_query import failure_count, run_detail, run_failures
    from flows.report import failure_lines, run_summary, summary_lines

    with _database(settings, "read") as db:
        detail = run_detail(db, args.run_id)
        if detail is None:
            print(f"mlm-recompute: error: no run {args.run_id} in the ledger (see mlm-recompute runs)", file=sys.stderr)
            return EXIT_USAGE
        failures = run_failures(db, args.run_id)
        total = failure_count(db, args.run_id) if failures else 0
    print("\n".join(summary_lines(run_summary(detail))))
    if failures:
        print("\n".join(failure_lines(failures, total)))
    return EXIT_OK


_COMMANDS = {
    "backfill": _cmd_backfill,
    "close": _cmd_close,
    "reopen": _cmd_reopen,
    "audit": _cmd_audit,
    "explain": _cmd_explain,
    "compare-plans": _cmd_compare_plans,
    "tree": _cmd_tree,
    "runs": _cmd_runs,
    "show": _cmd_show,
    "db": _cmd_db,
    "demo-data": _cmd_demo_data,
    "scenario": _cmd_scenario,
    "run": _cmd_run,
    "demo": _cmd_demo,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "lint-json":
        # Static and offline: no settings, no database, none of the pipeline's imports.
        from guard.cli import run as lint_json

        return lint_json(args)
    if args.command == "plan":
        # Offline too: the plan file and its schema need no database.
        from flows.plan_command import run as plan_command

        return plan_command(args)
    from flows.config import Settings
    from flows.failures import EXIT_DATABASE, DatabaseSettingError, check_database_url, database_failure_line, is_database_failure
    from flows.progress import reporting

    try:
        # the URL from its Prefect Secret block, if so configured, read once before anything starts
        settings = Settings.from_env().resolved()
        check_database_url(settings.database_url_value())
    except DatabaseSettingError as error:
        return _said(f"mlm-recompute: database error: {error}", EXIT_DATABASE)
    except ValueError as error:
        return _said(f"mlm-recompute: error: {error}", EXIT_USAGE)
    args.debug = args.debug or settings.debug
    try:
        with reporting(quiet=args.quiet):
            return _command(args, settings)
    except Exception as error:
        if args.debug or not is_database_failure(error):
            raise
        return _said(database_failure_line(error, settings.database_url_value(), settings.data_dir), EXIT_DATABASE)


def _said(line: str, code: int) -> int:
    """An expected failure: one line on stderr, and the exit code that says what kind it was."""
    print(line, file=sys.stderr)
    return code


def _command(args, settings) -> int:
    """Run the command; an expected refusal is one line on stderr and its exit code."""
    from db.migrate import SchemaNotReady
    from db.periods import PeriodRefused
    from db.unit_of_work import RunLocked
    from flows.pipeline import ValidationFailed
    from flows.scenario import ScenarioFileError
    from transforms.plan import PlanError
    from transforms.problems import InputRejected

    try:
        return _COMMANDS[args.command](args, settings)
    except (ScenarioFileError, PlanError, SchemaNotReady, ValueError) as error:
        return _said(f"mlm-recompute: error: {error}", EXIT_USAGE)
    except InputRejected as rejected:
        return _said(f"mlm-recompute: refused, nothing written: {rejected}", EXIT_BAD_INPUT)
    except PeriodRefused as refused:
        return _said(f"mlm-recompute: refused: {refused}", EXIT_BAD_INPUT)
    except RunLocked as locked:
        return _said(f"mlm-recompute: {locked}", EXIT_LOCKED)
    except ValidationFailed as failed:
        print(f"mlm-recompute: {failed}", file=sys.stderr)
        for failure in failed.failures[:20]:
            print(f"  user {failure['user_id']}: {failure['check_name']}: {failure['detail']}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
