"""The dirty-flag idiom: ``changed = True`` after every change, ``flag_modified`` under ``if changed:``.

Each case is a small program next to its own models; the lines marked ``# expect: JSN001`` must be
exactly the findings. A property test then checks, against enumerating every path of small
programs with flags, that no change lost on some feasible path goes unreported.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from guard.json_mutations import lint_paths, lint_source

MARKER = re.compile(r"#\s*expect:\s*JSN001")

MODELS = """
from sqlalchemy import JSON, Column, Integer
from sqlalchemy.orm import DeclarativeBase

class Base(DeclarativeBase):
    pass

class Feed(Base):
    __tablename__ = "feeds"
    feedID = Column(Integer, primary_key=True)
    cursor = Column(JSON, default=dict)
    seen = Column(JSON, default=list)
"""

SAVED = {
    "flag set after each change in a loop, flag_modified after it": """
        def poll(session, feed, items):
            moved = False
            for item in items:
                if item.id in feed.seen:
                    continue
                feed.seen.append(item.id)
                moved = True
            if moved:
                flag_modified(feed, "seen")
                session.commit()
    """,
    "early return when the flag is not set": """
        def advance(session, feed, position):
            dirty = False
            if feed.cursor.get("at") != position:
                feed.cursor["at"] = position
                dirty = True
            if not dirty:
                return
            flag_modified(feed, "cursor")
    """,
    "every branch that changes sets the flag": """
        def reconcile(feed, wanted, stale):
            changed = 0
            if wanted:
                feed.cursor.update(wanted)
                changed = 1
            elif stale:
                del feed.cursor[stale]
                changed = 1
            if changed:
                flag_modified(feed, "cursor")
    """,
    "the flag tested together with another condition in the branch that needs it false": """
        def maybe(feed, value, quiet):
            touched = False
            feed.cursor["v"] = value
            touched = True
            if quiet or touched:
                flag_modified(feed, "cursor")
    """,
}

LOST = {
    "the flag alone saves nothing": """
        def poll(feed, items):
            moved = False
            for item in items:
                feed.seen.append(item.id)  # expect: JSN001
                moved = True
            return moved
    """,
    "one changing path does not set the flag": """
        def poll(feed, items, errors):
            moved = False
            for item in items:
                feed.seen.append(item.id)
                moved = True
            for error in errors:
                feed.cursor["error"] = error  # expect: JSN001
            if moved:
                flag_modified(feed, "seen")
                flag_modified(feed, "cursor")
    """,
    "the test is of another flag": """
        def advance(feed, position):
            moved = False
            changed = False
            feed.cursor["at"] = position  # expect: JSN001
            moved = True
            if changed:
                flag_modified(feed, "cursor")
    """,
    "the flag is set before the change only": """
        def advance(feed, position):
            dirty = True
            feed.cursor["at"] = position  # expect: JSN001
            if dirty:
                flag_modified(feed, "cursor")
    """,
    "the flag is reset after it was set": """
        def advance(feed, position, undo):
            dirty = False
            feed.cursor["at"] = position  # expect: JSN001
            dirty = True
            if undo:
                dirty = False
            if dirty:
                flag_modified(feed, "cursor")
    """,
    "flag_modified under the flag is for another column": """
        def advance(feed, position):
            dirty = False
            feed.cursor["at"] = position  # expect: JSN001
            dirty = True
            if dirty:
                flag_modified(feed, "seen")
    """,
    "both the flag and another condition must hold": """
        def advance(feed, position, ready):
            dirty = False
            feed.cursor["at"] = position  # expect: JSN001
            dirty = True
            if dirty and ready:
                flag_modified(feed, "cursor")
    """,
    "a global flag can be reset elsewhere": """
        DIRTY = False
        def advance(feed, position):
            global DIRTY
            feed.cursor["at"] = position  # expect: JSN001
            DIRTY = True
            if DIRTY:
                flag_modified(feed, "cursor")
    """,
    "a flag a nested function may reset": """
        def advance(feed, position, later):
            dirty = False
            def undo():
                nonlocal dirty
                dirty = False
            feed.cursor["at"] = position  # expect: JSN001
            dirty = True
            later(undo)
            if dirty:
                flag_modified(feed, "cursor")
    """,
}


def _findings(tmp_path: Path, code: str) -> set[int]:
    """The lines of ``code.py`` with a finding, checked next to the models."""
    (tmp_path / "models.py").write_text(textwrap.dedent(MODELS))
    (tmp_path / "code.py").write_text(textwrap.dedent(code))
    report = lint_paths([tmp_path])
    assert report.errors == []
    return {f.line for f in report.findings if f.path.endswith("code.py")}


def _marked(code: str) -> set[int]:
    """The lines marked ``# expect: JSN001``."""
    return {n for n, line in enumerate(textwrap.dedent(code).splitlines(), 1) if MARKER.search(line)}


@pytest.mark.parametrize("code", SAVED.values(), ids=SAVED.keys())
def test_a_change_vouched_for_by_a_flag_is_saved(tmp_path, code):
    assert _findings(tmp_path, code) == set()


@pytest.mark.parametrize("code", LOST.values(), ids=LOST.keys())
def test_a_flag_that_does_not_cover_every_change_still_reports(tmp_path, code):
    assert _findings(tmp_path, code) == _marked(code) != set()


# --- paths: no change lost on a feasible path goes unreported ----------------------------------------

FLAGS = ("a", "b")


def _programs(depth: int):
    """Small statement lists over one column: changes, flag_modified, flags set and reset, tests of them."""
    flag = st.sampled_from(("a", "a", "b"))  # mostly one flag, so that a set and its test meet often
    leaf = st.one_of(
        st.just(("change",)), st.just(("save",)), st.just(("return",)),
        st.tuples(st.just("set"), flag), st.tuples(st.just("set"), flag), st.tuples(st.just("reset"), flag),
    )
    if depth == 0:
        return st.lists(leaf, min_size=1, max_size=3)
    inner = _programs(depth - 1)
    compound = st.one_of(
        st.tuples(st.just("if"), st.sampled_from(("a", "not a", "b", "c")), inner, inner),
        st.tuples(st.just("for"), inner),
    )
    return st.lists(st.one_of(leaf, compound), min_size=1, max_size=4)


def _tested_programs():
    """Programs whose top level tests a flag after some statements: the idiom's shape and its near misses."""
    test = st.sampled_from(("a", "not a", "b", "c"))
    return st.builds(
        lambda before, tested, then, other, after: before + [("if", tested, then, other)] + after,
        _programs(1), test, _programs(1), _programs(0), st.lists(st.just(("save",)), max_size=1) | _programs(0),
    )


def _numbered(program, counter: list[int]) -> list:
    """The program with each change numbered in source order."""
    out = []
    for stmt in program:
        if stmt[0] == "change":
            out.append(("change", counter[0]))
            counter[0] += 1
        elif stmt[0] == "if":
            out.append(("if", stmt[1], _numbered(stmt[2], counter), _numbered(stmt[3], counter)))
        elif stmt[0] == "for":
            out.append(("for", _numbered(stmt[1], counter)))
        else:
            out.append(stmt)
    return out


def _source(program, indent: int) -> list[str]:
    """Python text for a numbered program."""
    pad = "    " * indent
    out = []
    for stmt in program:
        kind = stmt[0]
        if kind == "change":
            out.append(f'{pad}feed.cursor["k"] = 1  # change {stmt[1]}')
        elif kind == "save":
            out.append(f'{pad}flag_modified(feed, "cursor")')
        elif kind == "return":
            out.append(f"{pad}return")
        elif kind in ("set", "reset"):
            out.append(f"{pad}{stmt[1]} = {kind == 'set'}")
        elif kind == "if":
            out += [f"{pad}if {stmt[1]}:", *_source(stmt[2], indent + 1), f"{pad}else:", *_source(stmt[3], indent + 1)]
        else:
            out += [f"{pad}for _i in range(n):", *_source(stmt[1], indent + 1)]
    return out


def _runs(program, flags: dict) -> list[tuple[tuple, dict, bool]]:
    """Every (events, flag values, returned) way through a program; loops run 0, 1 or 2 times, ``c`` either way."""
    results = [((), flags, False)]
    for stmt in program:
        extended = []
        for events, values, returned in results:
            if returned:
                extended.append((events, values, True))
                continue
            for more, after, ret in _stmt_runs(stmt, values):
                extended.append((events + more, after, ret))
        results = extended
    return results


def _stmt_runs(stmt, flags: dict) -> list[tuple[tuple, dict, bool]]:
    """The ways through one statement from these flag values."""
    kind = stmt[0]
    if kind == "change":
        return [((stmt[1],), flags, False)]
    if kind == "save":
        return [(("save",), flags, False)]
    if kind == "return":
        return [((), flags, True)]
    if kind in ("set", "reset"):
        return [((), {**flags, stmt[1]: kind == "set"}, False)]
    if kind == "if":
        test = stmt[1]
        branches = [True, False] if test == "c" else [(not flags["a"]) if test == "not a" else flags[test]]
        return [run for holds in branches for run in _runs(stmt[2] if holds else stmt[3], flags)]
    once = _runs(stmt[1], flags)
    twice = [(a, fa, True) if ra else (a + b, fb, rb) for a, fa, ra in once for b, fb, rb in _runs(stmt[1], fa)]
    return [((), flags, False)] + once + twice


def _lost(program) -> set[int]:
    """Numbers of the changes that some feasible way through leaves with no flag_modified after them."""
    lost = set()
    for events, _, _ in _runs(program, {flag: False for flag in FLAGS}):
        for i, event in enumerate(events):
            if event != "save" and "save" not in events[i + 1:]:
                lost.add(event)
    return lost


@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(_programs(2) | _tested_programs())
# A flag reset after it was set vouches for nothing; the branch where the flag holds must still save.
@example([("change",), ("set", "a"), ("reset", "a"), ("if", "a", [("save",)], [("set", "b")])])
@example([("change",), ("set", "a"), ("if", "a", [("set", "b")], [("save",)])])
@example([("for", [("change",), ("set", "a")]), ("if", "not a", [("return",)], [("set", "b")]), ("save",)])
def test_no_change_lost_on_a_feasible_path_goes_unreported(program):
    program = _numbered(program, [0])
    lines = [MODELS, "def f(feed, c, n):", "    a = False", "    b = False", *_source(program, 1)]
    source = "\n".join(lines) + "\n"
    line_of = {int(m.group(1)): n for n, line in enumerate(source.splitlines(), 1) if (m := re.search(r"# change (\d+)$", line))}
    reported = {f.line for f in lint_source(source)}
    assert {line_of[number] for number in _lost(program)} <= reported, source[len(MODELS):]
