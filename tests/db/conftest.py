"""Fixtures of the database tests."""

import pytest

from db.scenario_data import insert_platform_rows
from tests.db.small_platform import PURCHASES, USERS


@pytest.fixture
def platform(db):
    """A fresh database holding the small platform of ``tests/db/small_platform.py``."""
    insert_platform_rows(db, USERS, PURCHASES)
    return db
