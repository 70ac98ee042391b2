"""Insert a scenario's small platform database (users and purchases as the scenario file has them).

A scenario names only what the recompute reads. The platform's schema requires more: every
purchase has an option (``"optionID"``, a foreign key) of a project, a pack quantity, and every
user NOT NULL ``"fullVolume"`` and ``"personalVolumeTotal"`` (the platform's Python default 0).
So each scenario database gets one project and one option, and the missing values are filled
the way the platform would fill them.

Scenarios of bad input hold rows the platform's constraints refuse (a purchase of a user that
does not exist): those are inserted with the foreign-key triggers off for the inserting
transaction (``session_replication_role = replica``, which needs a superuser, as the test
servers and the embedded server have), because the recompute must refuse them where a platform
database holds them anyway (a constraint added ``NOT VALID``, rows restored without it).
"""

from __future__ import annotations

import json

import psycopg

from db.connection import Database
from db.schema import FOREIGN_DOCUMENTS

JSON_COLUMNS = ("mlmStatus", "mlmVolumes", "totalVolume", *FOREIGN_DOCUMENTS)

# The one project and option every scenario purchase belongs to.
SCENARIO_PROJECT_ID = 1
SCENARIO_OPTION_ID = 1

USER_COLUMNS = ("userID", "telegramID", "upline", "rank", "createdAt", "fullVolume", "personalVolumeTotal", *JSON_COLUMNS)
PURCHASE_COLUMNS = ("purchaseID", "userID", "optionID", "projectID", "projectName", "packQty", "packPrice", "createdAt")


def _json_text(value):
    # An absent or null JSON column is SQL NULL, as the scenario format says.
    return None if value is None else json.dumps(value)


def _insert(table: str, columns: tuple[str, ...]) -> str:
    quoted = ", ".join(f'"{c}"' for c in columns)
    return f"INSERT INTO {table} ({quoted}) VALUES ({', '.join(['%s'] * len(columns))})"


def ensure_scenario_option(cursor: psycopg.Cursor) -> None:
    """The scenario project and its option, unless they are there already."""
    cursor.execute(
        """INSERT INTO projects (id, "projectID", lang, "projectName") SELECT 1, %s, 'en', 'Scenario project'
           WHERE NOT EXISTS (SELECT FROM projects WHERE "projectID" = %s)""",
        [SCENARIO_PROJECT_ID, SCENARIO_PROJECT_ID],
    )
    cursor.execute(
        """INSERT INTO options ("optionID", "projectID", "projectName", "packQty", "isActive") SELECT %s, %s, 'Scenario project', 1, true
           WHERE NOT EXISTS (SELECT FROM options WHERE "optionID" = %s)""",
        [SCENARIO_OPTION_ID, SCENARIO_PROJECT_ID, SCENARIO_OPTION_ID],
    )


def _user_row(user: dict) -> list:
    return [
        user["userID"],
        user["telegramID"],
        user.get("upline"),
        user.get("rank"),
        user.get("createdAt"),
        user.get("fullVolume", 0),
        user.get("personalVolumeTotal", 0),
        *(_json_text(user.get(c)) for c in JSON_COLUMNS),
    ]


def _purchase_row(purchase: dict) -> list:
    return [
        purchase["purchaseID"],
        purchase["userID"],
        SCENARIO_OPTION_ID,
        SCENARIO_PROJECT_ID,
        "Scenario project",
        1,
        purchase["packPrice"],
        purchase["createdAt"],
    ]


def insert_platform_rows(db: Database, users: list[dict], purchases: list[dict]) -> None:
    """Insert the users and purchases in one transaction (a handful of rows: plain INSERTs)."""
    with db.connect_raw() as connection, connection.transaction(), connection.cursor() as cursor:
        ensure_scenario_option(cursor)
        known = {u["userID"] for u in users}
        if any(p["userID"] not in known for p in purchases):
            # a purchase of an unknown user: bad input the recompute must see (module docstring)
            cursor.execute("SET LOCAL session_replication_role = replica")
        if users:
            cursor.executemany(_insert("users", USER_COLUMNS), [_user_row(u) for u in users])
        if purchases:
            cursor.executemany(_insert("purchases", PURCHASE_COLUMNS), [_purchase_row(p) for p in purchases])
