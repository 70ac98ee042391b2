"""Where a run's stages spend their time, step by step: ``python -m bench.pipeline --steps``.

Each step is one function of ``db.load``, ``db.validate`` or ``db.extract`` that the run calls
by its module attribute; while ``timed_steps`` is open, those attributes are wrapped in timers,
and the seconds each step took (summed over its calls) are collected. Nothing else changes:
the wrapped function is called with the same arguments and returns the same value.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator

from db import extract, load, validate

# (module, function) in the order a run calls them; the in-transaction checks are timed one by one.
STEPS = (
    (extract, "purchase_months"),
    (extract, "remember_months"),
    (load, "stage_documents"),
    (load, "lock_users_to_write"),
    (validate, "pending_changes"),
    (load, "merge_documents"),
    (load, "record_fingerprints"),
    (load, "write_rank_history"),
    (load, "write_snapshots"),
    (validate, "_written_row_failures"),
    (validate, "_volume_not_conserved"),
    (validate, "_pioneer_failures"),
    (validate, "_committed_mismatches"),
)


def step_name(module, function: str) -> str:
    return f"{module.__name__.removeprefix('db.')}.{function}"


@contextlib.contextmanager
def timed_steps() -> Iterator[dict[str, float]]:
    """Seconds per step (``module.function``) of what runs inside the block, summed over calls."""
    seconds: dict[str, float] = {}
    originals = [(module, name, getattr(module, name)) for module, name in STEPS]

    def timed(original, name):
        @functools.wraps(original)
        def call(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started

        return call

    for module, name, original in originals:
        setattr(module, name, timed(original, step_name(module, name)))
    try:
        yield seconds
    finally:
        for module, name, original in originals:
            setattr(module, name, original)


def steps_line(seconds: dict[str, float]) -> str:
    """The steps that ran, in run order, as ``name 1.23 s`` joined by commas."""
    order = [step_name(m, f) for m, f in STEPS]
    return ", ".join(f"{name} {seconds[name]:.2f} s" for name in order if name in seconds)
