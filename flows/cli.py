"""The ``mlm-recompute`` command line.

Exit codes: 0 success; 1 a scenario's expectations failed or validation failed; 2 usage or a
malformed file; 3 bad input refused (offending ids printed); 4 another run holds the lock.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_BAD_INPUT, EXIT_LOCKED = 0, 1, 2, 3, 4


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlm-recompute", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

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

    demo = sub.add_parser("demo", help="the quick start: demo data if the database is empty, then a nightly run")
    demo.add_argument("--users", type=int, default=10_000)
    demo.add_argument("--months", type=int, default=3)
    demo.add_argument("--seed", type=int, default=1)
    return parser


@contextlib.contextmanager
def _database(settings):
    from db import migrate
    from db.connection import open_database, server_uri

    with server_uri(settings.database_url, settings.data_dir) as uri:
        db = open_database(uri)
        try:
            migrate.prepare(db.engine)
            yield db
        finally:
            db.engine.dispose()


def _cmd_db(args, settings) -> int:
    with _database(settings) as db:
        from db.migrate import current_revision

        print(f"database {db.name}: project schema at revision {current_revision(db.engine)}")
    return EXIT_OK


def _cmd_demo_data(args, settings) -> int:
    from db import demo

    with _database(settings) as db:
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
    with server_uri(settings.database_url, settings.data_dir, quiet=True) as uri:
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
    started = time.perf_counter()
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
    state = outcome.recomputed.state
    title = "dry run (nothing written)" if dry_run else f"run {outcome.run_id} {outcome.status}"
    print(f"{title}: period {outcome.period}, cut-off {as_of.isoformat()}, plan {plan.version}")
    print(f"  users computed:   {state.height:,}")
    print(f"  users {'to write' if dry_run else 'written'}:    {outcome.users_written:,}")
    for key, count in sorted(outcome.changes["by_key"].items(), key=lambda kv: -kv[1])[:8]:
        print(f"    {key:<28} {count:,}")
    print(f"  rank changes:     {outcome.rank_history_rows:,} {outcome.changes['rank_rises_to'] or ''}")
    print(f"  active users:     {int(state['is_active'].sum()):,}")
    print(f"  pioneers:         {int(state['pioneer_number'].is_not_null().sum()):,} ({int(state['is_new_pioneer'].fill_null(False).sum())} new)")
    if outcome.verified:
        print("  verified:         stored equals computed (re-read from a new connection)")
    if outcome.recomputed.problems:
        print("  quarantined:")
        for problem in outcome.recomputed.problems:
            print("    - " + problem.describe())
    print(f"  took {time.perf_counter() - started:.1f} s")
    return EXIT_OK


def _cmd_run(args, settings) -> int:
    with _database(settings) as db:
        return _nightly(db, settings, _now_or(args.as_of), quarantine=args.quarantine, dry_run=args.dry_run, wait=args.wait)


def _cmd_demo(args, settings) -> int:
    import sqlalchemy as sa

    from db import demo

    with _database(settings) as db:
        with db.engine.connect() as connection:
            empty = connection.execute(sa.text("SELECT NOT EXISTS (SELECT 1 FROM users)")).scalar()
        if empty:
            print(f"empty database: generating a demo platform of {args.users:,} users over {args.months} months")
            # Purchases run up to this month, so the nightly run has an active month to show.
            demo.generate_and_load(db, users=args.users, months=args.months, seed=args.seed, end_month=_current_month())
        return _nightly(db, settings, datetime.now(timezone.utc))


_COMMANDS = {
    "db": _cmd_db,
    "demo-data": _cmd_demo_data,
    "scenario": _cmd_scenario,
    "run": _cmd_run,
    "demo": _cmd_demo,
}


def main(argv: list[str] | None = None) -> int:
    from db.unit_of_work import RunLocked
    from flows.pipeline import ValidationFailed
    from flows.config import Settings
    from flows.scenario import ScenarioFileError
    from transforms.plan import PlanError
    from transforms.problems import InputRejected

    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        return _COMMANDS[args.command](args, settings)
    except (ScenarioFileError, PlanError, ValueError) as error:
        print(f"mlm-recompute: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except InputRejected as rejected:
        print(f"mlm-recompute: refused, nothing written: {rejected}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RunLocked as locked:
        print(f"mlm-recompute: {locked}", file=sys.stderr)
        return EXIT_LOCKED
    except ValidationFailed as failed:
        print(f"mlm-recompute: {failed}", file=sys.stderr)
        for failure in failed.failures[:20]:
            print(f"  user {failure['user_id']}: {failure['check_name']}: {failure['detail']}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
