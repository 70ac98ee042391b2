"""The README's Prefect deployments, run as the README writes them.

The commands come from the README itself (the ``sh`` block of "Scheduling with Prefect" and the
``prefect deployment run`` commands after it), so a README command that stops working fails
here: a real ``prefect server start`` (a subprocess, in a temporary ``PREFECT_HOME``, on a free
port), the work pool created and limited, ``prefect.yaml`` deployed, a process worker started,
and the nightly and the month-end close deployments run on a scratch database holding a small
demo platform. Both flow runs must end Completed, publish their artifacts, and leave their
writes in PostgreSQL (every user's documents; the previous month closed).

Only what a test has to change is changed: the server's port (``PREFECT_SERVER_API_PORT``, and
the same port in the README's ``PREFECT_API_URL``), ``MLM_DATABASE_URL``'s placeholder (the
scratch database), and how often the worker polls (``PREFECT_WORKER_QUERY_SECONDS``).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import psutil
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
PREFECT_YAML = REPO / "prefect.yaml"
USERS = 300
COMMAND_TIMEOUT = 180  # seconds, for each CLI command (two shared cores: be generous)
RUN_TIMEOUT = 240  # seconds, for both flow runs to end


def prefect_section(text: str) -> str:
    """The README's "Scheduling with Prefect" section."""
    match = re.search(r"^## Scheduling with Prefect\n(.*?)(?=^## )", text, re.S | re.M)
    assert match, "README.md has no '## Scheduling with Prefect' section"
    return match.group(1)


def serve_commands(section: str) -> list[list[str]]:
    """The section's first ``sh`` block as commands (argv lists): ``&&`` splits a line, a
    ``# comment`` is dropped."""
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, "the Prefect section has no ```sh block"
    commands: list[list[str]] = []
    for line in match.group(1).splitlines():
        tokens = shlex.split(line, comments=True)
        command: list[str] = []
        for token in tokens + ["&&"]:
            if token == "&&":
                if command:
                    commands.append(command)
                command = []
            else:
                command.append(token)
    return commands


def run_commands(section: str) -> list[list[str]]:
    """The ``prefect deployment run ...`` commands the section writes in backquotes."""
    return [shlex.split(c) for c in re.findall(r"`(prefect deployment run [^`]+)`", section)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def with_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.hostname}:{port}"))


def _tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


class Processes:
    """Background subprocesses, each in its own process group, stopped (with whatever they
    started) at the end."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.started: list[tuple[subprocess.Popen, Path]] = []

    def start(self, argv: list[str], env: dict[str, str], name: str) -> tuple[subprocess.Popen, Path]:
        log = self.folder / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.started.append((process, log))
        return process, log

    def stop_all(self) -> None:
        for process, _ in reversed(self.started):  # the worker before the server it talks to
            _stop(process)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    # a flow run's process may have left the worker's group: stop those by their own ids
    for child in children:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(children, timeout=5)


def run(argv: list[str], env: dict[str, str]) -> str:
    """Run one README command to its end; its output, or the test fails showing it."""
    completed = subprocess.run(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, f"README command {shlex.join(argv)!r} exited {completed.returncode}:\n{output}"
    return output


def base_env(prefect_home: Path) -> dict[str, str]:
    """This environment without its Prefect and MLM settings, in a temporary PREFECT_HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLM_"))}
    env.update(
        PREFECT_HOME=str(prefect_home),
        DO_NOT_TRACK="1",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_LOGGING_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    return env


def wait_for_server(url: str, server: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, f"prefect server start exited {server.returncode}:\n{_tail(log)}"
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"the Prefect server did not answer {url}/health within {timeout} s:\n{_tail(log)}")


def wait_for_runs(client, run_ids: list[UUID], worker: subprocess.Popen, logs: dict[str, Path]) -> dict:
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        runs = {i: client.read_flow_run(i) for i in run_ids}
        if all(r.state and r.state.is_final() for r in runs.values()):
            return runs
        assert worker.poll() is None, f"the worker exited {worker.returncode}:\n{_tail(logs['worker'])}"
        time.sleep(1)
    states = {str(i): r.state.type.value if r.state else None for i, r in runs.items()}
    pytest.fail(f"flow runs not finished within {RUN_TIMEOUT} s: {states}\nworker:\n{_tail(logs['worker'])}")


def previous_month(moment: datetime) -> str:
    year, month = (moment.year, moment.month - 1) if moment.month > 1 else (moment.year - 1, 12)
    return f"{year:04d}-{month:02d}"


def test_readme_commands_match_the_deployments():
    """Fast checks of what the slow test below relies on: the README's commands name the pool,
    the variables and the deployments ``prefect.yaml`` declares."""
    section = prefect_section(README.read_text())
    commands = serve_commands(section)
    config = yaml.safe_load(PREFECT_YAML.read_text())
    exported = {name for c in commands if c[0] == "export" for name, _, _ in (a.partition("=") for a in c[1:])}
    referenced = set(re.findall(r"\{\{\s*\$(\w+)\s*\}\}", PREFECT_YAML.read_text()))
    assert referenced <= exported, f"prefect.yaml reads {referenced - exported}, which the README never exports"
    assert {"PREFECT_API_URL", "MLM_DATABASE_URL"} <= exported
    pools = {d["work_pool"]["name"] for d in config["deployments"]}
    worker = [c for c in commands if c[:3] == ["prefect", "worker", "start"]]
    assert len(worker) == 1 and pools == {worker[0][worker[0].index("--pool") + 1]}
    names = {f"{flow}/{d['name']}" for d in config["deployments"] for flow in [_flow_name(d["entrypoint"])]}
    runs = run_commands(section)
    assert {c[3] for c in runs} <= names and {"mlm-nightly/nightly", "mlm-close-previous-month/month-end-close"} <= {c[3] for c in runs}


def _flow_name(entrypoint: str) -> str:
    import importlib

    path, function = entrypoint.split(":")
    return getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), function).name


@pytest.mark.slow
def test_readme_deployments_run_nightly_and_close(db, tmp_path):
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, FlowRunFilter, FlowRunFilterParentFlowRunId

    from db.demo import generate_and_load
    from transforms.recompute import period_of

    section = prefect_section(README.read_text())
    commands = serve_commands(section)
    runs = run_commands(section)
    assert commands[0] == ["prefect", "server", "start"], f"the README's block should start the server first: {commands[0]}"

    port = free_port()
    env = base_env(tmp_path / "prefect-home")
    server_env = dict(env, PREFECT_SERVER_API_HOST="127.0.0.1", PREFECT_SERVER_API_PORT=str(port))
    processes = Processes(tmp_path)
    logs: dict[str, Path] = {}
    try:
        server, logs["server"] = processes.start(commands[0], server_env, "server")
        # the demo platform, while the server starts: its last month is the current one, so the
        # nightly run has purchases and the close has a month that has ended
        generate_and_load(db, users=USERS, months=2, seed=7, end_month=period_of(datetime.now(timezone.utc)))
        api_url = None
        worker = None
        for command in commands[1:]:
            if command[0] == "export":
                for assignment in command[1:]:
                    name, _, value = assignment.partition("=")
                    if name == "PREFECT_API_URL":
                        value = api_url = with_port(value, port)
                        wait_for_server(api_url, server, logs["server"])
                    elif name == "MLM_DATABASE_URL":
                        assert value.startswith("postgresql://"), value
                        value = db.uri  # the README's placeholder: here, the scratch database
                    value = value.replace("$PWD", str(REPO))
                    assert "$" not in value, f"cannot expand {assignment!r} from the README"
                    env[name] = value
            elif command[:3] == ["prefect", "worker", "start"]:
                worker, logs["worker"] = processes.start(command, dict(env, PREFECT_WORKER_QUERY_SECONDS="1"), "worker")
            else:
                assert api_url, f"{shlex.join(command)!r} runs before the README exports PREFECT_API_URL"
                run(command, env)
        assert worker is not None, "the README's block never starts a worker"

        run_ids: dict[str, UUID] = {}
        for command in runs:
            output = run(command, env)
            match = re.search(r"UUID: ([0-9a-f-]{36})", output)
            assert match, f"no flow run id in the output of {shlex.join(command)!r}:\n{output}"
            run_ids[command[3]] = UUID(match.group(1))
        nightly_id, close_id = run_ids["mlm-nightly/nightly"], run_ids["mlm-close-previous-month/month-end-close"]

        with SyncPrefectClient(api_url) as client:
            finished = wait_for_runs(client, list(run_ids.values()), worker, logs)
            states = {name: finished[i].state.type.value for name, i in run_ids.items()}
            assert all(s == "COMPLETED" for s in states.values()), f"{states}\nworker:\n{_tail(logs['worker'], 120)}"

            nightly_period = period_of(finished[nightly_id].start_time)
            close_period = previous_month(finished[close_id].start_time.astimezone(timezone.utc))
            (close_flow,) = client.read_flow_runs(flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[close_id])))
            assert close_flow.state.is_completed()
            artifacts = {
                name: {a.key: a for a in client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[i])))}
                for name, i in (("nightly", nightly_id), ("close", close_flow.id))
            }

        with db.connect_raw() as c:
            ledger = c.execute(
                "SELECT run_id, mode, status, period, verified, (summary ->> 'users_written')::int FROM mlm_runs ORDER BY run_id"
            ).fetchall()
            unwritten = c.execute("""SELECT count(*) FROM users WHERE "mlmStatus" IS NULL OR "mlmVolumes" IS NULL OR "totalVolume" IS NULL""").fetchone()[0]
            closed = c.execute("SELECT period FROM mlm_periods WHERE is_closed ORDER BY period").fetchall()
            stats = c.execute("SELECT count(*) FROM monthly_stats WHERE month = %s", [close_period]).fetchone()[0]
            finals = c.execute("SELECT count(*) FROM mlm_period_snapshots WHERE period = %s AND is_final", [close_period]).fetchone()[0]
    finally:
        processes.stop_all()

    by_mode = {row[1]: row for row in ledger}
    assert sorted(by_mode) == ["close", "nightly"] and len(ledger) == 2, ledger
    nightly_run, close_run = by_mode["nightly"], by_mode["close"]
    assert nightly_run[2:] == ("succeeded", nightly_period, True, USERS)  # a first run writes everyone
    assert close_run[2:4] == ("succeeded", close_period)
    assert unwritten == 0
    assert closed == [(close_period,)] and finals == USERS
    assert stats == USERS - 1  # the root has no monthly_stats row

    for name, run_row, period in (("nightly", nightly_run, nightly_period), ("close", close_run, close_period)):
        key = f"mlm-{name}-{period}"
        assert set(artifacts[name]) == {key, f"{key}-changes", f"{key}-page"}, artifacts[name].keys()
        assert ".html)" in artifacts[name][f"{key}-page"].data  # the run's HTML page, linked
        assert artifacts[name][key].type == "markdown" and f"# Run {run_row[0]} succeeded" in artifacts[name][key].data
        assert artifacts[name][f"{key}-changes"].type == "table"

