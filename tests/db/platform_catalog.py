"""The catalog facts of the platform's tables in a database: what the schema test compares.

``platform_schema.json`` beside this file holds those facts as read from a database built from
the platform's dumped schema (``shared/platform/schema.sql``, made by the platform's own models).
A clone of this repository has no ``shared/``, so the facts travel with the tests; where
``shared/`` exists, a test checks that the copy still matches the dump.

Run ``python -m tests.db.platform_catalog URI`` to print the facts of the database at URI.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import psycopg

FACTS_FILE = Path(__file__).with_name("platform_schema.json")

_COLUMNS = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid)
FROM pg_attribute AS a JOIN pg_class AS c ON c.oid = a.attrelid
JOIN pg_namespace AS n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname = ANY(%(tables)s)
  AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY c.relname, a.attnum"""

_CONSTRAINTS = """
SELECT c.relname, k.conname, pg_get_constraintdef(k.oid)
FROM pg_constraint AS k JOIN pg_class AS c ON c.oid = k.conrelid
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relname = ANY(%(tables)s)
  AND k.contype <> 'n'  -- PostgreSQL 18 also lists NOT NULL here; attnotnull already says it
ORDER BY c.relname, k.conname"""

_INDEXES = """
SELECT tablename, indexname, indexdef FROM pg_indexes
WHERE schemaname = 'public' AND tablename = ANY(%(tables)s)
ORDER BY tablename, indexname"""

_TABLES = """
SELECT c.relname FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname NOT LIKE 'mlm\\_%%' ORDER BY 1"""


def platform_table_names(connection: psycopg.Connection) -> list[str]:
    """The tables in ``public`` that are not the project's own (``mlm_``)."""
    return [name for (name,) in connection.execute(_TABLES)]


def catalog_facts(connection: psycopg.Connection, tables: list[str] | None = None) -> dict:
    """Per table: its columns (name, type, NOT NULL, default), constraints and indexes, by name.

    Index definitions name the schema (``public.users``), the same on every server."""
    tables = platform_table_names(connection) if tables is None else tables
    facts: dict = {table: {"columns": [], "constraints": {}, "indexes": {}} for table in tables}
    params = {"tables": tables}
    for table, column, type_, not_null, default in connection.execute(_COLUMNS, params):
        facts[table]["columns"].append({"name": column, "type": type_, "not_null": not_null, "default": default})
    for table, name, definition in connection.execute(_CONSTRAINTS, params):
        facts[table]["constraints"][name] = definition
    for table, name, definition in connection.execute(_INDEXES, params):
        facts[table]["indexes"][name] = definition
    return facts


def recorded_facts() -> dict:
    """The platform's catalog facts as recorded from its dumped schema."""
    return json.loads(FACTS_FILE.read_text())


if __name__ == "__main__":
    with psycopg.connect(sys.argv[1]) as connection:
        print(json.dumps(catalog_facts(connection), indent=1, sort_keys=True))
