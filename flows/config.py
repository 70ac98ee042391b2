"""Settings, read from the environment in one place, at run time.

=========================  ==========================================================  =================
variable                   meaning                                                     default
=========================  ==========================================================  =================
MLM_DATABASE_URL           PostgreSQL URL; unset: start the embedded server            (embedded)
MLM_DATA_DIR               the embedded server's data folder                           ./.mlm/pgdata
MLM_ROOT_TELEGRAM_ID       the platform's default referrer (the tree's root)           the self-sponsor
MLM_PLAN                   the plan file                                               plans/default.toml
MLM_DASK_ADDRESS           a Dask scheduler for backfills (tcp://host:8786)            threads in-process
=========================  ==========================================================  =================
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PLAN = Path(__file__).resolve().parent.parent / "plans" / "default.toml"


@dataclass(frozen=True)
class Settings:
    database_url: str | None
    data_dir: Path
    root_telegram_id: int | None
    plan_path: Path
    dask_address: str | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)
        root = env.get("MLM_ROOT_TELEGRAM_ID", "").strip()
        if root and not root.lstrip("-").isdigit():
            raise ValueError(f"MLM_ROOT_TELEGRAM_ID must be an integer telegramID, got {root!r}")
        return cls(
            database_url=env.get("MLM_DATABASE_URL") or None,
            data_dir=Path(env.get("MLM_DATA_DIR") or ".mlm/pgdata"),
            root_telegram_id=int(root) if root else None,
            plan_path=Path(env.get("MLM_PLAN") or DEFAULT_PLAN),
            dask_address=env.get("MLM_DASK_ADDRESS") or None,
        )


# What a command may do to the database's schema before it works (see db/migrate.py):
# "read" creates nothing, "write" migrates the project's own tables, "create" also the platform's.
def load_plan(path: Path | str = DEFAULT_PLAN):
    """The plan in a TOML plan file; a bad file is refused naming the file and field."""
    import tomllib

    from transforms.plan import PlanError, plan_from_mapping

    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise PlanError(f"{path}: plan file not found") from None
    except tomllib.TOMLDecodeError as error:
        raise PlanError(f"{path}: not valid TOML: {error}") from None
    try:
        return plan_from_mapping(data)
    except PlanError as error:
        raise PlanError(f"{path}: {error}") from None
