"""Read-only commands create nothing; only db upgrade, demo-data and demo create the platform's
tables; a write command migrates only the project's own ``mlm_`` tables (first use).

Every test starts from a database with no tables at all (or only some of the platform's) and
reads ``pg_tables`` afterwards.
"""

from __future__ import annotations

import pytest

from db import migrate, schema
from flows import cli


def _tables(db) -> list[str]:
    with db.connect_raw() as connection:
        rows = connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
        ).fetchall()
    return [r[0] for r in rows]


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def _recompute_tables_only(db) -> None:
    """A platform database with the tables the recompute uses (and those their foreign keys
    name), none of the platform's others."""
    wanted, todo = set(), [schema.metadata.tables[name] for name in ("users", "purchases", "bonuses", "rank_history", "monthly_stats")]
    while todo:
        table = todo.pop()
        if table not in wanted:
            wanted.add(table)
            todo += [key.column.table for key in table.foreign_keys]
    assert len(wanted) < len(schema.PLATFORM_TABLES)
    schema.metadata.create_all(db.engine, tables=list(wanted))


@pytest.mark.parametrize(
    "argv",
    [["audit", "--as-of", "2025-10-20T00:00:00Z"], ["run", "--dry-run", "--as-of", "2025-10-20T00:00:00Z"], ["runs"], ["show", "1"]],
    ids=["audit", "run --dry-run", "runs", "show"],
)
def test_a_read_only_command_on_an_empty_database_creates_nothing(empty_db, monkeypatch, capsys, tmp_path, argv):
    monkeypatch.setenv("MLM_DATABASE_URL", empty_db.uri)
    if argv[0] == "audit":
        argv = [*argv, "--out", str(tmp_path)]
    assert cli.main(argv) == cli.EXIT_USAGE
    line = _one_line(capsys)
    assert line.startswith("mlm-recompute: error: database ") and "no platform table users" in line, line
    assert "mlm-recompute demo-data" in line and "mlm-recompute db upgrade" in line, line
    assert _tables(empty_db) == []


def test_a_read_only_command_without_the_projects_migrations_creates_nothing(empty_db, monkeypatch, capsys, tmp_path):
    _recompute_tables_only(empty_db)
    before = _tables(empty_db)
    monkeypatch.setenv("MLM_DATABASE_URL", empty_db.uri)
    assert cli.main(["audit", "--out", str(tmp_path)]) == cli.EXIT_USAGE
    line = _one_line(capsys)
    assert "has no mlm_ tables; run mlm-recompute db upgrade first" in line, line
    assert _tables(empty_db) == before and not any(t.startswith("mlm_") for t in before)
    # what the line says works: db upgrade, then the read-only command reads
    assert cli.main(["db", "upgrade"]) == cli.EXIT_OK
    assert cli.main(["runs"]) == cli.EXIT_OK and "no runs recorded" in capsys.readouterr().out


def test_a_read_only_command_on_an_older_migration_is_told_to_upgrade(empty_db, monkeypatch, capsys):
    _recompute_tables_only(empty_db)
    migrate.upgrade(empty_db.engine, "0003")
    monkeypatch.setenv("MLM_DATABASE_URL", empty_db.uri)
    assert cli.main(["runs"]) == cli.EXIT_USAGE
    assert f"at migration 0003, this version needs {migrate.head_revision()}; run mlm-recompute db upgrade" in _one_line(capsys)
    assert migrate.current_revision(empty_db.engine) == "0003"


def test_a_write_command_never_creates_the_platforms_tables(empty_db, monkeypatch, capsys):
    monkeypatch.setenv("MLM_DATABASE_URL", empty_db.uri)
    assert cli.main(["run", "--as-of", "2100-01-01T00:00:00Z"]) == cli.EXIT_USAGE  # refused before the database
    assert "later than now" in _one_line(capsys)
    assert cli.main(["run", "--as-of", "2025-10-20T00:00:00Z"]) == cli.EXIT_USAGE
    assert "no platform table users" in _one_line(capsys)
    assert cli.main(["reopen", "--month", "2025-09", "--reason", "late refund"]) == cli.EXIT_USAGE
    assert "no platform table users" in _one_line(capsys)
    assert _tables(empty_db) == []


def test_a_write_command_migrates_only_the_projects_tables_on_first_use(empty_db, monkeypatch, capsys):
    _recompute_tables_only(empty_db)
    platform = _tables(empty_db)
    monkeypatch.setenv("MLM_DATABASE_URL", empty_db.uri)
    # an empty platform has no root: the run is refused as bad input, and recorded
    assert cli.main(["run", "--as-of", "2025-10-20T00:00:00Z"]) == cli.EXIT_BAD_INPUT
    tables = _tables(empty_db)
    assert [t for t in tables if not t.startswith("mlm_")] == platform  # options, projects, ... not created
    assert {"mlm_runs", "mlm_alembic_version"} <= set(tables)
    with empty_db.connect_raw() as connection:
        assert connection.execute("SELECT mode, status FROM mlm_runs").fetchall() == [("nightly", "refused")]


def test_the_prefect_flows_create_nothing_on_an_empty_database(empty_db, monkeypatch, prefect_server, tmp_path):
    from flows.audit import audit
    from flows.nightly import nightly
    from flows.periods import backfill, close

    monkeypatch.setenv("MLM_DATABASE_URL", empty_db.uri)
    with pytest.raises(migrate.SchemaNotReady, match="no platform table users"):
        audit(out_dir=str(tmp_path))
    with pytest.raises(migrate.SchemaNotReady, match="no platform table users"):
        backfill("2025-08", "2025-09", dry_run=True)
    with pytest.raises(migrate.SchemaNotReady, match="no platform table users"):
        close("2025-09")
    for dry_run in (True, False):
        with pytest.raises(migrate.SchemaNotReady, match="no platform table users"):
            nightly(dry_run=dry_run)
    assert _tables(empty_db) == []
