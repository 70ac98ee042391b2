"""Bad input: what is wrong, with the offending ids, so an operator can find the rows."""

from __future__ import annotations

from dataclasses import dataclass, field

# kind -> what the ids are and what is wrong with them
KINDS = {
    "no_root": ("userID", "no root user: neither the configured default referrer nor a single self-sponsored user exists"),
    "several_roots": ("userID", "several users sponsor themselves and no root is configured"),
    "root_setting": ("userID", "sponsors itself, but the configured root (MLM_ROOT_TELEGRAM_ID) is another user"),
    "orphan": ("userID", "upline matches no user's telegramID"),
    "cycle": ("userID", "sponsor chain loops and never reaches the root"),
    "shared_telegram_id": ("userID", "several users hold one telegramID, so whose sponsor it names cannot be told"),
    "unknown_user": ("purchaseID", "purchase of a user that does not exist (or of none: userID NULL)"),
    "bad_price": ("purchaseID", "packPrice is null or negative"),
    "bad_time": ("purchaseID", "createdAt is null"),
    "bad_document": ("userID", "JSON column is not an object, or an owned key holds a value of the wrong shape"),
    "bad_rank": ("userID", "stored rank is not a rank of the plan"),
    "pioneer_overflow": ("userID", "more stored pioneer grants than the plan has slots"),
    "held_pioneer_number": ("userID", "a quarantined pioneer keeps its stored pioneerNumber, but it is missing, repeated or beyond the count of pioneers"),
    "value_overflow": ("userID", "a computed volume does not fit the column it is written to"),
}


@dataclass(frozen=True)
class Problem:
    """One kind of bad input and every row that has it."""

    kind: str
    ids: tuple[int, ...]
    detail: str = ""
    # Users that are not bad themselves but hang below a bad one (unreachable from the root).
    detached_ids: tuple[int, ...] = field(default=())

    def describe(self, limit: int = 20) -> str:
        id_name, what = KINDS[self.kind]
        shown = ", ".join(str(i) for i in self.ids[:limit])
        more = f" and {len(self.ids) - limit} more" if len(self.ids) > limit else ""
        text = f"{self.kind}: {what}"
        if self.ids:
            text += f" ({id_name} {shown}{more})"
        if self.detail:
            text += f"; {self.detail}"
        if self.detached_ids:
            below = ", ".join(str(i) for i in self.detached_ids[:limit])
            extra = f" and {len(self.detached_ids) - limit} more" if len(self.detached_ids) > limit else ""
            text += f"; unreachable below them: userID {below}{extra}"
        return text

    def as_dict(self) -> dict:
        return {"kind": self.kind, "ids": list(self.ids), "detached_ids": list(self.detached_ids), "detail": self.detail}


class InputRejected(Exception):
    """The inputs break the domain's rules; nothing may be written unless the operator quarantines."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("input rejected:\n" + "\n".join("  - " + p.describe() for p in problems))

    def kinds(self) -> set[str]:
        return {p.kind for p in self.problems}


def problem(kind: str, ids, detail: str = "", detached_ids=()) -> Problem:
    if kind not in KINDS:
        raise ValueError(f"unknown problem kind {kind!r}")
    return Problem(kind, tuple(sorted(int(i) for i in ids)), detail, tuple(sorted(int(i) for i in detached_ids)))
