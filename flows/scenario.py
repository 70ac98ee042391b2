"""Scenario files: a small platform database, run parameters, and what must hold afterwards.

The format is specified in ``shared/scenarios/README.md``. A scenario is loaded into a new,
empty database (never the operator's), the nightly recompute runs on it, and every expectation is
checked against what is read back **from the database**.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from db import migrate, readback
from db.connection import Database, scratch_database
from db.scenario_data import JSON_COLUMNS, insert_platform_rows
from db.schema import OWN_TABLES, PLATFORM_TABLES
from flows.config import load_plan
from flows.pipeline import run_period
from transforms.problems import KINDS, InputRejected
from transforms.recompute import period_of


class ScenarioFileError(ValueError):
    """The scenario file itself is malformed; the message says where."""


@dataclass(frozen=True)
class Scenario:
    name: str
    path: Path
    as_of: datetime
    root_telegram_id: int | None
    plan: dict
    users: list[dict]
    purchases: list[dict]
    expect: dict[int, dict] | None
    expect_error: dict | None


@dataclass
class ScenarioResult:
    scenario: Scenario
    checks: list[tuple[bool, str]] = field(default_factory=list)
    stored: dict[int, dict] = field(default_factory=dict)
    error: str | None = None

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(ok for ok, _ in self.checks)

    def check(self, ok: bool, text: str) -> None:
        self.checks.append((ok, text))


_USER_EXPECTATIONS = {
    "personalVolumeTotal", "fullVolume", "rank", "isActive", "monthlyPV", "personalTotal", "lastActiveMonth",
    "rankQualifiedAt", "activePartners", "totalVolume", "pioneer", "pioneerPurchasesCount",
    "personalData", "emailVerification", "settings",
}  # fmt: skip
_SUFFIXED = re.compile(r"^(?P<column>\w+)_(?P<what>preserved|absent_keys)$")
_MONEY = re.compile(r"^-?\d+\.\d{2}$")


def _require(condition: bool, path: Path, where: str, message: str) -> None:
    if not condition:
        raise ScenarioFileError(f"{path}: {where}: {message}")


def parse_instant(text: str) -> datetime:
    """An ISO instant; ``Z`` or an offset, or naive meaning UTC."""
    instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return instant.replace(tzinfo=timezone.utc) if instant.tzinfo is None else instant.astimezone(timezone.utc)


def read_scenario(path: Path | str) -> Scenario:
    """A scenario file, checked for shape; malformed files are refused naming the place."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ScenarioFileError(f"{path}: no such file") from None
    except json.JSONDecodeError as error:
        raise ScenarioFileError(f"{path}: not valid JSON: {error}") from None
    _require(isinstance(data, dict), path, "top level", "must be a JSON object")
    for key in ("as_of", "users", "purchases"):
        _require(key in data, path, key, "is required")
    _require(("expect" in data) != ("expect_error" in data), path, "expect", "give exactly one of expect and expect_error")
    try:
        as_of = parse_instant(data["as_of"])
    except (TypeError, ValueError):
        raise ScenarioFileError(f"{path}: as_of: not an ISO instant: {data['as_of']!r}") from None
    users, purchases = data["users"], data["purchases"]
    _require(isinstance(users, list), path, "users", "must be a list")
    _require(isinstance(purchases, list), path, "purchases", "must be a list")
    for i, user in enumerate(users):
        where = f"users[{i}]"
        _require(isinstance(user, dict), path, where, "must be an object")
        for key in ("userID", "telegramID"):
            _require(isinstance(user.get(key), int), path, f"{where}.{key}", "must be an integer")
        _require("upline" in user, path, f"{where}.upline", "is required (null if none)")
        unknown = set(user) - {"userID", "telegramID", "upline", "rank", "createdAt", *JSON_COLUMNS}
        _require(not unknown, path, where, f"unknown column(s) {sorted(unknown)}")
    for i, purchase in enumerate(purchases):
        where = f"purchases[{i}]"
        _require(isinstance(purchase, dict), path, where, "must be an object")
        _require(isinstance(purchase.get("purchaseID"), int), path, f"{where}.purchaseID", "must be an integer")
        _require(isinstance(purchase.get("userID"), int), path, f"{where}.userID", "must be an integer")
        price = purchase.get("packPrice")
        _require(price is None or isinstance(price, str), path, f"{where}.packPrice", "must be a decimal string or null")
        if price is not None:
            try:
                Decimal(price)
            except InvalidOperation:
                raise ScenarioFileError(f"{path}: {where}.packPrice: not a decimal: {price!r}") from None
        _require("createdAt" in purchase, path, f"{where}.createdAt", "is required")
    expect = None
    if "expect" in data:
        _require(isinstance(data["expect"], dict) and data["expect"], path, "expect", "must be a non-empty object")
        expect = {}
        for user_id, wanted in data["expect"].items():
            _require(user_id.isdigit(), path, f"expect.{user_id}", "keys are userIDs")
            _require(isinstance(wanted, dict), path, f"expect.{user_id}", "must be an object")
            for key in wanted:
                known = key in _USER_EXPECTATIONS or (_SUFFIXED.match(key) and _SUFFIXED.match(key)["column"] in JSON_COLUMNS)
                _require(bool(known), path, f"expect.{user_id}.{key}", "is not an expectation this format knows")
            expect[int(user_id)] = wanted
    expect_error = data.get("expect_error")
    if expect_error is not None:
        _require(isinstance(expect_error, dict), path, "expect_error", "must be an object")
        _require(expect_error.get("kind") in KINDS, path, "expect_error.kind", f"must be one of {sorted(KINDS)}")
        _require(isinstance(expect_error.get("ids"), list), path, "expect_error.ids", "must be a list")
    plan = data.get("plan") or {}
    _require(isinstance(plan, dict), path, "plan", "must be an object")
    root = data.get("root_telegram_id")
    _require(root is None or isinstance(root, int), path, "root_telegram_id", "must be an integer")
    return Scenario(
        name=data.get("name") or path.stem,
        path=path,
        as_of=as_of,
        root_telegram_id=root,
        plan=plan,
        users=users,
        purchases=purchases,
        expect=expect,
        expect_error=expect_error,
    )


# --- comparing ----------------------------------------------------------------------------


def _money(value: Any) -> str | None:
    try:
        return str(Decimal(str(value)).quantize(Decimal("0.01")))
    except (InvalidOperation, ValueError):
        return None


def same(expected: Any, actual: Any) -> bool:
    """Equal as the scenario format means it: money (``"12.50"``) exactly, whatever JSON type holds it."""
    if isinstance(expected, str) and _MONEY.match(expected):
        return actual is not None and not isinstance(actual, bool) and _money(actual) == expected
    if isinstance(expected, dict):
        return isinstance(actual, dict) and expected.keys() == actual.keys() and all(same(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(expected) == len(actual) and all(map(same, expected, actual))
    if isinstance(expected, bool) or expected is None:
        return actual is expected or actual == expected and type(actual) is type(expected)
    if isinstance(expected, (int, float)):
        return not isinstance(actual, bool) and isinstance(actual, (int, float, Decimal)) and Decimal(str(actual)) == Decimal(str(expected))
    return expected == actual


def _doc(user: dict, column: str) -> dict:
    value = user.get(column)
    return value if isinstance(value, dict) else {}


def check_user(result: ScenarioResult, user_id: int, wanted: dict, stored: dict, snapshot: dict | None) -> None:
    """Check every expectation about one user against what the database holds."""
    label = f"user {user_id}"
    if stored is None:
        result.check(False, f"{label}: not in the database")
        return
    status, volumes, total = _doc(stored, "mlmStatus"), _doc(stored, "mlmVolumes"), _doc(stored, "totalVolume")
    for key, expected in wanted.items():
        if key in ("personalVolumeTotal", "fullVolume", "rank", "isActive", "personalData", "emailVerification", "settings"):
            actual = stored.get(key)
            result.check(same(expected, actual), f"{label} {key}: expected {expected!r}, stored {actual!r}")
        elif key in ("monthlyPV", "personalTotal"):
            actual = volumes.get(key)
            result.check(same(expected, actual), f"{label} mlmVolumes.{key}: expected {expected!r}, stored {actual!r}")
        elif key in ("lastActiveMonth", "rankQualifiedAt", "pioneerPurchasesCount"):
            actual = status.get(key)
            result.check(same(expected, actual), f"{label} mlmStatus.{key}: expected {expected!r}, stored {actual!r}")
        elif key == "activePartners":
            actual = None if snapshot is None else snapshot["active_partners"]
            result.check(same(expected, actual), f"{label} activePartners (period snapshot): expected {expected!r}, stored {actual!r}")
        elif key == "totalVolume":
            _check_total_volume(result, label, expected, total)
        elif key == "pioneer":
            _check_pioneer(result, label, expected, status)
        else:
            match = _SUFFIXED.match(key)
            document = _doc(stored, match["column"])
            if match["what"] == "preserved":
                for name, value in expected.items():
                    result.check(
                        name in document and same(value, document[name]),
                        f"{label} {match['column']}.{name} preserved: expected {value!r}, stored {document.get(name, '<absent>')!r}",
                    )
            else:
                for name in expected:
                    result.check(name not in document, f"{label} {match['column']}.{name} absent: stored {document.get(name)!r}")


def _check_total_volume(result: ScenarioResult, label: str, expected: dict, total: dict) -> None:
    for name, value in expected.items():
        if name == "branches":
            stored = total.get("branches")
            ok = isinstance(stored, list) and len(stored) == len(value)
            ok = ok and all(all(same(v, got.get(k)) for k, v in want.items()) for want, got in zip(value, stored))
            result.check(ok, f"{label} totalVolume.branches: expected {value!r}, stored {stored!r}")
        else:
            result.check(same(value, total.get(name)), f"{label} totalVolume.{name}: expected {value!r}, stored {total.get(name)!r}")


_PIONEER_KEYS = {"number": "pioneerNumber", "purchaseId": "pioneerPurchaseId", "grantedAt": "pioneerGrantedAt"}


def _check_pioneer(result: ScenarioResult, label: str, expected: dict | None, status: dict) -> None:
    has = status.get("hasPioneerBonus") is True
    if expected is None:
        result.check(not has, f"{label}: expected no pioneer, stored hasPioneerBonus={status.get('hasPioneerBonus')!r}")
        return
    result.check(has, f"{label}: expected a pioneer, stored hasPioneerBonus={status.get('hasPioneerBonus')!r}")
    for name, value in expected.items():
        stored_key = _PIONEER_KEYS[name]
        result.check(same(value, status.get(stored_key)), f"{label} mlmStatus.{stored_key}: expected {value!r}, stored {status.get(stored_key)!r}")


# --- running --------------------------------------------------------------------------------

# The ledger records a refused run on purpose (an operator must see refusals); every other table
# must be exactly as it was.
_UNCHANGED_ON_REFUSAL = [t.name for t in PLATFORM_TABLES] + [t.name for t in OWN_TABLES if t.name != "mlm_runs"]


def run_in(db: Database, scenario: Scenario, plan_path: Path | None = None) -> ScenarioResult:
    """Load ``scenario`` into ``db`` (migrated, empty), run the nightly recompute, check, return."""
    result = ScenarioResult(scenario)
    plan = (load_plan(plan_path) if plan_path else load_plan()).with_overrides(scenario.plan)
    insert_platform_rows(db, scenario.users, scenario.purchases)
    before = readback.table_fingerprints(db, _UNCHANGED_ON_REFUSAL)
    period = period_of(scenario.as_of)
    try:
        run_period(db, plan, as_of=scenario.as_of, period=period, root_telegram_id=scenario.root_telegram_id)
    except InputRejected as rejected:
        result.error = str(rejected)
        if scenario.expect_error is None:
            result.check(False, f"run refused unexpectedly: {rejected}")
        else:
            _check_refusal(result, scenario.expect_error, rejected)
            after = readback.table_fingerprints(db, _UNCHANGED_ON_REFUSAL)
            changed = [t for t in before if before[t] != after[t]]
            result.check(not changed, f"nothing written on refusal (changed tables: {changed or 'none'})")
    else:
        if scenario.expect_error is not None:
            result.check(False, f"expected the run to refuse with {scenario.expect_error['kind']}, but it succeeded")
    result.stored = readback.stored_users(db)
    if scenario.expect is not None and result.error is None:
        snapshots = readback.snapshot_rows(db, period)
        for user_id, wanted in scenario.expect.items():
            check_user(result, user_id, wanted, result.stored.get(user_id), snapshots.get(user_id))
    return result


def _check_refusal(result: ScenarioResult, wanted: dict, rejected: InputRejected) -> None:
    kind, ids = wanted["kind"], sorted(wanted["ids"])
    matching = [p for p in rejected.problems if p.kind == kind]
    result.check(bool(matching), f"refused with kind {kind!r} (got {sorted(rejected.kinds())})")
    if matching:
        got = sorted(matching[0].ids)
        result.check(got == ids, f"offending ids of {kind}: expected {ids}, reported {got}")
        text = str(rejected)
        result.check(all(str(i) in text for i in ids), f"the error names every offending id {ids}")


def run_scenario(server: str, scenario: Scenario, plan_path: Path | None = None) -> ScenarioResult:
    """Run ``scenario`` in a new database on ``server``, dropped afterwards."""
    with scratch_database(server, prefix="mlm_scenario") as db:
        migrate.prepare(db.engine)
        return run_in(db, scenario, plan_path)
