"""Progress of a command's long stages (extract, compute, write, validate, verify; backfill months).

A command opens one reporter (``reporting``) for its duration and makes it the active one; the
stages tell the active reporter where they are through the functions below (``report``,
``rows``, ``part_done``, ``started``, ``advanced``), which do nothing when no reporter is active
(a Prefect deployment's run, a test calling the pipeline): so the pipeline needs no parameter
threaded through it, and its Prefect tasks log their own rates.

* on a terminal (stderr is a TTY): a rich progress bar per stage, pulsing while it runs, then
  full with the rows it handled, the rate and the elapsed time;
* otherwise (a pipe, a CI or Prefect log): one plain line per stage as it ends;
* ``--quiet``: nothing at all.

Progress goes to stderr: stdout holds the command's result (a summary, a table) for scripts.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn
from rich.text import Text


class Reporter:
    """The silent reporter (``--quiet``, or none active); the others override what they show."""

    quiet = True

    def __call__(self, stage: str, seconds: float | None) -> None:
        """The pipeline's stage callback: ``seconds`` None when ``stage`` starts, its duration when it ends."""
        if seconds is None:
            self.started(stage)
        else:
            self.finished(stage)

    def started(self, stage: str, total: int | None = None, unit: str = "rows") -> None:
        """``stage`` begins; ``total``: how many ``unit`` it will handle, when known."""

    def rows(self, stage: str, count: int) -> None:
        """``stage`` has handled ``count`` rows in all."""

    def advanced(self, stage: str, by: int = 1) -> None:
        """``stage`` has handled ``by`` more of its ``total``."""

    def part_done(self, stage: str, count: int, next_part: str) -> None:
        """``stage``'s first part is done (``count`` rows); ``next_part`` starts and ends with it."""

    def finished(self, stage: str) -> None:
        """``stage`` ends (and the part running inside it)."""

    def close(self) -> None:
        """The command is over: end whatever is still shown."""


class _Stage:
    """What a reporter knows of one stage or part: when it began, its rows and its unit."""

    def __init__(self, total: int | None, unit: str):
        self.began = time.perf_counter()
        self.total = total
        self.done: int | None = 0 if total is not None else None
        self.unit = unit
        self.part: str | None = None  # the part running inside it (write's validate)


class PlainReporter(Reporter):
    """One line per stage as it ends (a pipe, a log): ``mlm-recompute: stage extract finished
    in 0.52 s: 12,345 rows (23,741 rows/s)``; every line starts ``mlm-recompute: stage `` so a
    reader of the log can tell progress from the command's own messages."""

    quiet = False

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.stages: dict[str, _Stage] = {}
        self.lock = threading.Lock()

    def started(self, stage: str, total: int | None = None, unit: str = "rows") -> None:
        with self.lock:
            self.stages[stage] = _Stage(total, unit)

    def rows(self, stage: str, count: int) -> None:
        with self.lock:
            if stage in self.stages:
                self.stages[stage].done = count

    def advanced(self, stage: str, by: int = 1) -> None:
        with self.lock:
            state = self.stages.get(stage)
            if state is None:
                return
            state.done = (state.done or 0) + by
            done = f"{state.done:,} of {state.total:,}" if state.total else f"{state.done:,}"
            self._say(f"stage {stage}: {done} {state.unit} done", state)

    def part_done(self, stage: str, count: int, next_part: str) -> None:
        with self.lock:
            state = self.stages.get(stage)
            if state is None:
                return
            state.done = count
            self._say(f"stage {stage} finished in {time.perf_counter() - state.began:.2f} s", state)
            state.part = next_part
            self.stages[next_part] = _Stage(None, state.unit)
            self.stages[next_part].done = count

    def finished(self, stage: str) -> None:
        with self.lock:
            state = self.stages.pop(stage, None)
            if state is None:
                return
            if state.part is not None:
                part = self.stages.pop(state.part)
                self._say(f"stage {state.part} finished in {time.perf_counter() - part.began:.2f} s", part)
            else:
                self._say(f"stage {stage} finished in {time.perf_counter() - state.began:.2f} s", state)

    def _say(self, text: str, state: _Stage) -> None:
        seconds = time.perf_counter() - state.began
        if state.done is not None and state.total is None:
            text += f": {state.done:,} {state.unit} ({state.done / max(seconds, 1e-9):,.0f} {state.unit}/s)"
        print(f"mlm-recompute: {text}", file=self.stream, flush=True)


class _Count(ProgressColumn):
    """Rows handled (``12,345 rows``), or ``3/12 months`` for a stage with a known total."""

    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit", "rows")
        done = task.fields.get("done")
        if task.fields.get("counted"):
            return Text(f"{int(task.completed):,}/{int(task.total or 0):,} {unit}", style="progress.download")
        return Text("" if done is None else f"{done:,} {unit}", style="progress.download")


class _Rate(ProgressColumn):
    """Rows per second over the stage's elapsed time."""

    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit", "rows")
        done = int(task.completed) if task.fields.get("counted") else task.fields.get("done")
        elapsed = task.finished_time if task.finished else task.elapsed
        if not done or not elapsed:
            return Text("")
        rate = done / elapsed
        return Text(f"{rate:,.0f} {unit}/s" if rate >= 10 else f"{rate:,.2f} {unit}/s", style="progress.data.speed")


class _Elapsed(ProgressColumn):
    """Seconds since the stage began (frozen when it ends)."""

    def render(self, task: Task) -> Text:
        elapsed = task.finished_time if task.finished else task.elapsed
        return Text("" if elapsed is None else f"{elapsed:.1f} s", style="progress.elapsed")


class BarReporter(Reporter):
    """A rich progress bar per stage on the terminal of ``console``."""

    quiet = False

    def __init__(self, console: Console):
        self.bars = Progress(
            TextColumn("{task.description:<16}"),
            BarColumn(bar_width=30),
            _Count(),
            _Rate(),
            _Elapsed(),
            console=console,
            refresh_per_second=8,
            # stdout carries the command's result; only stderr (log lines) goes above the bars
            redirect_stdout=False,
        )
        self.tasks: dict[str, TaskID] = {}
        self.parts: dict[str, str] = {}
        self.lock = threading.Lock()
        self.bars.start()

    def started(self, stage: str, total: int | None = None, unit: str = "rows") -> None:
        with self.lock:
            self.tasks[stage] = self.bars.add_task(stage, total=total, unit=unit, done=None, counted=total is not None)

    def rows(self, stage: str, count: int) -> None:
        with self.lock:
            if stage in self.tasks:
                self.bars.update(self.tasks[stage], done=count)

    def advanced(self, stage: str, by: int = 1) -> None:
        with self.lock:
            if stage in self.tasks:
                self.bars.advance(self.tasks[stage], by)

    def part_done(self, stage: str, count: int, next_part: str) -> None:
        with self.lock:
            if stage not in self.tasks:
                return
            self.bars.update(self.tasks[stage], done=count)
            self._end(self.tasks[stage])
            self.parts[stage] = next_part
            self.tasks[next_part] = self.bars.add_task(next_part, total=None, unit="rows", done=count, counted=False)

    def finished(self, stage: str) -> None:
        with self.lock:
            part = self.parts.pop(stage, None)
            if part is not None:
                self._end(self.tasks.pop(part))
                self.tasks.pop(stage, None)
            elif stage in self.tasks:
                self._end(self.tasks.pop(stage))

    def _end(self, task_id: TaskID) -> None:
        """Freeze the bar's time; fill it if the stage said what it handled (a stage that failed
        never did: its bar stays empty)."""
        task = next(t for t in self.bars.tasks if t.id == task_id)
        if not task.finished and not task.fields.get("counted"):  # a counted stage shows how far it got
            self.bars.update(task_id, total=1, completed=1 if task.fields.get("done") is not None else 0)
        self.bars.stop_task(task_id)

    def close(self) -> None:
        with self.lock:
            for task_id in self.tasks.values():
                self._end(task_id)
            self.tasks.clear()
            self.bars.stop()


_active: ContextVar[Reporter] = ContextVar("mlm_progress_reporter", default=Reporter())


def active() -> Reporter:
    """The reporter of the command running in this context (the silent one if none)."""
    return _active.get()


@contextlib.contextmanager
def reporting(*, quiet: bool = False, stream: TextIO | None = None) -> Iterator[Reporter]:
    """The active reporter for a command: bars if ``stream`` (stderr) is a terminal, plain lines
    if not, nothing if ``quiet``."""
    stream = stream if stream is not None else sys.stderr
    if quiet:
        reporter: Reporter = Reporter()
    else:
        console = Console(file=stream)
        reporter = BarReporter(console) if console.is_terminal and not console.is_dumb_terminal else PlainReporter(stream)
    token = _active.set(reporter)
    try:
        yield reporter
    finally:
        _active.reset(token)
        reporter.close()


# The hooks the stages call: each tells the active reporter, if any.


def report(stage: str, seconds: float | None) -> None:
    """``stage`` starts (``seconds`` None) or ends (its duration): the pipeline's callback."""
    active()(stage, seconds)


def started(stage: str, total: int | None = None, unit: str = "rows") -> None:
    active().started(stage, total, unit)


def rows(stage: str, count: int) -> None:
    active().rows(stage, count)


def advanced(stage: str, by: int = 1) -> None:
    active().advanced(stage, by)


def part_done(stage: str, count: int, next_part: str) -> None:
    active().part_done(stage, count, next_part)
