"""The database password never leaves the URL: the commands run with a password in
MLM_DATABASE_URL (the test servers trust local connections, so it is accepted and never
checked), and nothing they wrote holds it: their stdout and stderr, the files under their working
folder (audit reports, anything under .mlm), the ledger's and every other mlm_ table's rows,
and what the Prefect server keeps of the close (artifacts, logs, flow and task runs). A
connection that fails is one of the commands: its error line names the server, not the password."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid

import psycopg
import pytest
from sqlalchemy.engine import make_url

from db.scenario_data import insert_platform_rows
from tests.db.small_platform import PURCHASES, ROOT, USERS


def _with_password(uri: str, password: str) -> str:
    return make_url(uri).set(password=password).render_as_string(hide_password=False)


def _mlm_rows(db) -> str:
    """Every row of every project table, as text."""
    with db.connect_raw() as connection:
        tables = [r[0] for r in connection.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'mlm%'")]
        rows = [str(r[0]) for table in tables for r in connection.execute(psycopg.sql.SQL("SELECT t::text FROM {} t").format(psycopg.sql.Identifier(table)))]
    assert "mlm_runs" in tables
    return "\n".join(rows)


def _prefect_records() -> str:
    """What the session's Prefect server holds: artifacts, logs, flow runs, task runs."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        parts = [a.model_dump_json() for a in client.read_artifacts()]
        parts += [log.message for log in client.read_logs()]
        parts += [run.model_dump_json() for run in client.read_flow_runs()]
        parts += [run.model_dump_json() for run in client.read_task_runs()]
    return "\n".join(parts)


def _started(args: list[str], env: dict, folder) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "flows.cli", *args], env=env, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finished(process: subprocess.Popen, args: list[str], expected: int) -> str:
    """The command's stdout and stderr, once it has exited with ``expected``."""
    out, err = process.communicate(timeout=300)
    assert process.returncode == expected, (args, err[-2000:])
    return out + err


@pytest.mark.slow
def test_no_output_report_ledger_row_or_artifact_holds_the_password(db, prefect_server, tmp_path):
    from prefect.settings import PREFECT_API_URL

    insert_platform_rows(db, USERS, PURCHASES)
    password = f"pw-{uuid.uuid4().hex}"
    url = _with_password(db.uri, password)
    assert password in url and psycopg.connect(url).close() is None  # accepted (trust), so the commands run
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLM_")}
    env.update(MLM_DATABASE_URL=url, MLM_ROOT_TELEGRAM_ID=str(ROOT), PREFECT_API_URL=PREFECT_API_URL.value())
    unreachable = _with_password("postgresql://postgres@127.0.0.1:1/platform", password)
    groups = [  # one after the other; the commands of a group side by side (the run lock orders audit and close)
        [(["run", "--as-of", "2025-10-20T00:00:00Z"], env, 0)],
        [
            (["audit", "--as-of", "2025-10-20T00:00:00Z", "--out", str(tmp_path / "audit")], env, 0),
            (["close", "--month", "2025-10"], env, 0),
            (["runs"], {**env, "MLM_DATABASE_URL": unreachable}, 5),  # the connection fails: its error line names the server
        ],
        [(["runs"], env, 0), (["show", "1"], env, 0)],
    ]
    said = []
    for group in groups:
        started = [(_started(args, command_env, tmp_path), args, expected) for args, command_env, expected in group]
        said += [_finished(process, args, expected) for process, args, expected in started]
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".json" for p in files) and any(p.suffix == ".md" for p in files)  # the audit's reports
    written = {
        "output": "\n".join(said),
        "files": "\n".join(p.read_bytes().decode(errors="replace") for p in files),
        "database": _mlm_rows(db),
        "prefect": _prefect_records(),
    }
    for mode in ("nightly", "close"):  # the ledger's rows were read (mlm_runs: run_id, mode, status, ...)
        assert re.search(rf"^\(\d+,{mode},succeeded,", written["database"], flags=re.M), written["database"][:2000]
    assert "mlm-close" in written["prefect"]  # the close's runs were read
    assert "127.0.0.1:1" in said[3]  # the failing connection named its server
    assert {where for where, text in written.items() if password in text} == set()
