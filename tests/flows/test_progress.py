"""Progress of long stages: rich bars on a terminal (through a pseudo-terminal), plain lines when
piped, nothing with --quiet; stdout holds only the command's result in every case."""

from __future__ import annotations

import io
import os
import re
import select
import subprocess
import sys

from db.scenario_data import insert_platform_rows
from flows import progress
from tests.db.small_platform import PURCHASES, ROOT, USERS

BAR = "\u2501"  # rich's bar segment
STAGES = ("extract", "compute", "write", "validate", "verify")
AS_OF = "2025-10-20T00:00:00Z"


def _env(db) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLM_")}
    return {**env, "MLM_DATABASE_URL": db.uri, "MLM_ROOT_TELEGRAM_ID": str(ROOT), "TERM": "xterm", "COLUMNS": "120"}


def _on_a_terminal(db, *args: str) -> tuple[int, str, str]:
    """Run the CLI with its stderr on a pseudo-terminal and stdout on a pipe: (exit code, what
    the terminal showed, stdout)."""
    terminal, command_side = os.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", *args], env=_env(db), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=command_side
    )
    os.close(command_side)
    shown = b""
    while True:
        ready, _, _ = select.select([terminal], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(terminal, 65536)
            except OSError:  # EIO: the command side is closed (the process ended)
                break
            if not chunk:
                break
            shown += chunk
        elif process.poll() is not None:
            break
    os.close(terminal)
    stdout = process.stdout.read().decode()
    return process.wait(timeout=120), shown.decode(errors="replace"), stdout


def _piped(db, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], env=_env(db), capture_output=True, text=True, timeout=180)


def test_a_run_on_a_terminal_draws_a_bar_per_stage_and_piped_output_has_none(db):
    insert_platform_rows(db, USERS, PURCHASES)
    code, shown, stdout = _on_a_terminal(db, "run", "--as-of", AS_OF)
    assert code == 0, shown
    for stage in STAGES:
        # the bar's last frame: the stage's name, a full bar, and (all but verify's) rows and a rate
        assert re.search(rf"{stage}\s+(\x1b\[[0-9;]*m)?{BAR}{{10,}}", shown), (stage, shown[-3000:])
    assert re.search(r"extract\s+.*?5 rows.*? rows/s.*?\d+\.\d s", shown), shown[-3000:]  # 3 users + 2 user-months
    assert re.search(r"write\s+.*?3 rows", shown), shown[-3000:]
    assert "\x1b[" in shown and "run 1 succeeded" not in shown  # drawn on the terminal; the result is on stdout
    assert stdout.startswith("run 1 succeeded") and "\x1b" not in stdout and BAR not in stdout

    piped = _piped(db, "run", "--as-of", AS_OF)
    assert piped.returncode == 0, piped.stderr
    assert "\x1b" not in piped.stderr + piped.stdout and BAR not in piped.stderr + piped.stdout
    lines = piped.stderr.splitlines()
    assert [re.match(r"mlm-recompute: stage (\w+) finished in \d+\.\d\d s", line).group(1) for line in lines] == list(STAGES), lines
    assert lines[0].endswith("5 rows (" + lines[0].rsplit("(", 1)[1]) and lines[0].endswith("rows/s)")
    with db.connect_raw() as connection:
        assert connection.execute("SELECT count(*) FROM mlm_runs WHERE status = 'succeeded'").fetchone()[0] == 2


def test_quiet_shows_no_progress(db, monkeypatch, capsys):
    from flows import cli

    insert_platform_rows(db, USERS, PURCHASES)
    monkeypatch.setenv("MLM_DATABASE_URL", db.uri)
    monkeypatch.setenv("MLM_ROOT_TELEGRAM_ID", str(ROOT))
    assert cli.main(["run", "--as-of", AS_OF]) == 0
    assert "mlm-recompute: stage extract finished" in capsys.readouterr().err  # what --quiet removes
    assert cli.main(["run", "--as-of", AS_OF, "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and out.startswith("run 2 succeeded")
    assert cli.main(["--quiet", "run", "--as-of", AS_OF, "--dry-run"]) == 0
    assert capsys.readouterr().err == ""


def test_plain_lines_count_backfill_months_and_a_part_of_a_stage():
    stream = io.StringIO()
    with progress.reporting(stream=stream):  # not a terminal: plain lines
        progress.started("backfill months", total=2, unit="months")
        progress.advanced("backfill months")
        progress.advanced("backfill months")
        progress.report("write", None)
        progress.part_done("write", 7, next_part="validate")
        progress.report("write", 1.0)
    lines = stream.getvalue().splitlines()
    assert lines[:2] == ["mlm-recompute: stage backfill months: 1 of 2 months done", "mlm-recompute: stage backfill months: 2 of 2 months done"]
    assert re.fullmatch(r"mlm-recompute: stage write finished in \d+\.\d\d s: 7 rows \([\d,]+ rows/s\)", lines[2]), lines
    assert re.fullmatch(r"mlm-recompute: stage validate finished in \d+\.\d\d s: 7 rows \([\d,]+ rows/s\)", lines[3]), lines
    assert len(lines) == 4
    silent = io.StringIO()
    with progress.reporting(quiet=True, stream=silent):
        progress.report("extract", None)
        progress.rows("extract", 5)
        progress.report("extract", 0.1)
    assert silent.getvalue() == ""
    assert progress.active().quiet  # outside a command: the silent reporter, hooks do nothing
