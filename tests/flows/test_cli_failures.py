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
