"""Every shared scenario passes, read back from PostgreSQL; the scenario command behaves as specified."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from flows import cli
from flows.scenario import ScenarioFileError, read_scenario, run_in

# The acceptance scenarios travel with the repository (a clone has no shared/ beside it);
# where the workspace's shared/scenarios is there, the copy must equal it.
SCENARIO_DIR = Path(os.environ.get("MLM_SCENARIOS_DIR", Path(__file__).resolve().parent / "scenarios"))
SCENARIO_FILES = sorted(SCENARIO_DIR.glob("*.json"))
SHARED_SCENARIOS = Path(__file__).resolve().parents[2] / "shared" / "scenarios"


def test_the_scenarios_are_there():
    # A missing folder must fail loudly, not turn the parametrized test below into zero tests.
    assert len(SCENARIO_FILES) >= 15, f"expected the acceptance scenarios in {SCENARIO_DIR}"


@pytest.mark.skipif(not SHARED_SCENARIOS.is_dir(), reason="no shared/scenarios beside this clone")
def test_the_scenarios_are_the_shared_ones():
    shared = {p.name: p.read_bytes() for p in SHARED_SCENARIOS.glob("*.json")}
    ours = {p.name: p.read_bytes() for p in (Path(__file__).resolve().parent / "scenarios").glob("*.json")}
    assert sorted(ours) == sorted(shared), "tests/scenarios and shared/scenarios hold different files"
    assert [name for name in shared if ours[name] != shared[name]] == []


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=[p.stem for p in SCENARIO_FILES])
def test_scenario(db, path):
    result = run_in(db, read_scenario(path))
    failures = [text for ok, text in result.checks if not ok]
    assert result.checks and not failures, "\n".join(failures)


WRITTEN_SCENARIOS = [p for p in SCENARIO_FILES if "expect" in json.loads(p.read_text())]


@pytest.mark.parametrize("path", WRITTEN_SCENARIOS, ids=[p.stem for p in WRITTEN_SCENARIOS])
def test_scenario_with_documents_sent_two_users_at_a_time(db, path, monkeypatch):
    # The write makes and COPYs the documents a batch of users at a time; with batches of two,
    # every scenario's users span several batches (and sponsors' branches, batch boundaries).
    import transforms.documents

    monkeypatch.setattr(transforms.documents, "DOCUMENT_BATCH_ROWS", 2)
    result = run_in(db, read_scenario(path))
    failures = [text for ok, text in result.checks if not ok]
    assert result.checks and not failures, "\n".join(failures)


def _altered(tmp_path: Path, name: str, change) -> Path:
    data = json.loads((SCENARIO_DIR / name).read_text())
    change(data)
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_a_wrong_expectation_fails(db, tmp_path):
    # The comparison can fail: the same case with one expected value changed must not pass.
    path = _altered(tmp_path, "fifty_percent_rule.json", lambda d: d["expect"]["2"].update(fullVolume="56499.99"))
    result = run_in(db, read_scenario(path))
    assert not result.passed
    assert [text for ok, text in result.checks if not ok] == [
        "user 2 fullVolume: expected '56499.99', stored '56500.00'"
    ]


def test_a_wrong_error_kind_fails(db, tmp_path):
    path = _altered(tmp_path, "bad_orphan.json", lambda d: d["expect_error"].update(kind="cycle"))
    assert not run_in(db, read_scenario(path)).passed


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.pop("as_of"), "as_of: is required"),
        (lambda d: d.update(as_of="yesterday"), "as_of: not an ISO instant"),
        (lambda d: d["users"][1].update(userID="2"), "users[1].userID: must be an integer"),
        (lambda d: d["purchases"][0].update(packPrice=250.0), "purchases[0].packPrice: must be a decimal string"),
        (lambda d: d["expect"]["2"].update(colour="red"), "expect.2.colour: is not an expectation"),
        (lambda d: d.update(expect_error={"kind": "cycle", "ids": []}), "give exactly one of expect and expect_error"),
    ],
)
def test_malformed_files_are_refused_naming_the_place(tmp_path, change, message):
    path = _altered(tmp_path, "preserve_foreign_keys.json", change)
    with pytest.raises(ScenarioFileError, match=message.replace("[", r"\[").replace("]", r"\]")):
        read_scenario(path)


def test_cli_scenario_exit_codes(server_uri, tmp_path, monkeypatch, capsys):
    # The command as an operator runs it: 0 when every expectation holds, 1 when one does not,
    # 2 for a malformed file.
    monkeypatch.setenv("MLM_DATABASE_URL", server_uri)
    assert cli.main(["scenario", str(SCENARIO_DIR / "month_boundary.json"), "--json"]) == 0
    out = capsys.readouterr().out
    assert "scenario month_boundary: passed" in out
    assert '"lastActiveMonth": "2025-10"' in out  # --json prints the stored state
    wrong = _altered(tmp_path, "month_boundary.json", lambda d: d["expect"]["2"].update(monthlyPV="61.00"))
    assert cli.main(["scenario", str(wrong)]) == 1
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert cli.main(["scenario", str(broken)]) == 2
