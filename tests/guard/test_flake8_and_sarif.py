"""The same findings where teams already look: ``flake8 --select JSN`` and ``lint-json --format sarif``.

flake8 runs as a subprocess through the installed entry point, over the platform fixture tree and
over small trees with every ``noqa`` spelling; its lines must equal lint-json's. The SARIF log is
validated against the SARIF 2.1.0 JSON schema (a copy kept beside this file, from OASIS).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import jsonschema
import pytest

from guard import cli
from guard.json_mutations import lint_paths

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PLATFORM = HERE / "fixtures" / "platform"
SCHEMA = json.loads((HERE / "sarif-schema-2.1.0.json").read_text())

MODELS = """
from sqlalchemy import JSON, Column, Integer
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm.attributes import flag_modified

class Base(DeclarativeBase):
    pass

class Wallet(Base):
    __tablename__ = "wallets"
    walletID = Column(Integer, primary_key=True)
    balances = Column(JSON, default=dict)
"""
NOQA = """
def credit(wallet, amount):
    wallet.balances["a"] = amount  # noqa
    wallet.balances["b"] = amount  # noqa: JSN001
    wallet.balances["c"] = amount  # noqa:JSN001,E501
    wallet.balances["d"] = amount  # NOQA: JSN001
    wallet.balances["e"] = amount  # noqa: E501
    wallet.balances["f"] = amount  # noqa: JSN
    wallet.balances["g"] = amount

def bump(wallet):
    wallet.balances["count"] += 1

def reproduce(wallet):
    bump(wallet)  # noqa: JSN001
"""


def _flake8(*args: str, cwd: Path = REPO, stdin: str | None = None) -> subprocess.CompletedProcess:
    """flake8 with only JSN selected and no configuration file read."""
    return subprocess.run(
        [sys.executable, "-m", "flake8", "--isolated", "--select", "JSN", *args],
        cwd=cwd, input=stdin, capture_output=True, text=True, timeout=120,
    )


def _lint_json_lines(*argv: str, capsys) -> list[str]:
    """lint-json's text lines for these arguments."""
    cli.main(list(argv))
    return capsys.readouterr().out.splitlines()


def _write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text))


def test_flake8_prints_the_same_findings_as_lint_json_on_the_fixture_tree(capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    tree = str(PLATFORM.relative_to(REPO))
    flake8 = _flake8(tree)
    assert flake8.returncode == 1, flake8.stderr
    expected = _lint_json_lines(tree, capsys=capsys)
    assert len(expected) >= 20
    assert sorted(flake8.stdout.splitlines()) == sorted(expected)


def test_noqa_is_handled_the_same_way(tmp_path, capsys, monkeypatch):
    _write(tmp_path, {"models.py": MODELS, "code.py": NOQA})
    monkeypatch.chdir(tmp_path)
    flake8 = _flake8(".", cwd=tmp_path).stdout.splitlines()
    lint_json = _lint_json_lines(".", capsys=capsys)
    assert sorted(line.removeprefix("./") for line in flake8) == sorted(lint_json)
    assert [int(line.split(":")[1]) for line in sorted(lint_json)] == [7, 9]  # "e" (another code) and "g"
    everything = _flake8(".", "--disable-noqa", cwd=tmp_path).stdout.splitlines()
    assert len(everything) == 8  # a..g, and the helper's change at its line


def test_json_columns_option_and_an_unsaved_buffer_on_stdin(tmp_path):
    _write(tmp_path, {"models.py": MODELS, "code.py": "def f(o):\n    o.blob['k'] = 1\n"})
    assert _flake8(".", cwd=tmp_path).stdout == ""
    found = _flake8(".", "--json-columns", "blob,other", cwd=tmp_path).stdout
    assert re.fullmatch(r"\./code\.py:2:5: JSN001 in-place change to o\.blob .*\n", found)
    # An editor's buffer differs from the file on disk: the buffer is what is checked.
    buffer = "def g(wallet):\n    wallet.balances['x'] = 1\n"
    piped = _flake8("--stdin-display-name", "code.py", "-", cwd=tmp_path, stdin=buffer).stdout
    assert re.fullmatch(r'code\.py:2:5: JSN001 in-place change to wallet\.balances .*flag_modified\(wallet, "balances"\).*\n', piped)


def _validator() -> jsonschema.Draft4Validator:
    return jsonschema.Draft4Validator(SCHEMA, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)


def test_sarif_output_is_valid_sarif_2_1_0_and_carries_every_finding(tmp_path, capsys, monkeypatch):
    jsonschema.Draft4Validator.check_schema(SCHEMA)
    monkeypatch.chdir(REPO)
    tree = str(PLATFORM.relative_to(REPO))
    code = cli.main([tree, "--format", "sarif"])
    log = json.loads(capsys.readouterr().out)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in _validator().iter_errors(log)]
    assert code == 1 and errors == []
    (run,) = log["runs"]
    assert run["tool"]["driver"]["rules"][0]["id"] == "JSN001" and run["invocations"][0]["executionSuccessful"]
    places = {
        (r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"], r["locations"][0]["physicalLocation"]["region"]["startLine"])
        for r in run["results"]
    }
    assert places == {(f.path, f.line) for f in lint_paths([tree]).findings}
    # The validator does reject a log that breaks the schema (a result without its message).
    broken = json.loads(json.dumps(log))
    del broken["runs"][0]["results"][0]["message"]
    assert not _validator().is_valid(broken)


def test_sarif_columns_are_code_points_and_parse_failures_are_notifications(tmp_path, capsys, monkeypatch):
    _write(tmp_path, {
        "models.py": MODELS,
        "code.py": 'def f(wallet):\n    ключ = "é"; wallet.balances[ключ] = 1\n',
        "broken.py": "def f(:\n",
    })
    monkeypatch.chdir(tmp_path)
    assert cli.main([".", "--format", "sarif"]) == 2
    log = json.loads(capsys.readouterr().out)
    assert _validator().is_valid(log)
    (run,) = log["runs"]
    (result,) = run["results"]
    location = result["locations"][0]["physicalLocation"]
    assert location["artifactLocation"] == {"uri": "code.py", "uriBaseId": "%SRCROOT%"}
    # 16 code points before the change, 21 UTF-8 bytes: lint-json's text says column 22, SARIF 17.
    assert location["region"] == {"startLine": 2, "startColumn": 17}
    assert [f.col for f in lint_paths(["."]).findings] == [22]
    (invocation,) = run["invocations"]
    assert invocation["executionSuccessful"] is False
    (notice,) = invocation["toolExecutionNotifications"]
    assert notice["descriptor"]["id"] == "E999" and "SyntaxError" in notice["message"]["text"]
    assert notice["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "broken.py"


GUARD_MODULES = ["discovery", "columns", "declarations", "functions", "rows", "effects", "dirty_flags", "flow", "lint",
                 "report", "sarif", "flake8_plugin"]


@pytest.mark.parametrize("name", GUARD_MODULES)
def test_each_guard_module_says_what_it_decides(name):
    text = (REPO / "guard" / f"{name}.py").read_text()
    docstring = re.match(r'"""(.*?)"""', text, re.DOTALL)
    assert docstring and "Decides" in docstring.group(1), f"guard/{name}.py opens without saying what it decides"
    assert len(text.splitlines()) < 500, f"guard/{name}.py has grown past one responsibility"
