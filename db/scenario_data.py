"""Insert a scenario's small platform database (users and purchases as the scenario file has them)."""

from __future__ import annotations

import json

from db.connection import Database
from db.schema import FOREIGN_DOCUMENTS

JSON_COLUMNS = ("mlmStatus", "mlmVolumes", "totalVolume", *FOREIGN_DOCUMENTS)


def _json_text(value):
    # An absent or null JSON column is SQL NULL, as the scenario format says.
    return None if value is None else json.dumps(value)


def insert_platform_rows(db: Database, users: list[dict], purchases: list[dict]) -> None:
    """Insert the users and purchases in one transaction (a handful of rows: plain INSERTs)."""
    user_columns = ["userID", "telegramID", "upline", "rank", "createdAt", *JSON_COLUMNS]
    user_rows = [
        [u["userID"], u["telegramID"], u.get("upline"), u.get("rank"), u.get("createdAt"), *(_json_text(u.get(c)) for c in JSON_COLUMNS)]
        for u in users
    ]
    purchase_rows = [[p["purchaseID"], p["userID"], p["packPrice"], p["createdAt"]] for p in purchases]
    quoted = ", ".join(f'"{c}"' for c in user_columns)
    with db.connect_raw() as connection, connection.transaction(), connection.cursor() as cursor:
        if user_rows:
            cursor.executemany(
                f"INSERT INTO users ({quoted}) VALUES ({', '.join(['%s'] * len(user_columns))})", user_rows
            )
        if purchase_rows:
            cursor.executemany(
                'INSERT INTO purchases ("purchaseID", "userID", "packPrice", "createdAt") VALUES (%s, %s, %s, %s)',
                purchase_rows,
            )
