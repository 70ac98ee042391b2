"""Which database errors a task retries, for the extract's driver (ADBC) as for the write's
(psycopg), and a connection that really drops in the middle of a Prefect run's extract."""

from __future__ import annotations

import adbc_driver_postgresql.dbapi as adbc
import psycopg
import pytest
import sqlalchemy as sa
from prefect.states import Failed

from db import readback
from db.connection import open_database
from db.scenario_data import insert_platform_rows
from flows.tasks import transient_database_error
from tests.db.small_platform import AS_OF, PURCHASES, ROOT, USERS
from tests.tcp_proxy import TcpProxy

# SQLSTATEs raised on purpose, and whether another attempt may succeed (psycopg's classes).
RAISED = {
    "40001": True,  # serialization failure
    "40P01": True,  # deadlock detected
    "57P01": True,  # admin shutdown: the server is restarting
    "53300": True,  # too many connections
    "22012": False,  # division by zero
    "23505": False,  # unique violation
    "P0001": False,  # an exception raised by a function
}


def is_transient(error: BaseException) -> bool:
    """Whether the tasks' retry condition retries a task that failed with ``error``."""
    return transient_database_error(None, None, Failed(data=error))


def _raise(sqlstate: str) -> str:
    return f"DO $$BEGIN RAISE EXCEPTION 'raised %', '{sqlstate}' USING ERRCODE = '{sqlstate}'; END$$"


def _adbc_error(uri: str, statement: str) -> BaseException:
    with adbc.connect(uri) as connection, connection.cursor() as cursor:
        with pytest.raises(Exception) as raised:
            cursor.execute(statement)
            cursor.fetchall()
        connection.rollback()
    return raised.value


def _psycopg_error(uri: str, statement: str) -> BaseException:
    with psycopg.connect(uri, autocommit=True) as connection:
        with pytest.raises(Exception) as raised:
            connection.execute(statement)
    return raised.value


@pytest.mark.parametrize("sqlstate, transient", RAISED.items())
def test_adbc_errors_are_classified_as_psycopg_classifies_their_sqlstate(db, sqlstate, transient):
    adbc_error, psycopg_error = _adbc_error(db.uri, _raise(sqlstate)), _psycopg_error(db.uri, _raise(sqlstate))
    assert adbc_error.sqlstate == psycopg_error.sqlstate == sqlstate
    assert is_transient(adbc_error) is is_transient(psycopg_error) is transient


def test_a_syntax_error_is_not_transient_for_either_driver(db):
    assert not is_transient(_adbc_error(db.uri, "SELEC 1"))
    assert not is_transient(_psycopg_error(db.uri, "SELEC 1"))


def test_a_dropped_or_refused_connection_is_transient_for_every_driver(db):
    with TcpProxy(db.uri) as proxy:
        via_adbc = adbc.connect(proxy.uri)
        via_psycopg = psycopg.connect(proxy.uri, autocommit=True)
        engine = open_database(proxy.uri).engine
        with engine.connect() as via_sqlalchemy:
            proxy.go_down()  # every connection dropped, every new one closed at once
            with pytest.raises(Exception) as dropped_adbc, via_adbc.cursor() as cursor:
                cursor.execute("SELECT 1")
            with pytest.raises(Exception) as dropped_psycopg:
                via_psycopg.execute("SELECT 1")
            with pytest.raises(sa.exc.DBAPIError) as dropped_sqlalchemy:
                via_sqlalchemy.execute(sa.text("SELECT 1"))
        with pytest.raises(Exception) as refused_adbc:
            adbc.connect(proxy.uri)
        engine.dispose()
    assert dropped_adbc.value.sqlstate is None  # below SQL: libpq lost the connection
    for error in (dropped_adbc.value, dropped_psycopg.value, dropped_sqlalchemy.value, refused_adbc.value):
        assert is_transient(error), repr(error)


def test_a_connection_dropped_mid_extract_is_retried_and_the_run_succeeds(db, prefect_server, monkeypatch):
    # The extract's connection drops as it sends the month sums (its first read of purchases):
    # the extract task fails with ADBC's error, retries, and the run writes and verifies.
    from flows.nightly import nightly

    insert_platform_rows(db, USERS, PURCHASES)
    with TcpProxy(db.uri, cut_on=b"bit_xor(") as proxy:
        monkeypatch.setenv("MLM_DATABASE_URL", proxy.uri)
        monkeypatch.setenv("MLM_ROOT_TELEGRAM_ID", str(ROOT))
        summary = nightly(as_of=AS_OF)
        assert proxy.cut_count == 1
    assert summary["verified"] is True and summary["users_written"] == 3
    with db.connect_raw() as c:
        assert c.execute("SELECT status, verified, users_changed FROM mlm_runs").fetchall() == [("succeeded", True, 3)]
    stored = readback.stored_users(db)
    assert stored[3]["mlmStatus"]["hasPioneerBonus"] is True and stored[2]["mlmStatus"]["isFounder"] is True
