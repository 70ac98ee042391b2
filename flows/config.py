"""Settings, read from the environment in one place (pydantic-settings), and the plan file.

Every ``MLM_*`` variable the application reads is a field of :class:`Settings`, with its type
and default; a bad value is refused naming the variable (``SettingsError``, exit 2). The
database URL is a secret (``SecretStr``): it prints as ``**********`` in any repr or log line,
and only :meth:`Settings.database_url_value` hands the clear text to the driver.
``MLM_DATABASE_URL_SECRET`` names a Prefect ``Secret`` block holding the URL instead, so the
password lives in Prefect's store rather than in every worker's environment; when it is set it
wins over ``MLM_DATABASE_URL`` (the deployments in ``prefect.yaml`` set it for their runs, so a
worker's own ``MLM_DATABASE_URL`` does not decide where they write).

The other ``MLM_`` variables are not the application's and so not fields here:
``MLM_TEST_DATABASE_URL``, ``MLM_TEST_TEMPLATE``, ``MLM_SCENARIOS_DIR`` and
``MLM_REQUIRE_BROWSER`` (read by the test suite) and ``MLM_PROJECT_DIR`` (read by
``prefect deploy`` from ``prefect.yaml``); the README's Configuration lists them all.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PLAN = Path(__file__).resolve().parent.parent / "plans" / "default.toml"


class SettingsError(ValueError):
    """A setting that cannot be used; the message names the variable, never a secret's value."""


class Settings(BaseSettings):
    """What a command or flow is configured with, read from ``MLM_*`` environment variables
    (an empty variable counts as unset)."""

    model_config = SettingsConfigDict(env_prefix="MLM_", env_ignore_empty=True, extra="ignore", frozen=True)

    database_url: SecretStr | None = Field(
        default=None, description="PostgreSQL URL (postgresql://user:password@host:port/db); unset: the embedded server"
    )
    database_url_secret: str | None = Field(
        default=None, description="name of a Prefect Secret block holding the PostgreSQL URL; set, it wins over MLM_DATABASE_URL"
    )
    data_dir: Path = Field(default=Path(".mlm/pgdata"), description="the embedded server's data folder (kept between runs)")
    root_telegram_id: int | None = Field(default=None, description="the platform's default referrer, the tree's root; unset: the one self-sponsor")
    plan_path: Path = Field(default=DEFAULT_PLAN, validation_alias="MLM_PLAN", description="the plan file")
    dask_address: str | None = Field(default=None, description="a Dask scheduler (tcp://host:8786) for backfill months; unset: threads")
    debug: bool = Field(default=False, description="1: an expected failure shows its traceback (as --debug does)")

    @classmethod
    def from_env(cls) -> "Settings":
        """The settings in this process's environment; ``SettingsError`` names a bad variable."""
        try:
            return cls()
        except ValidationError as error:
            raise SettingsError("; ".join(_variable_problem(e) for e in error.errors(include_url=False))) from None

    def database_url_value(self) -> str | None:
        """The database URL in clear text, for the driver only (never print it): from the
        Prefect Secret block ``MLM_DATABASE_URL_SECRET`` names, else ``MLM_DATABASE_URL``, else
        None (the embedded server)."""
        if self.database_url_secret:
            return secret_block_value(self.database_url_secret)
        return None if self.database_url is None else self.database_url.get_secret_value()

    def resolved(self) -> "Settings":
        """These settings with the URL read from its Secret block, once (a command reads it
        before it starts, so a missing block is one line before anything runs)."""
        if not self.database_url_secret:
            return self
        return self.model_copy(update={"database_url": SecretStr(secret_block_value(self.database_url_secret)), "database_url_secret": None})


def _variable_problem(error: dict) -> str:
    """One problem with a variable, named as it is set: ``MLM_ROOT_TELEGRAM_ID: ..., got 'x'``
    (the value is never shown for the database URL)."""
    field = error["loc"][0] if error["loc"] else None
    if field is None:
        return error["msg"].removeprefix("Value error, ")
    info = Settings.model_fields.get(str(field))
    variable = str(field) if str(field).startswith("MLM_") else f"MLM_{str(field).upper()}"
    if info is not None and info.validation_alias:
        variable = str(info.validation_alias)
    shown = "" if "database_url" in str(field) else f", got {error['input']!r}"
    return f"{variable}: {error['msg'][0].lower()}{error['msg'][1:]}{shown}"


def secret_block_value(name: str) -> str:
    """The text of the Prefect ``Secret`` block ``name`` (on the Prefect API this process is
    configured for); ``SettingsError`` when there is no such block or it does not hold text."""
    from prefect.blocks.system import Secret

    try:
        value = Secret.load(name).get()
    except Exception as error:  # a missing block, an unreachable API: a setting to fix, said in one line
        first = next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)
        raise SettingsError(f"MLM_DATABASE_URL_SECRET: cannot read the Prefect Secret block {name!r}: {first}") from None
    if not isinstance(value, str) or not value.strip():
        raise SettingsError(f"MLM_DATABASE_URL_SECRET: the Prefect Secret block {name!r} does not hold a URL (text)")
    return value.strip()


def load_plan(path: Path | str = DEFAULT_PLAN):
    """The plan in a TOML plan file; a bad file is refused in one line naming the file, each
    offending field's path and its value."""
    import tomllib

    from transforms.plan import PlanError, plan_from_mapping

    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise PlanError(f"{path}: plan file not found") from None
    except IsADirectoryError:
        raise PlanError(f"{path}: is a folder, not a plan file") from None
    except tomllib.TOMLDecodeError as error:
        raise PlanError(f"{path}: not valid TOML: {error}") from None
    try:
        return plan_from_mapping(data)
    except PlanError as error:
        raise PlanError(f"{path}: {error}", error.fields) from None
