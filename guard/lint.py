"""The whole run: files parsed, declarations learned from all of them, every relevant function analysed.

Decides the order of the work: a function is analysed only when it names a JSON column or calls a
helper that hands a pending change over; helpers hand changes to their callers, so the analysis
runs in rounds until no helper's hand-over changes (only the callers of a changed helper are run
again). ``lint_paths`` is what ``mlm-recompute lint-json`` and the flake8 plugin call.
"""

from __future__ import annotations

import ast
import gc
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from guard.declarations import Declarations
from guard.discovery import Module, parse_file, python_files
from guard.flow import FunctionAnalysis
from guard.functions import Function
from guard.report import Finding, ParseFailure, Report, findings_of

def _relevant(fn: Function, decls: Declarations, escapes: dict[str, list]) -> bool:
    """Whether a function can hold a lost write: it names a JSON column or calls a helper that hands one over."""
    return bool(fn.attrs & decls.json_attrs.keys()) or bool(fn.call_names & escapes.keys())


def lint_modules(modules: list[Module], columns: Iterable[str] = (), noqa: bool = True) -> list[Finding]:
    """The lost writes in parsed modules, declarations taken from all of them (``noqa=False``: none silenced)."""
    decls = Declarations(modules, columns)
    escapes: dict[str, list] = {}
    analyses: dict[int, FunctionAnalysis] = {}
    changed: set[str] | None = None  # helper names whose hand-over changed last round (None: first round)
    for _ in range(20):  # helpers hand changes to callers; a few rounds settle any real call graph
        for fn in decls.functions:
            if not _relevant(fn, decls, escapes):
                analyses.pop(id(fn.node), None)
            elif id(fn.node) not in analyses or changed is None or fn.call_names & changed:
                # Only callers of a helper whose summary changed can come out differently.
                analysis = FunctionAnalysis(fn, decls, escapes)
                analysis.run()
                analyses[id(fn.node)] = analysis
        summaries: dict[str, list] = {}
        for analysis in analyses.values():
            if analysis.handed_over:
                fn = analysis.fn
                summaries.setdefault(fn.name, []).append((tuple(fn.params), fn.shift, tuple(analysis.handed_over)))
        changed = {name for name in summaries.keys() | escapes.keys() if summaries.get(name) != escapes.get(name)}
        escapes = summaries
        if not changed:
            break
    return findings_of(list(analyses.values()), noqa)


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Hold off cyclic garbage collection while many ASTs are parsed and analysed."""
    collecting = gc.isenabled()
    # Thousands of retained ASTs make every cyclic collection slower; ASTs hold no cycles to collect.
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def parse_files(files: Iterable[Path]) -> tuple[list[Module], list[ParseFailure]]:
    """The files parsed, and the ones that could not be."""
    modules, errors = [], []
    for path in files:
        parsed = parse_file(path)
        (errors if isinstance(parsed, ParseFailure) else modules).append(parsed)
    return modules, errors


def lint_paths(paths: Iterable[str | Path], columns: Iterable[str] = (), exclude: Iterable[str] = ()) -> Report:
    """Lint files and folders: every lost JSON write, and every file that did not parse."""
    files = python_files(paths, exclude)
    with cyclic_gc_paused():
        modules, errors = parse_files(files)
        return Report(lint_modules(modules, columns), errors, len(files))


def lint_source(source: str, path: str = "<source>", columns: Iterable[str] = ()) -> list[Finding]:
    """Lint one piece of source text on its own (tests, editors)."""
    return lint_modules([Module(path, ast.parse(source), source)], columns)
