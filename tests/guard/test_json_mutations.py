"""JSN001: SQLAlchemy JSON values changed in place without flag_modified.

Every small case is a code fixture whose buggy lines carry ``# expect: JSN001``; the checker must
flag exactly those lines (recall and precision at once). The platform fixture tree is scored the
same way, and this repository's own code must come out clean.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guard import cli
from guard.json_mutations import lint_paths, lint_source

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
PLATFORM = FIXTURES / "platform"
MARKER = re.compile(r"#\s*expect:\s*JSN001")

MODELS = """
from typing import Annotated, Any
from sqlalchemy import JSON, Column, Integer, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.mutable import MutableDict, MutableList
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.orm.attributes import flag_modified

class Base(DeclarativeBase):
    pass

class User(Base):
    __tablename__ = "users"
    userID = Column(Integer, primary_key=True)
    rank = Column(String(50))
    mlmStatus = Column(JSON)
    mlmVolumes: Mapped[dict] = mapped_column(JSONB)
    totalVolume = Column(JSON)
    personalData = Column(JSON)
    emailVerification = Column(JSON)
    settings = Column(MutableDict.as_mutable(JSON))
    tags = Column(MutableList.as_mutable(JSON))
"""


def _write(folder: Path, files: dict[str, str]) -> None:
    """Write a small tree of dedented sources."""
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def flagged(tmp_path: Path, code: str, models: str = MODELS, columns=()) -> dict[int, str]:
    """Line → message of the findings in ``code.py``, checked next to a ``models.py``."""
    _write(tmp_path, {"models.py": models, "code.py": code})
    report = lint_paths([tmp_path], columns=columns)
    assert report.errors == []
    return {f.line: f.message for f in report.findings if f.path.endswith("code.py")}


def expected(code: str) -> set[int]:
    """The lines of ``code`` marked ``# expect: JSN001``."""
    return {n for n, line in enumerate(textwrap.dedent(code).splitlines(), 1) if MARKER.search(line)}


# --- every pattern, positive and negative ---------------------------------------------------------

CASES = {
    # the regression report's examples
    "pioneer grant through an alias assigned back": """
        def grant_pioneer(user):
            status = user.mlmStatus or {}
            status["hasPioneerBonus"] = True  # expect: JSN001
            user.mlmStatus = status
    """,
    "volumes set through user.mlmVolumes[...]": """
        def credit(user, amount):
            user.mlmVolumes["monthlyPV"] = amount  # expect: JSN001
            user.mlmVolumes["personalTotal"] += amount  # expect: JSN001
    """,
    "property setter on the model": """
        from sqlalchemy import JSON, Column
        from sqlalchemy.orm import DeclarativeBase
        class Base(DeclarativeBase):
            pass
        class Member(Base):
            __tablename__ = "members"
            mlmStatus = Column(JSON)
            @property
            def pioneer(self):
                return self.mlmStatus.get("hasPioneerBonus")
            @pioneer.setter
            def pioneer(self, value):
                self.mlmStatus["hasPioneerBonus"] = value  # expect: JSN001
            def grant(self):
                self.mlmStatus["granted"] = True
                flag_modified(self, "mlmStatus")
    """,
    "helper that increments attempts, callers never flag": """
        def register_attempt(user):
            user.emailVerification["attempts"] += 1  # expect: JSN001
        def check(user, code):
            register_attempt(user)
            return code == user.emailVerification.get("code")
    """,
    "helper that increments attempts, every caller flags": """
        def register_attempt(user):
            user.emailVerification["attempts"] += 1
        def check(user):
            register_attempt(user)
            flag_modified(user, "emailVerification")
        def check_again(session, user):
            register_attempt(user=user)
            flag_modified(user, "emailVerification")
            session.commit()
    """,
    "helper whose one caller of two does not flag": """
        def register_attempt(user):
            user.emailVerification["attempts"] += 1  # expect: JSN001
        def check(user):
            register_attempt(user)
            flag_modified(user, "emailVerification")
        def check_quietly(user):
            register_attempt(user)
    """,
    # every in-place operation
    "in-place operations on the column": """
        def ops(user, k, v):
            user.mlmStatus[k] = v  # expect: JSN001
            user.mlmStatus[k] += v  # expect: JSN001
            del user.mlmStatus[k]  # expect: JSN001
            user.mlmStatus.update(k=v)  # expect: JSN001
            user.mlmStatus.setdefault(k, v)  # expect: JSN001
            user.mlmStatus.pop(k, None)  # expect: JSN001
            user.mlmStatus.clear()  # expect: JSN001
            user.mlmStatus |= {k: v}  # expect: JSN001
            user.totalVolume += [v]  # expect: JSN001
    """,
    "nested changes": """
        def nested(user, k, j, v):
            user.mlmVolumes[k][j] = v  # expect: JSN001
            user.mlmVolumes[k].append(v)  # expect: JSN001
            user.mlmVolumes.get(k, {})[j] = v  # expect: JSN001
            user.mlmVolumes.setdefault("history", []).append(v)  # expect: JSN001
    """,
    "aliases: or, get, loop items, walrus": """
        def aliases(user, v):
            volumes = user.mlmVolumes or {}
            volumes["pv"] = v  # expect: JSN001
            branches = user.mlmVolumes.get("branches", {})
            branches["1"] = v  # expect: JSN001
            for branch in user.mlmVolumes["list"]:
                branch["seen"] = True  # expect: JSN001
            for key, value in user.mlmVolumes.items():
                value["k"] = key  # expect: JSN001
            if (data := user.personalData) is not None:
                data["x"] = v  # expect: JSN001
    """,
    "setattr with the same object": """
        def via_setattr(user):
            status = user.mlmStatus
            status["x"] = 1  # expect: JSN001
            setattr(user, "mlmStatus", status)
    """,
    "shallow copy: nested change, copy assigned back unchanged": """
        def shallow(user):
            volumes = dict(user.mlmVolumes)
            volumes["month"]["pv"] = 1  # expect: JSN001
            user.mlmVolumes = volumes
    """,
    # what is fine
    "new objects assigned": """
        import copy
        def spread(user, k, v):
            user.mlmStatus = {**user.mlmStatus, k: v}
        def copied(user, k, v):
            status = dict(user.mlmStatus or {})
            status[k] = v
            user.mlmStatus = status
        def method_copy(user, v):
            volumes = user.mlmVolumes.copy()
            volumes["pv"] = v
            user.mlmVolumes = volumes
        def deep(user, v):
            volumes = copy.deepcopy(user.mlmVolumes)
            volumes["month"]["pv"] = v
            user.mlmVolumes = volumes
        def merged(user, v):
            user.personalData = user.personalData | {"phone": v}
        def shallow_with_top_level_change(user, v):
            volumes = dict(user.mlmVolumes)
            volumes["month"]["pv"] = v
            volumes["updated"] = True
            user.mlmVolumes = volumes
    """,
    "flag_modified after, in every spelling": """
        from sqlalchemy.orm import attributes
        def plain(user, v):
            user.mlmStatus["x"] = v
            flag_modified(user, "mlmStatus")
        def dotted(user, v):
            user.mlmStatus["x"] = v
            attributes.flag_modified(user, "mlmStatus")
        def keywords(user, v):
            user.mlmStatus["x"] = v
            flag_modified(instance=user, key="mlmStatus")
        def alias_then_flag(user, v):
            status = user.mlmStatus or {}
            status["x"] = v
            user.mlmStatus = status
            flag_modified(user, "mlmStatus")
        def imported_under_another_name(user):
            from sqlalchemy.orm.attributes import flag_modified as mark_changed
            user.mlmStatus["x"] = 1
            mark_changed(user, "mlmStatus")
        def listed_columns(user):
            user.mlmStatus["x"] = 1
            user.mlmVolumes["x"] = 1
            for column in ("mlmStatus", "mlmVolumes"):
                flag_modified(user, column)
        def maybe_no_columns(user, columns):
            user.mlmStatus["x"] = 1  # expect: JSN001
            for column in columns:
                flag_modified(user, column)
    """,
    "flag_modified for another column or object is not enough": """
        def wrong_column(user, v):
            user.mlmStatus["x"] = v  # expect: JSN001
            flag_modified(user, "mlmVolumes")
        def wrong_object(user, sponsor, v):
            user.mlmStatus["x"] = v  # expect: JSN001
            flag_modified(sponsor, "mlmStatus")
    """,
    "helpers that flag their argument": """
        import models
        def save_status(user):
            flag_modified(user, "mlmStatus")
        def save(obj, column):
            flag_modified(obj, column)
        def save_through(obj):
            save(obj, "mlmVolumes")
        class Repo:
            def touch(self, user, column):
                save(user, column)
        def a(user):
            user.mlmStatus["x"] = 1
            save_status(user)
        def b(user):
            user.mlmVolumes["x"] = 1
            save_through(user)
        def c(user, repo: Repo):
            user.personalData["x"] = 1
            repo.touch(user, "personalData")
        def d(user):
            user.mlmStatus["x"] = 1
            save(user, "mlmVolumes")  # another column: not enough on its own
            save(user, "mlmStatus")
    """,
    "reads": """
        def reads(user):
            status = user.mlmStatus or {}
            rank = status.get("rank")
            total = sum(v for v in user.mlmVolumes.values())
            keys = list(user.personalData)
            return rank, total, keys, user.mlmStatus["x"]
    """,
    "a new object's whole value is inserted": """
        from models import User
        def create(session, telegram_id):
            user = User(mlmStatus={}, mlmVolumes={})
            user.mlmStatus["joined"] = True
            user.mlmVolumes["pv"] = 0
            session.add(user)
    """,
    "an attribute of the same name on something that is not a model": """
        class Config:
            def __init__(self):
                self.settings = {}
            def enable(self):
                self.settings["on"] = True
        def configure(config: Config):
            config.settings["mode"] = "fast"
        def from_mapping(payload: dict):
            payload["mlmStatus"] = {}
    """,
    "MutableDict: top-level keys are tracked, nested ones are not": """
        def top(user, v):
            user.settings["lang"] = v
            user.settings.update(theme=v)
            user.settings.setdefault("notifications", {})
            user.settings |= {"x": v}
            del user.settings["old"]
        def nested(user, v):
            user.settings["notifications"]["email"] = v  # expect: JSN001
            user.settings["history"].append(v)  # expect: JSN001
    """,
    "MutableList: its own items are tracked, nested ones are not": """
        def top(user, v):
            user.tags.append(v)
            user.tags += [v]
            user.tags[0] = v
        def nested(user, v):
            user.tags[0]["seen"] = v  # expect: JSN001
    """,
    # every path to the end
    "flag_modified in one branch only": """
        def one_branch(user, paid):
            user.mlmStatus["paid"] = paid  # expect: JSN001
            if paid:
                flag_modified(user, "mlmStatus")
    """,
    "flag_modified in both branches": """
        def both(user, paid):
            user.mlmStatus["paid"] = paid
            if paid:
                flag_modified(user, "mlmStatus")
            else:
                flag_modified(user, "mlmStatus")
    """,
    "early return after the change": """
        def early(user, skip):
            user.mlmStatus["seen"] = True  # expect: JSN001
            if skip:
                return None
            flag_modified(user, "mlmStatus")
            return user
    """,
    "raise after the change: the transaction is rolled back anyway": """
        def refuse(user, bad):
            user.mlmStatus["seen"] = True
            if bad:
                raise ValueError("bad")
            flag_modified(user, "mlmStatus")
    """,
    "try/finally with flag_modified in finally": """
        def guarded(user, compute):
            try:
                user.mlmVolumes["pv"] = compute()
                if user.mlmVolumes["pv"] > 10:
                    return True
            finally:
                flag_modified(user, "mlmVolumes")
            return False
    """,
    "try/except with flag_modified only in the handler": """
        def handled(user, compute):
            try:
                user.mlmVolumes["pv"] = compute()  # expect: JSN001
            except ValueError:
                flag_modified(user, "mlmVolumes")
    """,
    "try/except that swallows an error raised between the change and flag_modified": """
        def swallowed(user, session, compute):
            try:
                user.mlmVolumes["pv"] = compute()
                flag_modified(user, "mlmVolumes")
                session.commit()
            except ValueError:
                session.rollback()
        def rolled_back(user, session):
            try:
                user.mlmVolumes["pv"] = 1
                session.add(user)
                flag_modified(user, "mlmVolumes")
                session.commit()
            except Exception:
                session.rollback()
        def refreshed(user, session):
            user.mlmVolumes["preview"] = 1
            session.refresh(user)
        def swallowed_too_late(user, session, notify):
            try:
                user.mlmVolumes["pv"] = 1  # expect: JSN001
                notify(user)
                flag_modified(user, "mlmVolumes")
            except ValueError:
                pass
    """,
    "loop body changes, flag_modified after the loop": """
        def loop(user, entries):
            for key, value in entries:
                user.mlmVolumes[key] = value
            flag_modified(user, "mlmVolumes")
        def while_loop(user, n):
            while n:
                user.mlmVolumes["n"] = n
                n -= 1
                if n == 5:
                    break
            flag_modified(user, "mlmVolumes")
    """,
    "loop variable changes, flag_modified only after the loop (the last item only)": """
        def loop(users):
            for user in users:
                user.mlmVolumes["pv"] = 0  # expect: JSN001
            flag_modified(user, "mlmVolumes")
        def fixed(users):
            for user in users:
                user.mlmVolumes["pv"] = 0
                flag_modified(user, "mlmVolumes")
    """,
    "flag_modified skipped by continue": """
        def loop(users):
            for user in users:
                user.mlmVolumes["pv"] = 0  # expect: JSN001
                if user.rank == "start":
                    continue
                flag_modified(user, "mlmVolumes")
    """,
    "match statement": """
        def by_kind(user, kind):
            user.mlmStatus["kind"] = kind  # expect: JSN001
            match kind:
                case "a":
                    flag_modified(user, "mlmStatus")
                case "b":
                    pass
        def exhaustive(user, kind):
            user.mlmStatus["kind"] = kind
            match kind:
                case "a":
                    flag_modified(user, "mlmStatus")
                case _:
                    flag_modified(user, "mlmStatus")
    """,
    "noqa": """
        def reproduce(user):
            user.mlmStatus["x"] = 1  # noqa: JSN001
            user.mlmStatus["y"] = 1  # noqa
            user.mlmStatus["z"] = 1  # noqa: E501  # expect: JSN001
    """,
    "noqa on the call that hands a helper's change over": """
        def bump(user):
            user.emailVerification["attempts"] += 1
        def reproduce_the_bug(user):
            bump(user)  # noqa: JSN001
    """,
    "async functions": """
        async def grant(session, user_id):
            user = await session.get(User, user_id)
            user.mlmStatus["x"] = 1  # expect: JSN001
            await session.commit()
        async def grant_fixed(session, user_id):
            user = await session.get(User, user_id)
            async with session.begin():
                user.mlmStatus["x"] = 1
                flag_modified(user, "mlmStatus")
    """,
}


PRECISION_CASES = {
    "annotated with a class the scanned code does not declare": """
        from jinja2 import Environment
        from pydantic import ValidationInfo
        def register(env: Environment, info: ValidationInfo, filters):
            env.filters.update(filters)
            info.context["mode"] = "json"
        def render():
            env = Environment()
            env.filters["money"] = str
            return env
    """,
    "a module-level object is never a session's row": """
        from jinja2 import Environment
        TEMPLATES = Environment()
        def register(filters):
            TEMPLATES.filters.update(filters)
        def local_shadow(user):
            TEMPLATES = user
            TEMPLATES.mlmStatus["x"] = 1  # expect: JSN001
    """,
    "a declared parameter type holds after reassignment": """
        from schemas import Settings
        def merge(payload: Settings | None, user):
            if payload is None:
                payload = load_settings()
            payload.settings["merged"] = True
            user.settings["notifications"]["merged"] = True  # expect: JSN001
    """,
    "self in a class that is no model, base or mixin of one": """
        from sqlalchemy import JSON, Column
        from models import Base
        class Response:
            def handle(self, action):
                self.settings["action"] = action
        class VolumesMixin:
            def credit(self, amount):
                self.mlmVolumes["pv"] = amount  # expect: JSN001
        class Member(VolumesMixin, Base):
            __tablename__ = "members"
            mlmVolumes = Column(JSON)
    """,
    "self.attr typed by the class or its __init__": """
        from schemas import Settings
        class Rule:
            def __init__(self, context: Settings, user):
                self.context = context
                self.user = user
            def apply(self):
                self.context.settings["applied"] = True
                self.user.mlmStatus["applied"] = True  # expect: JSN001
        class Typed:
            context: Settings
            def apply(self):
                self.context.settings["x"] = 1
    """,
    "union annotations: a model among the alternatives still counts": """
        from models import User
        from schemas import Settings
        def either(obj: User | Settings):
            obj.mlmStatus["x"] = 1  # expect: JSN001
        def neither(obj: "Settings | None"):
            obj.mlmStatus["x"] = 1
    """,
}
SCHEMAS = """
from pydantic import BaseModel
class Settings(BaseModel):
    settings: dict
    mlmStatus: dict
class User(BaseModel):
    mlmStatus: dict
"""


@pytest.mark.parametrize("code", PRECISION_CASES.values(), ids=PRECISION_CASES.keys())
def test_objects_that_are_not_models_are_left_alone(tmp_path, code):
    _write(tmp_path, {"schemas.py": SCHEMAS})
    assert set(flagged(tmp_path, code)) == expected(code)


def test_same_named_classes_are_told_apart_by_imports(tmp_path):
    # The platform has an ORM User and an API schema User; an annotation means the one it imports.
    _write(tmp_path, {
        "app/__init__.py": "",
        "app/models.py": MODELS,
        "app/schemas/__init__.py": "from .user import User\n",
        "app/schemas/user.py": "from pydantic import BaseModel\nclass User(BaseModel):\n    mlmStatus: dict\n",
        "app/api.py": """
            from app.schemas import User
            from . import models
            def respond(user: User):
                user.mlmStatus["shown"] = True
            def grant(user: models.User):
                user.mlmStatus["granted"] = True  # expect: JSN001
        """,
        "app/service.py": """
            from .models import User
            def grant(user: User):
                user.mlmStatus["granted"] = True  # expect: JSN001
        """,
    })
    report = lint_paths([tmp_path])
    found = {(Path(f.path).name, f.line) for f in report.findings}
    assert found == {("api.py", 7), ("service.py", 4)}


@pytest.mark.parametrize("code", CASES.values(), ids=CASES.keys())
def test_each_pattern_is_flagged_exactly_where_marked(tmp_path, code):
    assert set(flagged(tmp_path, code)) == expected(code)


# --- how columns are declared ---------------------------------------------------------------------

DECLARATIONS = {
    "Column(JSON)": "data = Column(JSON)",
    "Column(sa.JSON)": "data = sa.Column(sa.JSON, nullable=True)",
    "Column with a name": 'data = Column("payload", JSONB)',
    "mapped_column(JSONB)": "data: Mapped[dict] = mapped_column(JSONB)",
    "mapped_column with a variant": 'data: Mapped[dict] = mapped_column(JSON().with_variant(JSONB(), "postgresql"))',
    "Mapped through an Annotated alias": "data: Mapped[JsonDict]",
    "Mapped Optional through an alias": "data: Mapped[Optional[JsonDict]]",
    "Mapped through the type_annotation_map": "data: Mapped[dict[str, Any] | None]",
    "Mapped with a plain type alias": "data: Mapped[dict] = mapped_column(JsonType)",
    "TypeDecorator with impl = JSONB": "data = Column(JsonText)",
    "SQLModel sa_column": "data: dict = Field(sa_column=Column(JSON))",
}
HEADER = """
    from typing import Annotated, Any, Optional
    import sqlalchemy as sa
    from sqlalchemy import JSON, Column, TypeDecorator
    from sqlalchemy.dialects.postgresql import JSONB
    from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
    JsonDict = Annotated[dict[str, Any], mapped_column(JSON)]
    JsonType = JSON
    class JsonText(TypeDecorator):
        impl = JSONB
        cache_ok = True
    class Base(DeclarativeBase):
        type_annotation_map = {dict[str, Any]: JSONB}
    class Thing(Base):
        __tablename__ = "things"
        name = Column(sa.String)
        plain: Mapped[dict[str, int]] = mapped_column(sa.PickleType)
"""
USE = """
    def change(thing):
        thing.data["k"] = 1  # expect: JSN001
        thing.name["k"] = 1
        thing.plain["k"] = 1
"""


@pytest.mark.parametrize("declaration", DECLARATIONS.values(), ids=DECLARATIONS.keys())
def test_json_columns_are_found_however_declared(tmp_path, declaration):
    models = textwrap.dedent(HEADER) + "    " + declaration + "\n"
    assert set(flagged(tmp_path, USE, models=models)) == expected(USE)


def test_core_table_mapped_imperatively(tmp_path):
    models = """
        from sqlalchemy import JSON, Column, Integer, MetaData, Table
        from sqlalchemy.orm import registry
        metadata = MetaData()
        things = Table("things", metadata, Column("id", Integer), Column("data", JSON))
        class Thing:
            pass
        registry().map_imperatively(Thing, things)
    """
    assert set(flagged(tmp_path, USE, models=models)) == expected(USE)


def test_a_core_table_alone_declares_no_attribute(tmp_path):
    models = """
        from sqlalchemy import JSON, Column, MetaData, Table
        things = Table("things", MetaData(), Column("data", JSON))
    """
    assert flagged(tmp_path, USE, models=models) == {}


def test_columns_option_names_more_json_attributes(tmp_path):
    assert set(flagged(tmp_path, USE, models="", columns=["data"])) == expected(USE)
    assert flagged(tmp_path, USE, models="") == {}


def test_mutable_json_type_with_nested_tracking_is_fine(tmp_path):
    models = """
        from sqlalchemy import Column
        from sqlalchemy.dialects.postgresql import JSONB
        from sqlalchemy_json import mutable_json_type
        class Thing:
            data = Column(mutable_json_type(dbtype=JSONB, nested=True))
    """
    code = "def f(thing):\n    thing.data['a']['b'] = 1\n"
    assert flagged(tmp_path, code, models=models) == {}


# --- messages and output ---------------------------------------------------------------------------


def test_the_message_names_object_column_and_missing_call(tmp_path):
    messages = flagged(tmp_path, CASES["pioneer grant through an alias assigned back"])
    (message,) = messages.values()
    assert "user.mlmStatus" in message and 'flag_modified(user, "mlmStatus")' in message
    assert "through status" in message and "assigning status back to user.mlmStatus is the same object" in message


def test_the_mutabledict_message_says_it_tracks_only_top_level_keys(tmp_path):
    messages = flagged(tmp_path, CASES["MutableDict: top-level keys are tracked, nested ones are not"])
    assert all("MutableDict tracks only top-level keys" in m for m in messages.values()) and messages


def test_early_return_and_helper_callers_are_named(tmp_path):
    early = flagged(tmp_path, CASES["early return after the change"])
    assert "before the return at line 5" in next(iter(early.values()))
    helper = flagged(tmp_path, CASES["helper whose one caller of two does not flag"])
    assert "after register_attempt() is called at line 8" in next(iter(helper.values()))


def test_lint_source_checks_one_text():
    (finding,) = lint_source(MODELS + "def credit(user):\n    user.mlmVolumes['pv'] = 1\n")
    assert finding.obj == "user" and finding.column == "mlmVolumes" and finding.missing_call.startswith("flag_modified(")


def _run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of the subcommand."""
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_text_output_and_exit_codes(tmp_path, capsys):
    _write(tmp_path / "bad", {"models.py": MODELS, "code.py": CASES["volumes set through user.mlmVolumes[...]"]})
    _write(tmp_path / "good", {"models.py": MODELS, "code.py": CASES["reads"]})
    code, out, _ = _run_cli(capsys, str(tmp_path / "bad"))
    assert code == 1
    lines = out.splitlines()
    assert len(lines) == 2 and re.fullmatch(r".*code\.py:3:5: JSN001 in-place change to user\.mlmVolumes .*", lines[0])
    assert _run_cli(capsys, str(tmp_path / "good"))[0] == 0


def test_cli_json_output(tmp_path, capsys):
    _write(tmp_path, {"models.py": MODELS, "code.py": CASES["pioneer grant through an alias assigned back"]})
    code, out, _ = _run_cli(capsys, str(tmp_path), "--format", "json")
    (item,) = json.loads(out)
    assert code == 1 and item["code"] == "JSN001" and item["line"] == 4 and item["column"] == 5
    assert item["object"] == "user" and item["attribute"] == "mlmStatus" and item["missing"] == 'flag_modified(user, "mlmStatus")'


def test_cli_columns_option(tmp_path, capsys):
    _write(tmp_path, {"code.py": "def f(o):\n    o.blob['k'] = 1\n"})
    assert _run_cli(capsys, str(tmp_path))[0] == 0
    assert _run_cli(capsys, str(tmp_path), "--columns", "blob,other")[0] == 1


def test_a_file_that_does_not_parse_is_reported_with_exit_code_2(tmp_path, capsys):
    _write(tmp_path, {"models.py": MODELS, "code.py": CASES["flag_modified in one branch only"], "broken.py": "def f(:\n"})
    code, out, _ = _run_cli(capsys, str(tmp_path))
    assert code == 2
    assert re.search(r"broken\.py:1:\d+: E999 SyntaxError", out) and "code.py:3:5: JSN001" in out  # the rest is still checked
    code, out, _ = _run_cli(capsys, str(tmp_path), "--format", "json")
    assert code == 2 and {item["code"] for item in json.loads(out)} == {"E999", "JSN001"}


def test_usage_errors_exit_with_2(tmp_path, capsys):
    assert _run_cli(capsys)[0] == 2
    assert _run_cli(capsys, str(tmp_path / "missing"))[0] == 2
    assert _run_cli(capsys, str(tmp_path), "--format", "xml")[0] == 2


def test_excluded_and_default_excluded_folders_are_skipped(tmp_path, capsys):
    _write(tmp_path, {"models.py": MODELS, "vendor/code.py": CASES["volumes set through user.mlmVolumes[...]"]})
    _write(tmp_path, {".venv/lib/code.py": CASES["volumes set through user.mlmVolumes[...]"]})
    assert _run_cli(capsys, str(tmp_path), "--exclude", "vendor")[0] == 0
    assert len(lint_paths([tmp_path]).findings) == 2  # vendor/ only; .venv is never scanned


def test_pre_commit_hook_definition():
    yaml = pytest.importorskip("yaml")
    (hook,) = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "lint-json" and hook["entry"] == "mlm-recompute lint-json"
    assert hook["language"] == "python" and hook["types"] == ["python"]


# --- the platform fixture tree, scored against its markers ----------------------------------------


def _marked_lines(root: Path) -> set[tuple[str, int]]:
    """(file, line) of every ``# expect: JSN001`` marker under a folder."""
    return {
        (str(path), n)
        for path in sorted(root.rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if MARKER.search(line)
    }


def test_platform_fixture_precision_and_recall_are_one():
    report = lint_paths([PLATFORM])
    found = {(f.path, f.line) for f in report.findings}
    marked = _marked_lines(PLATFORM)
    true_positives = len(found & marked)
    precision = true_positives / len(found) if found else 1.0
    recall = true_positives / len(marked)
    print(f"platform fixture: {len(marked)} marked, {len(found)} found, {true_positives} true positives, "
          f"precision {precision:.2f}, recall {recall:.2f}")
    assert report.errors == []
    assert found - marked == set(), "false positives"
    assert marked - found == set(), "missed lost writes"
    assert len(marked) >= 20 and (precision, recall) == (1.0, 1.0)


def test_this_repository_has_no_lost_writes():
    # tests/db/test_faults.py reproduces the platform's bug on purpose, marked ``# noqa: JSN001``.
    report = lint_paths([REPO], exclude=[str(FIXTURES.relative_to(REPO))])
    assert report.errors == []
    assert [f.text() for f in report.findings] == []


# --- paths: the analysis against brute-force enumeration of small programs ------------------------

COLUMNS = ("mlmStatus", "mlmVolumes")


def _programs(depth: int):
    """Small statement lists: changes, flags, if/else, return, for loops and try/finally."""
    leaf = st.one_of(
        st.tuples(st.just("change"), st.sampled_from(COLUMNS)),
        st.tuples(st.just("flag"), st.sampled_from(COLUMNS)),
        st.just(("return",)),
    )
    if depth == 0:
        return st.lists(leaf, min_size=1, max_size=3)
    inner = _programs(depth - 1)
    compound = st.one_of(
        st.tuples(st.just("if"), inner, inner),
        st.tuples(st.just("for"), inner),
        st.tuples(st.just("try"), inner, inner),
    )
    return st.lists(st.one_of(leaf, compound), min_size=1, max_size=4)


def _numbered(program, counter: list[int]) -> list:
    """The program with each change numbered in source order: ("change", column, n)."""
    out = []
    for stmt in program:
        if stmt[0] == "change":
            out.append(("change", stmt[1], counter[0]))
            counter[0] += 1
        elif stmt[0] in ("if", "for", "try"):
            out.append((stmt[0], *(_numbered(block, counter) for block in stmt[1:])))
        else:
            out.append(stmt)
    return out


def _source(program, indent: int) -> list[str]:
    """Python text for a numbered program, one line per statement."""
    pad = "    " * indent
    out = []
    for stmt in program:
        kind = stmt[0]
        if kind == "change":
            out.append(f'{pad}user.{stmt[1]}["k"] = 1  # change {stmt[2]}')
        elif kind == "flag":
            out.append(f'{pad}flag_modified(user, "{stmt[1]}")')
        elif kind == "return":
            out.append(f"{pad}return")
        else:
            out.append(pad + {"if": "if c:", "for": "for _i in range(n):", "try": "try:"}[kind])
            out += _source(stmt[1], indent + 1)
            if kind in ("if", "try"):
                out.append(pad + ("else:" if kind == "if" else "finally:"))
                out += _source(stmt[2], indent + 1)
    return out


def _traces(program) -> list[tuple[tuple, bool]]:
    """Every (events, returned) way through a program; loops run 0, 1 or 2 times."""
    results = [((), False)]
    for stmt in program:
        extended = []
        for events, returned in results:
            if returned:
                extended.append((events, True))
                continue
            for more, ret in _stmt_traces(stmt):
                extended.append((events + more, ret))
        results = extended
    return results


def _stmt_traces(stmt) -> list[tuple[tuple, bool]]:
    """The ways through one statement."""
    kind = stmt[0]
    if kind == "change":
        return [((stmt,), False)]
    if kind == "flag":
        return [((("flag", stmt[1], None),), False)]
    if kind == "return":
        return [((), True)]
    if kind == "if":
        return _traces(stmt[1]) + _traces(stmt[2])
    if kind == "for":
        once = _traces(stmt[1])
        twice = [(a, True) if ra else (a + b, rb) for a, ra in once for b, rb in once]
        return [((), False)] + once + twice
    body, final = _traces(stmt[1]), _traces(stmt[2])
    return [(a + b, ra or rb) for a, ra in body for b, rb in final]


def _lost(program) -> set[int]:
    """Numbers of the changes with some way to the end that has no later flag of their column."""
    lost = set()
    for events, _ in _traces(program):
        for i, (kind, column, number) in enumerate(events):
            if kind == "change" and not any(k == "flag" and c == column for k, c, _ in events[i + 1:]):
                lost.add(number)
    return lost


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_programs(2))
def test_paths_agree_with_enumerating_every_path(program):
    program = _numbered(program, [0])
    source = "\n".join([MODELS, "def f(user, c, n):", *_source(program, 1)]) + "\n"
    line_of = {int(m.group(1)): n for n, line in enumerate(source.splitlines(), 1) if (m := re.search(r"# change (\d+)$", line))}
    want = {line_of[number] for number in _lost(program)}
    got = {f.line for f in lint_source(source)}
    assert got == want, source[len(MODELS):]
