"""Shared fixtures: one PostgreSQL server per session, a fresh database per test.

The server is the embedded one unless ``MLM_TEST_DATABASE_URL`` names an external server (CI
runs the suite against both). Each test gets its own database cloned from a migrated template,
so tests never see each other's rows and never touch anyone's data.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest

from db import migrate
from db.connection import embedded_server, open_database, scratch_database, with_database_name

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")



@pytest.fixture(scope="session")
def server_uri():
    """URI of the PostgreSQL server the suite runs against (its maintenance database)."""
    external = os.environ.get("MLM_TEST_DATABASE_URL")
    if external:
        yield external
        return
    with tempfile.TemporaryDirectory(prefix="mlmtest") as tmp:
        with embedded_server(Path(tmp) / "pgdata", quiet=True) as uri:
            yield uri


@pytest.fixture(scope="session")
def template_name(server_uri):
    """A database holding the migrated schema, cloned for every test."""
    name = f"mlm_test_template_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_uri, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    db = open_database(with_database_name(server_uri, name))
    migrate.prepare(db.engine)
    db.engine.dispose()
    yield name
    with psycopg.connect(server_uri, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db(server_uri, template_name):
    """A fresh database with the platform's tables and the project's own, dropped afterwards."""
    with scratch_database(server_uri, prefix="mlm_test", template=template_name) as database:
        yield database


@pytest.fixture
def empty_db(server_uri):
    """A fresh database with no tables at all."""
    with scratch_database(server_uri, prefix="mlm_test_empty") as database:
        yield database


@pytest.fixture(scope="session")
def prefect_server():
    """One temporary Prefect server for the whole session (it takes ~10 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
