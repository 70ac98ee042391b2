"""The schema: created where missing, idempotent, at home in a platform database that has more."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from db import migrate, schema


def _tables(db) -> set[str]:
    return set(sa.inspect(db.engine).get_table_names())


def _column_types(db, table: str) -> dict[str, str]:
    return {c["name"]: str(c["type"]) for c in sa.inspect(db.engine).get_columns(table)}


def test_prepare_creates_everything_and_is_idempotent(empty_db):
    migrate.prepare(empty_db.engine)
    first = _tables(empty_db)
    migrate.prepare(empty_db.engine)  # a second time changes nothing and does not fail
    assert _tables(empty_db) == first
    assert {t.name for t in schema.PLATFORM_TABLES + schema.OWN_TABLES + schema.MEMO_TABLES} <= first
    assert "mlm_alembic_version" in first and "alembic_version" not in first
    assert migrate.current_revision(empty_db.engine) == "0004"
    # The platform's JSON columns are json, as on the platform.
    assert _column_types(empty_db, "users")["mlmStatus"] == "JSON"


def test_existing_platform_tables_are_left_as_they_are(empty_db):
    # A platform database: users with extra columns and jsonb documents, and its own alembic table.
    with empty_db.engine.begin() as c:
        c.execute(sa.text('CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)'))
        c.execute(sa.text("INSERT INTO alembic_version VALUES ('platform_head')"))
        c.execute(
            sa.text(
                '''CREATE TABLE users ("userID" serial PRIMARY KEY, "telegramID" bigint UNIQUE NOT NULL,
                   "upline" bigint, "rank" varchar(50) DEFAULT 'start', "isActive" boolean DEFAULT false,
                   "fullVolume" numeric(15,2), "teamVolumeTotal" numeric(12,2), "personalVolumeTotal" numeric(12,2),
                   "mlmStatus" jsonb, "mlmVolumes" jsonb, "totalVolume" jsonb, "personalData" jsonb,
                   "emailVerification" jsonb, "settings" jsonb, "createdAt" timestamp,
                   "balancePassive" numeric(12,2), "lang" varchar(5))'''
            )
        )
        c.execute(sa.text('''INSERT INTO users ("telegramID", "upline", "lang") VALUES (1, 1, 'ru')'''))
    migrate.prepare(empty_db.engine)
    migrate.prepare(empty_db.engine)
    types = _column_types(empty_db, "users")
    assert types["mlmStatus"] == "JSONB" and "lang" in types and "balancePassive" in types
    with empty_db.engine.connect() as c:
        assert c.execute(sa.text('SELECT "lang" FROM users')).scalar() == "ru"
        assert c.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "platform_head"
    assert {"purchases", "rank_history", "monthly_stats", "mlm_runs"} <= _tables(empty_db)


def test_migrations_build_what_the_schema_declares(db):
    # The frozen migration and the Core declarations must not drift apart.
    with db.engine.connect() as c:
        context = MigrationContext.configure(c, opts={"include_object": _own_tables_only})
        diff = compare_metadata(context, schema.metadata)
    assert diff == []


def _own_tables_only(obj, name, type_, reflected, compare_to):
    if type_ == "table":
        return name.startswith("mlm_") and name != "mlm_alembic_version"
    return True
