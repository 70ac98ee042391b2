"""A test database holding one scenario of tests/scenarios, and a fingerprint of every table (to
prove that a read-only command changed nothing)."""

from __future__ import annotations

from pathlib import Path

from db.scenario_data import insert_platform_rows
from flows.scenario import Scenario, read_scenario

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


def load_scenario(db, name: str) -> Scenario:
    scenario = read_scenario(SCENARIOS / f"{name}.json")
    insert_platform_rows(db, scenario.users, scenario.purchases)
    return scenario


def tables_fingerprint(db) -> dict[str, tuple[int, str]]:
    """Per table of the schema: its row count and an md5 of its rows' text, in order."""
    with db.connect_raw() as connection:
        names = [r[0] for r in connection.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1")]
        found = {}
        for name in names:  # one statement per table of a small test database
            found[name] = connection.execute(
                f'SELECT count(*), md5(coalesce(string_agg(t::text, chr(10) ORDER BY t::text), \'\')) FROM "{name}" AS t'
            ).fetchone()
        return found
