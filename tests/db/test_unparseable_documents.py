"""Documents PostgreSQL cannot parse, and errors on the extract's second connection."""

from __future__ import annotations

import pytest

from db import extract
from db.scenario_data import insert_platform_rows
from flows import cli
from tests.db.small_platform import PURCHASES, USERS


@pytest.fixture
def platform_env(db, monkeypatch):
    insert_platform_rows(db, USERS, PURCHASES)
    monkeypatch.setenv("MLM_DATABASE_URL", db.uri)
    monkeypatch.setenv("MLM_ROOT_TELEGRAM_ID", "9000")
    return db


def stored(db) -> list[tuple]:
    with db.connect_raw() as connection:
        return connection.execute('SELECT "userID", "mlmStatus"::text, "mlmVolumes"::text, "totalVolume"::text, rank FROM users ORDER BY 1').fetchall()


@pytest.mark.parametrize("column", ["mlmStatus", "mlmVolumes", "totalVolume"])
def test_an_escaped_nul_in_a_document_is_bad_input_naming_the_user(platform_env, capsys, column):
    with platform_env.connect_raw() as connection:
        connection.execute(f'UPDATE users SET "{column}" = %s::json WHERE "userID" = 3', ['{"note": "a\\u0000b", "hasPioneerBonus": true}'])
        # an escaped backslash before u0000 is ordinary text, which jsonb holds
        connection.execute(f'UPDATE users SET "{column}" = %s::json WHERE "userID" = 2', ['{"note": "a\\\\u0000b"}'])
    before = stored(platform_env)
    assert cli.main(["run", "--as-of", "2025-10-20T00:00:00Z", "--any-cut-off"]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "bad_document" in err and "(userID 3)" in err and f"{column} holds JSON text with an escaped NUL" in err
    assert "Traceback" not in err and "INVALID_STATE" not in err
    assert stored(platform_env) == before
    # quarantined, user 3 keeps its document and the others are written
    assert cli.main(["run", "--as-of", "2025-10-20T00:00:00Z", "--any-cut-off", "--quarantine"]) == 0
    after = stored(platform_env)
    assert after[2] == before[2] and after[1] != before[1]


def test_the_first_error_on_the_helper_connection_is_the_one_raised(platform_env):
    """A failed read on the second connection makes every later read there fail with
    "the connection is in an error state"; whichever the caller waits on, it gets the first."""
    with extract.snapshot(platform_env) as cursor, pytest.raises(Exception) as raised:
        with extract.helper_in_snapshot(platform_env, cursor) as helper:
            first = helper.submit(lambda c: c.execute("SELECT 1 / 0"))
            later = helper.submit(lambda c: c.execute("SELECT 1"))
            later.result()
    assert "division by zero" in str(raised.value)
    assert first.exception() is raised.value


def test_the_audit_counts_a_document_with_an_escaped_nul_as_not_an_object(platform_env, capsys, tmp_path):
    with platform_env.connect_raw() as connection:
        connection.execute(
            'UPDATE users SET "mlmStatus" = %s::json, "personalData" = %s::json WHERE "userID" = 3', ['{"note": "a\\u0000b"}', '{"x": "\\u0000"}']
        )
    assert cli.main(["audit", "--as-of", "2025-10-20T00:00:00Z", "--out", str(tmp_path)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")}
    assert "not an object 1" in lines["mlmStatus"] and "not an object 1" in lines["personalData"]
    report = next(tmp_path.glob("*.md")).read_text()
    assert "escaped NUL" in report
