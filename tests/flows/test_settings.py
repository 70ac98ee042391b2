"""Settings: every MLM_* variable typed in one class, the database URL a secret, and the URL
read from a Prefect Secret block when MLM_DATABASE_URL_SECRET names one."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import pytest

from flows.config import DEFAULT_PLAN, Settings, SettingsError

REPO = Path(__file__).resolve().parents[2]


def _variables() -> set[str]:
    """The environment variable of every Settings field."""
    return {str(f.validation_alias) if f.validation_alias else f"MLM_{name.upper()}" for name, f in Settings.model_fields.items()}


@pytest.fixture
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("MLM_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_every_variable_has_a_type_and_a_default(clean_env):
    settings = Settings.from_env()
    assert (settings.database_url, settings.database_url_secret, settings.root_telegram_id, settings.dask_address) == (None, None, None, None)
    assert (settings.data_dir, settings.plan_path, settings.debug) == (Path(".mlm/pgdata"), DEFAULT_PLAN, False)
    for name, value in {
        "MLM_DATABASE_URL": "postgresql://bob:pw@db.example:6543/platform",
        "MLM_DATA_DIR": "/srv/pg",
        "MLM_ROOT_TELEGRAM_ID": "9000",
        "MLM_PLAN": "plans/other.toml",
        "MLM_DASK_ADDRESS": "tcp://dask:8786",
        "MLM_DEBUG": "1",
    }.items():
        clean_env.setenv(name, value)
    settings = Settings.from_env()
    assert settings.database_url_value() == "postgresql://bob:pw@db.example:6543/platform"
    assert (settings.data_dir, settings.root_telegram_id, settings.plan_path, settings.dask_address, settings.debug) == (
        Path("/srv/pg"), 9000, Path("plans/other.toml"), "tcp://dask:8786", True
    )
    assert "pw" not in repr(settings) and "pw" not in str(settings) and "pw" not in str(settings.model_dump())


def test_an_empty_variable_counts_as_unset(clean_env):
    clean_env.setenv("MLM_ROOT_TELEGRAM_ID", "")
    clean_env.setenv("MLM_DATABASE_URL", "")
    settings = Settings.from_env()
    assert settings.root_telegram_id is None and settings.database_url_value() is None


def test_the_code_reads_mlm_variables_only_through_settings():
    # one place: no module of the application reads an MLM_ variable from the environment itself
    reading = re.compile(r"""(environ|getenv)\b[^\n]*["']MLM_""")
    offenders = [
        f"{path.relative_to(REPO)}:{number}"
        for folder in ("flows", "db", "transforms", "guard")
        for path in sorted((REPO / folder).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if reading.search(line)
    ]
    assert offenders == []


def test_the_readme_lists_every_variable():
    configuration = REPO.joinpath("README.md").read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `(MLM_[A-Z_]+)`", configuration, flags=re.M))
    assert _variables() <= listed, _variables() - listed


@pytest.mark.parametrize(
    "env, said",
    [
        ({"MLM_ROOT_TELEGRAM_ID": "nine thousand"}, "MLM_ROOT_TELEGRAM_ID: input should be a valid integer"),
        ({"MLM_DEBUG": "perhaps"}, "MLM_DEBUG: input should be a valid boolean"),
        ({"MLM_DATABASE_URL": "postgresql://bob:s3cret-pw@127.0.0.1:1/platform", "MLM_DATA_DIR": "/dev/null/x", "MLM_DEBUG": "2"}, "MLM_DEBUG"),
    ],
    ids=["not an integer", "not a flag", "a password beside a bad setting"],
)
def test_a_bad_setting_is_one_line_naming_the_variable_and_exit_2(clean_env, capsys, env, said):
    from flows import cli

    for name, value in env.items():
        clean_env.setenv(name, value)
    assert cli.main(["runs"]) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith("mlm-recompute: error: ") and said in err, err
    assert "s3cret-pw" not in out + err


def test_the_url_is_read_from_a_prefect_secret_block(prefect_server, db, clean_env, capsys):
    from datetime import datetime, timezone

    from prefect.blocks.system import Secret

    from db import ledger
    from flows import cli

    name = f"mlm-test-db-{uuid.uuid4().hex[:8]}"
    Secret(value=db.uri).save(name, overwrite=True)
    clean_env.setenv("MLM_DATABASE_URL_SECRET", name)
    # the block wins over a URL in the environment (a deployment sets the block for its runs)
    clean_env.setenv("MLM_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/elsewhere")
    settings = Settings.from_env()
    assert settings.database_url_value() == db.uri
    assert settings.resolved().database_url_value() == db.uri and db.uri not in repr(settings.resolved())

    # a run only the block's database holds: the command lists it if it read the URL from the block
    as_of = datetime(2025, 10, 20, tzinfo=timezone.utc)
    run_id = ledger.start_run(db, mode="block-test", period="2025-10", as_of=as_of, plan_version="p", dry_run=False)
    assert cli.main(["runs"]) == 0
    listed = capsys.readouterr().out
    assert re.search(rf"^\s*{run_id}\s+block-test\s+running\s+2025-10", listed, flags=re.M), listed

    clean_env.setenv("MLM_DATABASE_URL_SECRET", "no-such-block")
    assert cli.main(["runs"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "MLM_DATABASE_URL_SECRET: cannot read the Prefect Secret block 'no-such-block'" in err, err


def test_a_secret_block_that_is_not_text_is_refused(prefect_server, clean_env):
    from prefect.blocks.system import Secret

    name = f"mlm-test-json-{uuid.uuid4().hex[:8]}"
    Secret(value={"user": "bob"}).save(name, overwrite=True)
    clean_env.setenv("MLM_DATABASE_URL_SECRET", name)
    with pytest.raises(SettingsError, match="does not hold a URL"):
        Settings.from_env().database_url_value()


def test_every_deployment_reads_the_url_from_the_secret_block():
    import yaml

    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    blocks = {d["name"]: d["work_pool"].get("job_variables", {}).get("env", {}).get("MLM_DATABASE_URL_SECRET") for d in config["deployments"]}
    assert set(blocks.values()) == {"mlm-database-url"}, blocks
    serve = REPO.joinpath("README.md").read_text().split("## Scheduling with Prefect", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    assert 'Secret(value=os.environ["MLM_DATABASE_URL"]).save("mlm-database-url"' in serve  # the README creates that block
