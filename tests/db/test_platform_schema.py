"""The platform's tables as the project creates them are the platform's own, column for column.

The facts compared (``platform_schema.json``) were read from a database built from the
platform's dumped schema; where ``shared/platform/schema.sql`` is beside the repository, the
copy is checked against it too.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from db import migrate, platform_schema
from tests.db.platform_catalog import catalog_facts, recorded_facts

DUMP = Path(__file__).resolve().parents[3] / "shared" / "platform" / "schema.sql"


def _differences(got: dict, want: dict) -> list[str]:
    """What differs, one line per table and kind, so a failure names the column or index."""
    lines = [f"table {t}: {'missing' if t in want else 'not the platform’s'}" for t in sorted(set(got) ^ set(want))]
    for table in sorted(set(got) & set(want)):
        columns_got = {c["name"]: c for c in got[table]["columns"]}
        columns_want = {c["name"]: c for c in want[table]["columns"]}
        for name in sorted(set(columns_got) | set(columns_want)):
            if columns_got.get(name) != columns_want.get(name):
                lines.append(f"{table}.{name}: created {columns_got.get(name)}, platform {columns_want.get(name)}")
        if [c["name"] for c in got[table]["columns"]] != [c["name"] for c in want[table]["columns"]]:
            lines.append(f"{table}: columns in another order")
        for kind in ("constraints", "indexes"):
            for name in sorted(set(got[table][kind]) | set(want[table][kind])):
                if got[table][kind].get(name) != want[table][kind].get(name):
                    lines.append(f"{table} {kind[:-1]} {name}: created {got[table][kind].get(name)!r}, platform {want[table][kind].get(name)!r}")
    return lines


def test_created_platform_tables_are_the_platforms(empty_db):
    migrate.prepare(empty_db.engine)
    with psycopg.connect(empty_db.uri) as connection:
        created = catalog_facts(connection)
    assert _differences(created, recorded_facts()) == []
    assert len(created) == len(platform_schema.PLATFORM_TABLES) == 17


def test_the_comparison_sees_a_column_an_index_and_not_null(empty_db):
    # The check above must be able to fail: change one of each and it names them.
    migrate.prepare(empty_db.engine)
    with psycopg.connect(empty_db.uri, autocommit=True) as connection:
        connection.execute('CREATE INDEX ix_purchases_user ON purchases ("userID")')
        connection.execute('ALTER TABLE purchases ALTER COLUMN "optionID" DROP NOT NULL')
        connection.execute("ALTER TABLE users ADD COLUMN username varchar(255)")
        connection.execute("""ALTER TABLE users ALTER COLUMN "rank" SET DEFAULT 'start'""")
        lines = _differences(catalog_facts(connection), recorded_facts())
    assert any("ix_purchases_user" in line for line in lines)
    assert any(line.startswith("purchases.optionID:") for line in lines)
    assert any(line.startswith("users.username:") for line in lines)
    assert any(line.startswith("users.rank:") for line in lines)


@pytest.mark.skipif(not DUMP.exists(), reason="no shared/platform/schema.sql beside this clone")
def test_recorded_facts_match_the_platforms_dump(empty_db):
    with psycopg.connect(empty_db.uri, autocommit=True) as connection:
        connection.execute(DUMP.read_text())
    with psycopg.connect(empty_db.uri) as connection:
        assert _differences(catalog_facts(connection), recorded_facts()) == []
