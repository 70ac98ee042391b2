"""A database that cannot be reached is one line, naming the server (never the password), and
exit code 5; ``--debug`` shows the traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from db.connection import with_database_name
from flows.failures import EXIT_DATABASE


def _runs(url: str, *flags: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLM_DATABASE_URL": url}
    return subprocess.run([sys.executable, "-m", "flows.cli", *flags, "runs"], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "url, said",
    [
        ("postgresql://bob:s3cret-pw@127.0.0.1:1/platform", ["127.0.0.1:1", "database platform as bob", "refused"]),
        ("mysql://bob:s3cret-pw@127.0.0.1/platform", ["postgresql:// URL", "'mysql'"]),
    ],
    ids=["nothing listens on the port", "not a PostgreSQL URL"],
)
def test_an_unreachable_or_misconfigured_database_is_one_line_and_exit_5(url, said):
    done = _runs(url)
    assert done.returncode == EXIT_DATABASE
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlm-recompute: database error"), done.stderr
    assert all(text in lines[0] for text in said), lines[0]
    assert "s3cret-pw" not in done.stderr + done.stdout and "Traceback" not in done.stderr


def test_a_database_that_does_not_exist_is_named(server_uri):
    done = _runs(with_database_name(server_uri, "no_such_platform_db"))
    assert done.returncode == EXIT_DATABASE
    assert len(done.stderr.strip().splitlines()) == 1 and "no_such_platform_db" in done.stderr, done.stderr


def test_debug_shows_the_traceback():
    done = _runs("postgresql://bob:s3cret-pw@127.0.0.1:1/platform", "--debug")
    assert done.returncode == 1 and "Traceback" in done.stderr


def test_a_nightly_cut_off_later_than_now_is_refused_unless_meant(db, monkeypatch, capsys):
    from flows import cli

    monkeypatch.setenv("MLM_DATABASE_URL", db.uri)
    assert cli.main(["run", "--as-of", "2100-01-01T00:00:00Z"]) == cli.EXIT_USAGE
    assert "later than now" in capsys.readouterr().err
    # meant: it goes on (and this empty platform has no root to compute from)
    assert cli.main(["run", "--as-of", "2100-01-01T00:00:00Z", "--any-cut-off"]) == cli.EXIT_BAD_INPUT


def test_a_nightly_cut_off_before_the_newest_closed_month_ends_is_refused(db, monkeypatch, capsys):
    from flows import cli

    with db.connect_raw() as c:
        c.execute("INSERT INTO mlm_periods (period, is_closed) VALUES ('2025-09', true), ('2025-10', true)")
    monkeypatch.setenv("MLM_DATABASE_URL", db.uri)
    assert cli.main(["run", "--as-of", "0001-01-01T00:00:00Z"]) == cli.EXIT_USAGE
    assert "before the end of 2025-10, the newest closed month" in capsys.readouterr().err
    assert cli.main(["run", "--as-of", "2025-10-31T23:00:00Z"]) == cli.EXIT_USAGE
    assert cli.main(["run", "--as-of", "2025-11-01T00:00:00Z"]) == cli.EXIT_BAD_INPUT  # allowed: no root here
    with db.connect_raw() as c:
        assert c.execute("SELECT count(*) FROM users").fetchone()[0] == 0


def test_a_data_folder_that_is_not_postgresqls_is_one_line(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "holiday.jpg").write_text("not a database")
    env = {k: v for k, v in os.environ.items() if k != "MLM_DATABASE_URL"}
    done = subprocess.run([sys.executable, "-m", "flows.cli", "runs"], env={**env, "MLM_DATA_DIR": str(folder)}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "is not empty and is not a PostgreSQL data folder" in lines[0] and "Traceback" not in done.stderr
    assert [p.name for p in folder.iterdir()] == ["holiday.jpg"]  # nothing written there
