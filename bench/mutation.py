"""Mutation testing of the modules whose tests must catch any change: ``python -m bench.mutation``.

Runs mutmut (``[tool.mutmut]`` in pyproject.toml holds the settings every module shares) in a
copy of this repository, never in the working tree, one module at a time with the tests that
cover it, one worker by default (two shared cores), and prints per module the mutants killed,
survived and not checked, the score (killed / checked) and each survivor's name. ``mutmut show
NAME`` in the module's copy shows a survivor's change; the score is recorded in the README.

Not part of CI: a mutant costs a pytest session (about 5-20 s here), and there are hundreds.

    python -m bench.mutation                       # every module below
    python -m bench.mutation db/validate.py        # one
    python -m bench.mutation db/validate.py --only 'db.validate.x__pioneer_failures*'
    python -m bench.mutation 'transforms/*' --tests tests/flows/test_explain.py --only 'transforms.explain.*'
    python -m bench.mutation db/load.py --recheck 'db.load.x_text_array*'
    python -m bench.mutation 'transforms/*' --sample 600 --seed 1   # a random sample of mutants

``--recheck GLOB...`` (also ``--at-import``) re-checks survivors and timeouts in a pytest process
of their own, the mutant selected from the start (``MUTANT_UNDER_TEST`` in its environment).
mutmut runs each mutant in a child forked from a process that has imported the code: a mutant
of a function the module calls when it is imported (its SQL constants, a plan's JSON schema)
never runs there and survives whatever the tests say; and a worker that hangs (a test module
that computes with Polars at import leaves forked workers hanging on their first Polars call;
``tests/bench/test_mutation.py`` guards against it) is reported as a timeout.
The outcomes are kept in the copy's ``at_import.json`` and counted in the score in place of
mutmut's.

``--sample N`` checks N mutants drawn at random (``--seed``; the draw is recorded in the copy's
``sample.json`` and reused) instead of all of them, for a module with thousands of mutants: the
score is then an estimate, printed with its 95% interval (Wilson), over the sample only.

The tests run against ``MLM_TEST_DATABASE_URL`` (or ``--database-url``), or else one embedded
server started for the whole run; one migrated template database is made once and reused by
every mutant's session (``MLM_TEST_TEMPLATE``).
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import hashlib
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# module -> the tests that cover it (fast ones; the subprocess kill tests are left out)
TESTS = {
    "db/validate.py": ["tests/db/test_checks_fire.py", "tests/db/test_pending_changes.py", "tests/db/test_faults.py", "-k", "not killed"],
    "db/load.py": ["tests/db/test_load.py", "tests/db/test_fingerprints.py", "tests/db/test_checks_fire.py", "tests/db/test_faults.py", "-k", "not killed"],
    "db/periods.py": ["tests/db/test_snapshot_difference.py", "tests/db/test_month_bounds.py", "tests/flows/test_flows.py", "tests/flows/test_close_monthly_stats.py", "tests/flows/test_reopen_refusals.py", "tests/flows/test_scheduled_close.py"],
    "transforms/*": ["tests/transforms", "tests/test_scenarios.py"],
}
TEMPLATE = "mlm_mutation_template"
_IGNORED = shutil.ignore_patterns(".git", "mutants", ".mlm", "__pycache__", "*.egg-info", ".hypothesis", ".pytest_cache")


def _slug(module: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", module.lower()).strip("_")


def _toml_value(value) -> str:
    return json.dumps(value)  # a TOML basic string, list or number is valid JSON


def prepare_copy(module: str, work: Path, tests: list[str] | None = None) -> Path:
    """A copy of the repository for ``module``, its ``[tool.mutmut]`` narrowed to the module and
    its tests (``TESTS[module]`` unless ``tests`` are given: then a copy of its own), reused if it
    exists, so mutmut resumes where it stopped."""
    copy = work / (_slug(module) + ("" if tests is None else "_" + hashlib.sha1(" ".join(tests).encode()).hexdigest()[:8]))
    if not copy.exists():
        shutil.copytree(REPO, copy, ignore=_IGNORED)
    pyproject = (REPO / "pyproject.toml").read_text()
    shared = tomllib.loads(pyproject).get("tool", {}).get("mutmut", {})
    settings = {**shared, "only_mutate": [module], "pytest_add_cli_args_test_selection": TESTS[module] if tests is None else tests}
    head = pyproject.split("\n[tool.mutmut]\n")[0]
    table = "\n".join(f"{key} = {_toml_value(value)}" for key, value in settings.items())
    (copy / "pyproject.toml").write_text(f"{head}\n[tool.mutmut]\n{table}\n")
    return copy


def _make_template(uri: str, copy: Path) -> None:
    """The migrated template every test session clones (made with the copy's own migrations)."""
    script = f"""
import psycopg
from db import migrate
from db.connection import open_database, with_database_name
with psycopg.connect({uri!r}, autocommit=True) as admin:
    admin.execute('DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
    admin.execute('CREATE DATABASE "{TEMPLATE}"')
db = open_database(with_database_name({uri!r}, "{TEMPLATE}"))
migrate.prepare(db.engine)
db.engine.dispose()
"""
    subprocess.run([sys.executable, "-c", script], cwd=copy, check=True)


def results(copy: Path) -> dict[str, list[str]]:
    """Mutant names by status (killed, survived, not checked, ...), from ``mutmut results``."""
    done = subprocess.run(["mutmut", "results", "--all", "true"], cwd=copy, capture_output=True, text=True, check=True)
    by_status: dict[str, list[str]] = {}
    for line in done.stdout.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if name:
            by_status.setdefault(status, []).append(name)
    return by_status


AT_IMPORT = "at_import.json"


RECHECKED = ("survived", "timeout")
RECHECK_TIMEOUT_S = 900  # a module's whole selection takes 1-5 minutes here  # the statuses a fresh process may overturn


def with_import_outcomes(copy: Path, by_status: dict[str, list[str]]) -> dict[str, list[str]]:
    """``by_status`` with the survivors and timeouts that ``run_at_import`` re-checked moved to
    their outcome there (``killed``, or ``survived``)."""
    path = copy / AT_IMPORT
    outcomes = json.loads(path.read_text()) if path.exists() else {}
    merged = {status: [n for n in names if n not in outcomes or status not in RECHECKED] for status, names in by_status.items()}
    for status in RECHECKED:
        for name in by_status.get(status, []):
            if name in outcomes:
                merged.setdefault(outcomes[name], []).append(name)
    return {status: names for status, names in merged.items() if names}


def run_at_import(copy: Path, globs: list[str], env: dict[str, str]) -> dict[str, str]:
    """Re-run each survivor or timeout matching ``globs`` in a pytest process of its own, the
    mutant selected before anything is imported; returns (and records in ``AT_IMPORT``) name ->
    outcome."""
    settings = tomllib.loads((copy / "pyproject.toml").read_text())["tool"]["mutmut"]
    by_status = results(copy)
    listed = [n for status in RECHECKED for n in by_status.get(status, [])]
    survivors = [n for n in listed if any(fnmatch.fnmatchcase(n, g) for g in globs)]
    path = copy / AT_IMPORT
    outcomes = json.loads(path.read_text()) if path.exists() else {}
    for name in survivors:
        command = [sys.executable, "-m", "pytest", "--rootdir=.", "--tb=no", "-x", "-q", "-p", "no:randomly",
                   *settings["pytest_add_cli_args_test_selection"], *settings.get("pytest_add_cli_args", [])]
        try:
            done = subprocess.run(command, cwd=copy / "mutants", env={**env, "MUTANT_UNDER_TEST": name}, capture_output=True, text=True, timeout=RECHECK_TIMEOUT_S)
            code = done.returncode
        except subprocess.TimeoutExpired:
            code = None  # the mutant made the tests hang: the suite would never pass
        # pytest: 0 every test passed; 5 no test ran (the selection is wrong: no outcome); any
        # other code is a red suite: 1 a test failed, 2 or 4 a module or conftest failed to
        # import (a constant the mutant broke raised), which the suite would show as well.
        outcomes[name] = {0: "survived", 5: "pytest exit 5"}.get(code, "killed")
        print(f"  recheck: {name}: {outcomes[name]} ({'timed out' if code is None else f'pytest exit {code}'})", flush=True)
        path.write_text(json.dumps(outcomes, indent=1, sort_keys=True))
    return outcomes


SAMPLE = "sample.json"


def draw_sample(names: list[str], size: int, seed: int) -> list[str]:
    """``size`` of ``names`` drawn at random by ``seed``: the same draw for the same mutants,
    whatever order mutmut lists them in."""
    ordered = sorted(names)
    return sorted(random.Random(seed).sample(ordered, min(size, len(ordered))))


def sampled(copy: Path, size: int, seed: int, env: dict[str, str]) -> list[str]:
    """The copy's sample of mutants: the one recorded in ``SAMPLE`` for this size and seed, or a
    new draw over every mutant (mutmut generates them first, with a run that selects none)."""
    path = copy / SAMPLE
    if path.exists():
        recorded = json.loads(path.read_text())
        if (recorded["size"], recorded["seed"]) == (size, seed):
            return recorded["names"]
    subprocess.run(["mutmut", "run", "mlm-no-mutant-has-this-name"], cwd=copy, env=env, capture_output=True)
    every = [name for names in results(copy).values() for name in names]
    names = draw_sample(every, size, seed)
    path.write_text(json.dumps({"size": size, "seed": seed, "of": len(every), "names": names}, indent=1))
    return names


def wilson_interval(killed: int, checked: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% (``z``) Wilson score interval of the share killed, as fractions."""
    if checked == 0:
        return 0.0, 1.0
    share = killed / checked
    centre = share + z * z / (2 * checked)
    spread = z * math.sqrt(share * (1 - share) / checked + z * z / (4 * checked * checked))
    scale = 1 + z * z / checked
    return (centre - spread) / scale, (centre + spread) / scale


def only(by_status: dict[str, list[str]], names: list[str]) -> dict[str, list[str]]:
    """``by_status`` narrowed to ``names`` (a status none of them has is left out)."""
    keep = set(names)
    narrowed = {status: [n for n in listed if n in keep] for status, listed in by_status.items()}
    return {status: listed for status, listed in narrowed.items() if listed}


def score_line(module: str, by_status: dict[str, list[str]], sample_of: int | None = None) -> str:
    killed = len(by_status.get("killed", []))
    survived = len(by_status.get("survived", []))
    checked = sum(len(v) for k, v in by_status.items() if k != "not checked")
    total = checked + len(by_status.get("not checked", []))
    score = f"{100 * killed / checked:.1f}%" if checked else "-"
    others = {k: len(v) for k, v in by_status.items() if k not in ("killed", "survived", "not checked")}
    line = f"{module}: {killed} killed, {survived} survived, {others or 'no other outcome'}, {total - checked} not checked of {total}"
    if sample_of is None:
        return f"{line}; score {score} of those checked"
    low, high = wilson_interval(killed, checked)
    return f"{line} sampled of {sample_of} mutants; score {score} of those checked (95% interval {100 * low:.1f}-{100 * high:.1f}%)"


@contextlib.contextmanager
def _server(url: str | None):
    if url:
        yield url
        return
    from db.connection import embedded_server

    with tempfile.TemporaryDirectory(prefix="mlm-mutation-pg") as folder, embedded_server(Path(folder) / "pgdata", quiet=True) as uri:
        yield uri


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mutation", description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", default=list(TESTS), help=f"modules to mutate (default: {', '.join(TESTS)})")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "mlm-mutation", help="where the copies live")
    parser.add_argument("--database-url", default=os.environ.get("MLM_TEST_DATABASE_URL"), help="PostgreSQL server for the tests")
    parser.add_argument("--max-children", type=int, default=1)
    parser.add_argument("--tests", nargs="+", help="pytest arguments selecting the tests, instead of the module's own (a second pass with more tests, e.g. for mutants mutmut found no tests for)")
    parser.add_argument("--only", nargs="*", default=[], help="mutant names (globs) to run, e.g. 'db.validate.x__pioneer_failures*'")
    parser.add_argument("--sample", type=int, metavar="N", help="check N mutants drawn at random instead of all (the score is an estimate)")
    parser.add_argument("--seed", type=int, default=1, help="the --sample draw's seed")
    parser.add_argument(
        "--recheck", "--at-import", dest="at_import", nargs="+", metavar="GLOB",
        help="instead of mutmut, re-check these survivors and timeouts (globs) in a fresh pytest process, the mutant selected before import",
    )  # fmt: skip
    args = parser.parse_args(argv)
    unknown = [m for m in args.modules if m not in TESTS]
    if unknown:
        parser.error(f"no tests are listed for {unknown}; known: {list(TESTS)}")
    if shutil.which("mutmut") is None:
        print("mutmut is not installed: python3 -m pip install -e '.[mutation]'", file=sys.stderr)
        return 2
    lines = []
    with _server(args.database_url) as uri:
        for module in args.modules:
            copy = prepare_copy(module, args.work, args.tests)
            _make_template(uri, copy)
            env = {**os.environ, "MLM_TEST_DATABASE_URL": uri, "MLM_TEST_TEMPLATE": TEMPLATE, "DO_NOT_TRACK": "1", "PREFECT_LOGGING_LEVEL": "WARNING", "HYPOTHESIS_PROFILE": "mutation"}
            names = sampled(copy, args.sample, args.seed, env) if args.sample else None
            if args.at_import:
                run_at_import(copy, args.at_import, env)
            else:
                chosen = [n for n in names if not args.only or any(fnmatch.fnmatchcase(n, g) for g in args.only)] if names else args.only
                if names is None or chosen:  # a sample with nothing matching --only runs nothing, not everything
                    subprocess.run(["mutmut", "run", "--max-children", str(args.max_children), *chosen], cwd=copy, env=env)
            by_status = with_import_outcomes(copy, results(copy))
            sample_of = None
            if names:
                sample_of = json.loads((copy / SAMPLE).read_text())["of"]
                by_status = only(by_status, names)
            lines.append(score_line(module, by_status, sample_of))
            print(lines[-1])
            for name in by_status.get("survived", []):
                print(f"  survived: {name} (mutmut show {name}, in {copy})")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
