"""Which files are read, and how: ``.py`` files under the named paths, minus excluded folders, parsed once.

Decides: which files a run scans (a named file always; folders walked with virtualenvs, caches and
build output pruned, plus ``--exclude`` patterns) and what a file that cannot be read or parsed
becomes (a ``ParseFailure``, reported as E999, never skipped silently). Nothing here looks at
what the code means.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from guard.report import ParseFailure

# Folders no scan enters unless named: version control, virtualenvs, caches, build output.
DEFAULT_EXCLUDES = (
    ".git", ".hg", ".svn", ".venv", "venv", ".tox", ".nox", "__pycache__", "build", "dist",
    "node_modules", "site-packages", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".eggs", "*.egg-info",
)


def _excluded(path: Path, patterns: Iterable[str]) -> bool:
    """Whether a pattern names the path's last part, the path, or a trailing part of it."""
    posix = path.as_posix()
    return any(
        fnmatch.fnmatch(path.name, p) or fnmatch.fnmatch(posix, p) or posix.endswith("/" + p.strip("/")) or posix == p
        for p in patterns
    )


def python_files(paths: Iterable[str | Path], exclude: Iterable[str] = ()) -> list[Path]:
    """Every ``.py`` file named or under a named folder, sorted; a named file is never excluded."""
    patterns = (*DEFAULT_EXCLUDES, *exclude)
    found: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            found.add(path)
        elif path.is_dir():
            for folder, dirs, files in os.walk(path):
                # Prune while walking, so a virtualenv is never even listed.
                dirs[:] = [d for d in dirs if not _excluded(Path(folder, d), patterns)]
                found.update(Path(folder, f) for f in files if f.endswith(".py") and not _excluded(Path(folder, f), patterns))
        else:
            raise FileNotFoundError(f"no such file or folder: {raw}")
    return sorted(found)


@dataclass
class Module:
    """One parsed file: its path as scanned, its syntax tree and its text."""

    path: str
    tree: ast.Module
    text: str

    @property
    def lines(self) -> list[str]:
        """The source lines."""
        return self.text.splitlines()


def parse_file(path: Path) -> Module | ParseFailure:
    """The parsed file, or why it could not be parsed."""
    try:
        text = importlib.util.decode_source(path.read_bytes())  # honours a coding cookie
    except (OSError, UnicodeDecodeError, SyntaxError) as error:
        return ParseFailure(str(path), 1, 1, f"cannot read: {error}")
    try:
        return Module(str(path), ast.parse(text, filename=str(path)), text)
    except SyntaxError as error:
        return ParseFailure(str(path), error.lineno or 1, error.offset or 1, f"SyntaxError: {error.msg}")
    except (ValueError, RecursionError, MemoryError) as error:  # a null byte; nesting too deep for the parser
        return ParseFailure(str(path), 1, 1, f"cannot parse: {type(error).__name__}: {error}")

