"""Read stored state back from the database, for scenarios, tests and verification."""

from __future__ import annotations

import json
from decimal import Decimal

import psycopg

from db.connection import Database
from db.schema import FOREIGN_DOCUMENTS, OWNED_USER_COLUMNS

_NAMES = ("userID", "telegramID", "upline", *OWNED_USER_COLUMNS, *FOREIGN_DOCUMENTS)
_JSON = {"mlmStatus", "mlmVolumes", "totalVolume", *FOREIGN_DOCUMENTS}
_TEXT = {"fullVolume", "teamVolumeTotal", "personalVolumeTotal", *_JSON}  # read as text: exact money, raw JSON
_USER_COLUMNS = ", ".join(f'"{n}"::text' if n in _TEXT else f'"{n}"' for n in _NAMES)


def _value(name: str, value):
    if value is None:
        return None
    if name in _JSON:
        return json.loads(value, parse_float=Decimal)  # money stays exact
    return value


def stored_users(db: Database) -> dict[int, dict]:
    """Every user's stored MLM columns and JSON documents, by userID (JSON parsed, money exact)."""
    with db.connect_raw() as connection:
        rows = connection.execute(f'SELECT {_USER_COLUMNS} FROM users ORDER BY "userID"').fetchall()
    return {row[0]: {name: _value(name, v) for name, v in zip(_NAMES, row)} for row in rows}


def snapshot_rows(db: Database, period: str) -> dict[int, dict]:
    """The period's snapshot rows by user_id."""
    with db.connect_raw() as connection:
        cursor = connection.execute("SELECT * FROM mlm_period_snapshots WHERE period = %s", [period])
        names = [c.name for c in cursor.description]
        return {row[names.index("user_id")]: dict(zip(names, row)) for row in cursor.fetchall()}


def table_fingerprints(db: Database, tables: list[str]) -> dict[str, str]:
    """A digest of every row of each table: equal digests mean the table did not change."""
    digests = {}
    with db.connect_raw() as connection:
        for table in tables:
            digests[table] = connection.execute(
                psycopg.sql.SQL("SELECT count(*)::text || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM {} AS t").format(
                    psycopg.sql.Identifier(table)
                )
            ).fetchone()[0]
    return digests
