"""The plan as a pydantic model: refused fields located by path with their value, one line;
``plan check`` and ``plan schema`` from the command line; the schema validates the real plan."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import tomllib
from pathlib import Path

import jsonschema
import pytest

from flows.config import DEFAULT_PLAN, load_plan
from flows.plan_command import schema_text
from transforms.plan import Plan, PlanError, plan_from_mapping

PLANS = Path(__file__).resolve().parents[2] / "plans"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True, timeout=120)


def _default_mapping() -> dict:
    return tomllib.loads(DEFAULT_PLAN.read_text())


def _with_rank(field: str, rank: int, value) -> dict:
    data = _default_mapping()
    data["ranks"][rank][field] = value
    return data


@pytest.mark.parametrize(
    "data, path, value",
    [
        (_with_rank("team_volume", 2, "1000.00"), "plan.ranks[2].team_volume (growth)", "'1000.00'"),  # below builder's 50000
        (_with_rank("personal_volume", 1, "-5.00"), "plan.ranks[1].personal_volume (builder)", "'-5.00'"),
        ({**_default_mapping(), "min_monthly_pv": "-0.01"}, "plan.min_monthly_pv", "'-0.01'"),
        ({**_default_mapping(), "bonus_pool": "1%"}, "plan.bonus_pool", "'1%'"),
        (_with_rank("colour", 3, "gold"), "plan.ranks[3].colour (leadership)", "'gold'"),
        ({**_default_mapping(), "version": "v" * 200}, "plan.version", "(200 characters)"),
        (_with_rank("rate", 4, 0.18), "plan.ranks[4].rate (director)", "0.18"),
        (_with_rank("rate", 4, "1.5"), "plan.ranks[4].rate (director)", "'1.5'"),
        ({**_default_mapping(), "max_depth": "deep"}, "plan.max_depth", "'deep'"),
    ],
    ids=["decreasing requirement", "negative rank amount", "negative amount", "unknown key", "unknown rank key", "long version", "float", "rate above 1", "depth"],
)
def test_a_bad_plan_is_refused_naming_the_file_the_field_path_and_the_value(tmp_path, data, path, value):
    file = tmp_path / "candidate.toml"
    file.write_text(_toml(data))
    with pytest.raises(PlanError) as refused:
        load_plan(file)
    line = str(refused.value)
    assert "\n" not in line and line.startswith(f"{file}: ")
    said = next(part for part in line.split("; ") if part.startswith(f"{file}: {path}") or part.startswith(path))
    assert said.endswith(value) or f"got {value}" in said, line


def _toml(data: dict) -> str:
    """A plan mapping as TOML text (strings, whole numbers, booleans, floats, arrays of tables)."""
    def scalar(value) -> str:
        return json.dumps(value) if not isinstance(value, bool) else str(value).lower()

    lines = [f"{key} = {scalar(value)}" for key, value in data.items() if key != "ranks"]
    for rank in data.get("ranks", []):
        lines += ["", "[[ranks]]", *(f"{key} = {scalar(value)}" for key, value in rank.items())]
    return "\n".join(lines) + "\n"


def test_plan_check_on_the_command_line_is_one_line_and_exit_2(tmp_path):
    file = tmp_path / "decreasing.toml"
    file.write_text(_toml(_with_rank("active_partners", 3, 1)))
    refused = _cli("plan", "check", str(file))
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
    assert f"{file}: plan.ranks[3].active_partners (leadership): requires less than the rank below it (growth)" in refused.stderr
    assert refused.stderr.rstrip().endswith("got 1")
    accepted = _cli("plan", "check", str(DEFAULT_PLAN))
    assert accepted.returncode == 0 and "plan default-2025.1 is valid: 5 ranks" in accepted.stdout, accepted.stderr


def test_plan_schema_validates_the_default_plan_and_refuses_what_the_model_refuses():
    printed = _cli("plan", "schema")
    assert printed.returncode == 0, printed.stderr
    schema = json.loads(printed.stdout)
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    validator.validate(_default_mapping())  # raises on any disagreement
    for bad in (
        {**_default_mapping(), "colour": "red"},
        {**_default_mapping(), "version": "v" * 200},
        {**_default_mapping(), "min_monthly_pv": "-5"},
        {**_default_mapping(), "min_monthly_pv": 200.5},
        {**_default_mapping(), "max_depth": 0},
        _with_rank("name", 1, "Builder"),
        _with_rank("extra", 1, 1),
    ):
        assert not validator.is_valid(bad), bad
        with pytest.raises(PlanError):
            plan_from_mapping(bad)
    assert (PLANS / "plan.schema.json").read_text() == printed.stdout == schema_text(), "regenerate: mlm-recompute plan schema > plans/plan.schema.json"
    assert DEFAULT_PLAN.read_text().startswith("#:schema ./plan.schema.json\n")  # editors (Taplo) find it from the file


def test_money_is_held_in_cents_and_written_back_as_the_file_spells_it():
    plan = load_plan()
    ranks = plan.to_mapping()["ranks"]
    ranks[1].update(personal_volume=1000, team_volume="50000.5")
    changed = plan.with_overrides({"ranks": ranks, "min_monthly_pv": "199.99"})
    assert (changed.min_monthly_pv_cents, changed.ranks[1].personal_volume_cents, changed.ranks[1].team_volume_cents) == (19_999, 100_000, 5_000_050)
    assert changed.to_mapping()["min_monthly_pv"] == "199.99" and changed.to_mapping()["ranks"][1]["team_volume"] == "50000.50"
    assert [rank.order for rank in changed.ranks] == [0, 1, 2, 3, 4]
    assert plan_from_mapping(changed.to_mapping()) == changed


def test_a_plan_survives_pickling_and_is_hashable():
    # Prefect hands the plan to tasks (threads) and to Dask workers (pickled).
    plan = load_plan()
    copy = pickle.loads(pickle.dumps(plan))
    assert copy == plan and hash(copy) == hash(plan) and [r.order for r in copy.ranks] == [0, 1, 2, 3, 4]
    assert isinstance(plan, Plan) and plan.model_config["frozen"]
