"""``mlm-recompute explain USER_ID``: one user's MLM state, from the sources, and why.

Read-only. The user's subtree and sponsor chain are read (db/subtree.py) and handed to the same
``user_state`` the nightly run applies to everyone; the sponsor chain up to the root is part of
the tree given to it so that the user is not mistaken for a root. Every value of the user and of
its downline is therefore the nightly run's (everything they depend on lies below them); the
chain's own values are not (their other branches were not read) and are never shown.

Pioneers are company-wide: the grants stored anywhere and every user's first purchase at or
above the minimum (from the same scan of purchases), restricted to users in the whole tree as
the nightly run restricts them, go through the same ``pioneers`` function.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from decimal import Decimal

import polars as pl

from db import subtree as reads
from db.audit import usd
from db.connection import Database
from transforms import explain as ex
from transforms.documents import PROVENANCE_KEYS, Provenance, documents
from transforms.pioneers import PIONEER_COLUMNS, pioneers
from transforms.plan import Plan
from transforms.problems import InputRejected
from transforms.recompute import Inputs, input_problems, user_state
from transforms.tree import Tree, referral_tree

PARTNERS_SHOWN = 20  # active partners listed by id (the count is always the whole)


class UnknownUser(ValueError):
    """No user has the userID asked about."""


class Part:
    """One user's part of the tree, computed: the whole tree's structure (``tree``), the state of
    the subtree and chain (``state``, ``branches``, as user_state returns them), the company-wide
    pioneers (``granted``) and candidates in the tree, and what was read (``read``)."""

    def __init__(self, tree: Tree, node: int, read: reads.Part, state, branches, granted, candidates, subset_tree: Tree):
        self.tree, self.node, self.read = tree, node, read
        self.state, self.branches, self.granted, self.candidates, self.subset_tree = state, branches, granted, candidates, subset_tree


def computed_part(db: Database, plan: Plan, user_id: int, *, as_of: datetime, period: str, root_telegram_id: int | None) -> Part | dict:
    """Read and compute the user's part; a dict saying why when the user is not in the tree."""
    found: dict = {}

    def choose(links: pl.DataFrame) -> tuple[pl.Series, pl.Series]:
        if links.filter(pl.col("user_id") == user_id).is_empty():
            raise UnknownUser(f"no user has userID {user_id}")
        tree = referral_tree(links, root_telegram_id)
        if tree.size == 0:
            raise InputRejected(list(tree.problems))
        found["tree"] = tree
        node = ex.node_of(tree, user_id)
        if node is None:
            return pl.Series([user_id], dtype=pl.Int64), tree.nodes["user_id"]
        found["node"] = node
        members = pl.concat([ex.subtree(tree, node)["node"], ex.sponsor_chain(tree, node)["node"]])
        found["chosen"] = tree.nodes["user_id"].gather(members)
        return found["chosen"], tree.nodes["user_id"]

    read = reads.read_part(db, as_of, plan.pioneer_min_purchase_cents, plan.pioneer_slots, choose)
    tree = found["tree"]
    if "node" not in found:
        reasons = [p.as_dict() for p in tree.problems if user_id in p.ids or user_id in p.detached_ids]
        return {"in_tree": False, "problems": reasons}
    users = read.users.filter(pl.col("user_id").is_in(found["chosen"].implode()))
    inputs = Inputs(users, read.monthly_volumes, read.candidates.head(0), pl.DataFrame(schema={"purchase_id": pl.Int64, "user_id": pl.Int64, "kind": pl.String}))
    subset_tree = referral_tree(users, root_telegram_id)
    state, branches = user_state(inputs, subset_tree, plan, period)
    # The nightly run's pioneers: stored grants anywhere, candidates of users in the whole tree.
    candidates = read.candidates.join(tree.nodes.select("user_id"), on="user_id", how="semi")
    granted = pioneers(read.users, candidates, plan.pioneer_slots)
    state = state.drop(*PIONEER_COLUMNS[1:], "pioneer_count").join(granted.select(PIONEER_COLUMNS), on="user_id", how="left", maintain_order="left")
    state = state.with_columns(pioneer_count=pl.lit(granted.height, pl.Int32))
    return Part(tree, found["node"], read, state, branches, granted, candidates, subset_tree)


def _money(cents) -> str | None:
    return None if cents is None else usd(cents)


def explain(db: Database, plan: Plan, user_id: int, *, as_of: datetime, period: str, root_telegram_id: int | None) -> dict:
    """The explanation of one user as of ``as_of`` for ``period`` (JSON-ready)."""
    started = time.perf_counter()
    part = computed_part(db, plan, user_id, as_of=as_of, period=period, root_telegram_id=root_telegram_id)
    stored = reads.stored_row(db, user_id)
    head = {"user_id": user_id, "as_of": as_of.astimezone(timezone.utc).isoformat(), "period": period, "plan_version": plan.version}
    if isinstance(part, dict):
        return head | part | {"stored": _stored_scalars(stored), "seconds": round(time.perf_counter() - started, 3)}
    user = part.state.filter(pl.col("user_id") == user_id).row(0, named=True)
    requirements = _in_usd(ex.rank_requirements(user, plan))
    assigned = _stored_document(stored, "mlm_status").get("assignedRank")
    report = head | {
        "in_tree": True,
        "personal": _personal(part, user, plan, period),
        "sponsor_chain": _chain(part),
        "direct_referrals": _direct_referrals(part, user),
        "toward_next_rank": _toward_next_rank(part, user, plan),
        "active_partners": _active_partners(part, user, plan),
        "ranks": requirements,
        "held_rank": ex.held_rank_reason(user, plan, assigned),
        "blocking": ex.blocking_requirements(requirements, user, plan),
        "pioneer": _pioneer(part, user, plan),
        "drift": drift(stored, _document(part, user, plan, as_of)),
        "problems": _problems(part, user_id, plan),
        "read": {
            "subtree_users": int(ex.subtree(part.tree, part.node).height),
            "chain_users": int(user["depth"]),
            "users_in_tree": part.tree.size,
            "seconds": {k: round(v, 3) for k, v in part.read.seconds.items()},
        },
    }
    report["seconds"] = round(time.perf_counter() - started, 3)
    return report


def _in_usd(ranks: list[dict]) -> list[dict]:
    """The requirements with money as exact decimal text, named without the unit."""
    for rank in ranks:
        rank["leg_cap"] = usd(rank.pop("leg_cap_cents"))
        for r in rank["requirements"]:
            if r["requirement"].endswith("_cents"):
                r["requirement"] = r["requirement"].removesuffix("_cents")
                r.update({k: usd(r[k]) for k in ("required", "has", "missing")})
    return ranks


_WORDS = {"personal_volume": "personal volume", "qualifying_volume": "qualifying (capped) volume", "active_partners": "active partners"}


def explain_lines(report: dict) -> list[str]:
    """The explanation for a terminal: a few lines per section."""
    head = f"userID {report['user_id']} as of {report['as_of']} (period {report['period']}, plan {report['plan_version']})"
    if not report["in_tree"]:
        why = "; ".join(f"{p['kind']}: {p.get('detail') or ''}".strip() for p in report["problems"]) or "unreachable from the root"
        return [head, f"  not in the tree, so not computed: {why}"]
    p, nxt, held = report["personal"], report["toward_next_rank"], report["held_rank"]
    chain = " <- ".join(str(c["user_id"]) for c in reversed(report["sponsor_chain"])) or "(the root)"
    lines = [
        head,
        f"  personal: total {p['personal_total']}; PV {p['period_pv']} this period ({'active' if p['is_active'] else 'not active'}: {p['why_active']})",
        "  monthly PV: " + (", ".join(f"{m['month']} {m['pv']}" for m in p["monthly_pv"]) or "none"),
        f"  sponsor chain (root first): {chain} <- {report['user_id']} (depth {len(report['sponsor_chain'])})",
        f"  direct referrals: {len(report['direct_referrals'])}; full volume {p['full_volume']}; team {p['team_size']:,}",
    ]
    for b in nxt["branches"][:10]:
        lines.append(f"    branch {b['referral_user_id']}: {b['full_volume']} -> counted {b['capped_volume']}{' (capped)' if b['is_capped'] else ''}")
    ap = report["active_partners"]
    lines += [
        f"  toward {nxt['next_rank']}: qualifying {nxt['qualifying_volume']} of {nxt['required']} (leg cap {nxt['leg_cap']}, gap {nxt['gap']})",
        f"  active partners: {ap['count']} ({ap['scope']}): {', '.join(map(str, ap['user_ids'])) or '-'}",
        "  ranks:",
    ]
    for rank in report["ranks"]:
        parts = [f"{_WORDS[r['requirement']]} {r['has']}/{r['required']}" + ("" if r["met"] else f" (short {r['missing']})") for r in rank["requirements"]]
        lines.append(f"    {'meets' if rank['qualifies'] else 'not  '} {rank['rank']:<12} " + "; ".join(parts))
    lines.append(f"  rank: {held['rank']} (was {held['previous_rank']}; {held['rule']})")
    block = report["blocking"]
    if block is None:
        lines.append("  next rank: none, the top rank is held")
    elif block["unmet"]:
        lines.append(f"  blocking {block['rank']}: " + "; ".join(f"{_WORDS[r['requirement']]} short by {r['missing']}" for r in block["unmet"]))
    else:
        lines.append(f"  blocking {block['rank']}: {'activity this month' if block['needs_activity'] else 'nothing (promoted next run)'}")
    pioneer = report["pioneer"]
    lines.append(f"  pioneer: {'number ' + str(pioneer['number']) + ', purchase ' + str(pioneer['purchase_id']) + ' at ' + str(pioneer['granted_at']) if pioneer['is_pioneer'] else 'no'} ({pioneer['why']})")
    differ = [d for d in report["drift"] if not d["equal"]]
    lines.append(f"  stored against sources: {len(report['drift']) - len(differ)} of {len(report['drift'])} keys equal")
    lines += [f"    {d['key']}: stored {_short(d['stored'])}, sources say {_short(d['computed'])}" for d in differ]
    lines += [f"  bad input here: {pr['kind']} ids {pr['ids'][:10]} {pr.get('detail') or ''}" for pr in report["problems"]]
    read = report["read"]
    lines.append(f"  read {read['subtree_users']:,} users below and {read['chain_users']} above of {read['users_in_tree']:,}; took {report['seconds']:.2f} s")
    return lines


def _short(value, width: int = 60) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= width else text[: width - 3] + "..."


def _personal(part: Part, user: dict, plan: Plan, period: str) -> dict:
    months = part.read.monthly_volumes.filter(pl.col("user_id") == user["user_id"]).sort("month")
    return {
        "monthly_pv": [{"month": m.strftime("%Y-%m"), "pv": usd(v)} for m, v in months.select("month", "volume_cents").iter_rows()],
        "personal_total": usd(user["personal_volume_total_cents"]),
        "period_pv": usd(user["monthly_pv_cents"]),
        "min_monthly_pv": usd(plan.min_monthly_pv_cents),
        "is_active": user["is_active"],
        "why_active": (
            f"PV {usd(user['monthly_pv_cents'])} in {period} {'reaches' if user['is_active'] else 'is below'} the minimum {usd(plan.min_monthly_pv_cents)}"
        ),
        "last_active_month": user["last_active_month"],
        "full_volume": usd(user["full_volume_cents"]),
        "team_size": int(user["team_size"]),
    }


def _chain(part: Part) -> list[dict]:
    chain = ex.sponsor_chain(part.tree, part.node)
    return chain.select("levels_up", "user_id", "telegram_id", "depth").to_dicts()


def _downline_rows(part: Part) -> pl.DataFrame:
    """The subtree's computed rows (node numbers of the subset tree) with their relative depth."""
    top = part.state.filter(pl.col("user_id") == part.tree.nodes["user_id"][part.node])
    return ex.subtree(part.subset_tree, int(top["node"][0])).select("node", "relative_depth").join(part.state, on="node", how="left")


def _direct_referrals(part: Part, user: dict) -> list[dict]:
    rows = part.branches.filter(pl.col("parent_node") == user["node"]).join(
        part.state.select(pl.col("user_id").alias("referral_user_id"), "rank", "is_active", "monthly_pv_cents"), on="referral_user_id", how="left"
    )
    rows = rows.sort(["branch_cents", "referral_user_id"], descending=[True, False])
    return [
        {
            "user_id": r["referral_user_id"],
            "telegram_id": r["referral_telegram_id"],
            "name": r["referral_name"],
            "rank": r["rank"],
            "is_active": r["is_active"],
            "pv": usd(r["monthly_pv_cents"]),
            "branch_volume": usd(r["branch_cents"]),
        }
        for r in rows.iter_rows(named=True)
    ]


def _toward_next_rank(part: Part, user: dict, plan: Plan) -> dict:
    cap = user["cap_limit_cents"]
    branches = part.branches.filter(pl.col("parent_node") == user["node"]).sort(["branch_cents", "referral_user_id"], descending=[True, False])
    return {
        "next_rank": plan.ranks[user["next_rank_order"]].name,
        "required": _money(user["required_for_next_rank_cents"]),
        "leg_cap": _money(cap),
        "qualifying_volume": _money(user["qualifying_volume_cents"]),
        "gap": _money(user["gap_cents"]),
        "branches": [
            {"referral_user_id": b, "full_volume": usd(v), "capped_volume": usd(min(v, cap)), "is_capped": v > cap}
            for b, v in branches.select("referral_user_id", "branch_cents").iter_rows()
        ],
    }


def _active_partners(part: Part, user: dict, plan: Plan) -> dict:
    """The count the rule gave, and who they are: active users within the depth limit below (or,
    under the ``direct`` scope, among the direct referrals); none for the root, by rule."""
    reach = 1 if plan.active_partners_scope == "direct" else (plan.max_depth or 1 << 62)
    below = _downline_rows(part).filter((pl.col("relative_depth") >= 1) & (pl.col("relative_depth") <= reach) & pl.col("is_active"))
    listed = [] if user["is_root"] else below.sort("relative_depth", "user_id")["user_id"].head(PARTNERS_SHOWN).to_list()
    return {"count": int(user["active_partners"]), "scope": plan.active_partners_scope, "max_depth": plan.max_depth, "user_ids": listed}


def _pioneer(part: Part, user: dict, plan: Plan) -> dict:
    order = ex.pioneer_order(part.candidates, part.granted, user["user_id"], part.read.complete_until)
    base = {"slots": plan.pioneer_slots, "pioneers": part.granted.height, "min_purchase": usd(plan.pioneer_min_purchase_cents)}
    if user["pioneer_number"] is not None:
        why = "stored grant (permanent)" if not user["is_new_pioneer"] else "granted now: its purchase came before the slots ran out"
        return base | {
            "is_pioneer": True,
            "number": user["pioneer_number"],
            "purchase_id": user["pioneer_purchase_id"],
            "granted_at": user["pioneer_granted_at"],
            "why": why + "; numbered 1..N by (grantedAt, purchaseId)",
        }
    if order["candidate"] is None:
        why = f"no single purchase of at least {usd(plan.pioneer_min_purchase_cents)} before the cut-off"
    else:
        c = order["candidate"]
        new_grants = part.granted.height - order["stored_grants"]
        taken = f"{order['stored_grants']} stored grants"
        if order["last_new_grant"]:
            last = order["last_new_grant"]
            taken += f" and {new_grants} earlier candidates (the last: purchaseID {last['purchase_id']} at {last['purchased_at']})"
        why = (
            f"its first purchase of at least {usd(plan.pioneer_min_purchase_cents)} (purchaseID {c['purchase_id']} at {c['purchased_at']}) "
            f"came after {taken} had taken the {plan.pioneer_slots} slots"
        )
        if order["candidates_before"] is not None:  # known where every earlier candidate was read
            why += f"; {order['candidates_before']} candidates came before it"
    return base | {"is_pioneer": False, "candidate": order["candidate"], "why": why}


def _document(part: Part, user: dict, plan: Plan, as_of: datetime) -> dict:
    """The documents the nightly run would write for the user, parsed."""
    row = part.state.filter(pl.col("user_id") == user["user_id"])
    own = part.branches.filter(pl.col("parent_node") == user["node"])
    provenance = Provenance(run_id=0, plan_version=plan.version, as_of=as_of, calculated_at=datetime.now(timezone.utc))
    doc = documents(row, own, plan, provenance).row(0, named=True)
    return {
        "rank": doc["rank"],
        "isActive": doc["is_active"],
        "fullVolume": Decimal(usd(doc["full_volume_cents"])),
        "personalVolumeTotal": Decimal(usd(doc["personal_volume_total_cents"])),
        "mlmVolumes": json.loads(doc["mlm_volumes"], parse_float=Decimal),
        "mlmStatus": json.loads(doc["mlm_status"], parse_float=Decimal),
        "totalVolume": {k: v for k, v in json.loads(doc["total_volume"], parse_float=Decimal).items() if k not in PROVENANCE_KEYS},
    }


def _stored_document(stored: dict | None, column: str):
    text = (stored or {}).get(column)
    try:
        value = json.loads(text, parse_float=Decimal) if text else None
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _stored_scalars(stored: dict | None) -> dict | None:
    if stored is None:
        return None
    return {"rank": stored["rank"], "isActive": stored["is_active"], "fullVolume": _money(stored["full_volume_cents"])}


def _same(stored, computed) -> bool:
    """Equal as the platform reads them: money by value (``"10.00"`` equals ``10``)."""
    def plain(value):
        if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
            return Decimal(value)
        if isinstance(value, str):
            try:
                return Decimal(value) if value.replace(".", "", 1).lstrip("-").isdigit() else value
            except ArithmeticError:
                return value
        if isinstance(value, list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(stored) == plain(computed)


def drift(stored: dict | None, computed: dict) -> list[dict]:
    """What is stored today against what the sources say, key by key: every scalar column and
    every owned key of the three documents (``totalVolume`` without its provenance)."""
    rows = []
    for column, stored_key in (("rank", "rank"), ("isActive", "is_active"), ("fullVolume", "full_volume_cents"), ("personalVolumeTotal", "personal_volume_total_cents")):
        value = (stored or {}).get(stored_key)
        if stored_key.endswith("_cents") and value is not None:
            value = Decimal(usd(value))
        rows.append({"key": column, "stored": value, "computed": computed[column]})
    for column, name in (("mlmVolumes", "mlm_volumes"), ("mlmStatus", "mlm_status"), ("totalVolume", "total_volume")):
        document = _stored_document(stored, name)
        for key, value in computed[column].items():
            rows.append({"key": f"{column}.{key}", "stored": document.get(key), "computed": value})
    return [r | {"equal": _same(r["stored"], r["computed"])} for r in rows]


def _problems(part: Part, user_id: int, plan: Plan) -> list[dict]:
    """Bad input a nightly run would refuse (or quarantine) in the user's part of the tree."""
    users = part.read.users.filter(pl.col("user_id").is_in(part.state["user_id"].implode()))
    empty = pl.DataFrame(schema={"purchase_id": pl.Int64, "user_id": pl.Int64, "kind": pl.String})
    found = input_problems(Inputs(users, part.read.monthly_volumes, part.read.candidates.head(0), empty), plan)
    return [p.as_dict() for p in found]
