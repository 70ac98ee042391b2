"""Shared fixtures: one PostgreSQL server per session, a fresh database per test.

The server is the embedded one unless ``MLM_TEST_DATABASE_URL`` names an external server (CI
runs the suite against both). Each test gets its own database cloned from a migrated template,
so tests never see each other's rows and never touch anyone's data.
"""

from __future__ import annotations

import os
import random
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest
from hypothesis import Phase
from hypothesis import settings as hypothesis_settings

from db import migrate
from db.connection import embedded_server, open_database, scratch_database, with_database_name

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

# Hypothesis, reproducibly: the "ci" profile (the default, so the README's test command and
# .ci/run use it) derandomizes, seeding each test from its own source, so a red run is red again
# on any machine, and prints the failing example's reproduction blob. HYPOTHESIS_PROFILE=explore
# draws new examples each run from one seed that pytest's header prints (pass it back with
# --hypothesis-seed to replay the run) and keeps failures in .hypothesis/ to replay them first.
HYPOTHESIS_PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
hypothesis_settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
hypothesis_settings.register_profile("explore", derandomize=False, print_blob=True)
# bench.mutation's: the ci profile without shrinking. A mutant is killed by the first failing
# example; shrinking it (re-running whole recomputes for minutes) would only make it smaller.
hypothesis_settings.register_profile("mutation", derandomize=True, database=None, phases=[Phase.explicit, Phase.generate])
hypothesis_settings.load_profile(HYPOTHESIS_PROFILE)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """An exploring run's seed, chosen before Hypothesis's plugin reads it, so it can be printed."""
    if HYPOTHESIS_PROFILE != "ci" and config.getoption("hypothesis_seed", None) is None:
        config.option.hypothesis_seed = random.SystemRandom().randrange(2**32)


def pytest_report_header(config):
    seed = config.getoption("hypothesis_seed", None)
    if HYPOTHESIS_PROFILE == "ci":
        return "hypothesis: derandomized (profile ci); a failure prints its @reproduce_failure blob"
    return f"hypothesis: profile {HYPOTHESIS_PROFILE}, seed {seed} (replay with --hypothesis-seed={seed})"


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
    """A database holding the migrated schema, cloned for every test. ``MLM_TEST_TEMPLATE`` names
    one to reuse instead (``python -m bench.mutation`` migrates one for all its test sessions)."""
    reused = os.environ.get("MLM_TEST_TEMPLATE")
    if reused:
        yield reused
        return
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
