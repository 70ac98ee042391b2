"""Lost JSON writes (JSN001): SQLAlchemy JSON column values changed in place and never flagged.

SQLAlchemy writes a JSON attribute only when it is assigned a value that compares unequal to the
loaded one, or after ``flag_modified(obj, "col")``. Changing the loaded dict or list in place is
invisible to it, and so is assigning the same object (or an unchanged shallow copy) back. The
check finds such changes statically, with ``ast`` only (the scanned code is never imported):

1. declarations, over the whole scanned tree: which attribute names are JSON columns and how
   SQLAlchemy tracks them (``MutableDict`` sees top-level keys only), which classes exist, which
   helpers call ``flag_modified`` on an argument;
2. per function, a forward may-analysis over the statements: an in-place change starts a pending
   change, ``flag_modified`` or assigning a new object ends it; one still pending at a return, at
   the end of the function, or when its object's name is rebound is a lost write. A change
   followed on every path by setting a local flag (``changed = True``) is saved by a
   ``flag_modified`` under ``if changed:`` (the dirty-flag idiom);
3. a change pending on a helper's parameter is handed to the helper's callers (rounds until no
   summary changes), so a helper whose every caller flags the object is not reported.

Precision comes first (a check people learn to ignore protects nothing). This module is the
stable import point; each step lives in a module of its own, and each says what it decides:

==========================  ====================================================================
``guard.discovery``         which files are scanned; unreadable or unparsable files (E999)
``guard.columns``           which type expressions are JSON, and how SQLAlchemy tracks each kind
``guard.declarations``      which classes have which JSON columns; what an annotation means
``guard.functions``         which functions are walked; which helpers flag their arguments
``guard.rows``              whether ``obj.col`` is a loaded row's column (most precision rules)
``guard.effects``           what one statement does: change, save, discard, alias, rebind
``guard.dirty_flags``       the dirty-flag idiom: ``changed = True`` ... ``if changed: flag_modified``
``guard.flow``              paths: branches, loops, try/finally, returns; where a change is lost
``guard.lint``              the whole run, helper hand-over rounds included
``guard.report``            messages, ``# noqa``, exit codes; ``guard.sarif`` the SARIF output
``guard.flake8_plugin``     the same findings as ``flake8 --select JSN``
==========================  ====================================================================
"""

from __future__ import annotations

from guard.columns import MUTABLE_DICT, MUTABLE_LIST, PLAIN, TRACKED
from guard.declarations import EXTERNAL, OTHER, Declarations
from guard.discovery import DEFAULT_EXCLUDES, Module, parse_file, python_files
from guard.functions import ANY
from guard.lint import lint_modules, lint_paths, lint_source
from guard.report import CODE, PARSE_ERROR, Finding, ParseFailure, Report

__all__ = [
    "ANY", "CODE", "DEFAULT_EXCLUDES", "EXTERNAL", "MUTABLE_DICT", "MUTABLE_LIST", "OTHER", "PARSE_ERROR", "PLAIN",
    "TRACKED", "Declarations", "Finding", "Module", "ParseFailure", "Report", "lint_modules", "lint_paths",
    "lint_source", "parse_file", "python_files",
]
