"""The platform's seventeen tables, declared as its own models create them.

The platform builds its database with ``Base.metadata.create_all`` from its SQLAlchemy models
(no migrations). These declarations are those tables column for column: names, types, NOT
NULL, primary and foreign keys, unique constraints and indexes, and **no server defaults** (the
platform sets its defaults in Python). ``tests/db/test_platform_schema.py`` compares what they
create with the catalog facts of the platform's dumped schema (``tests/db/platform_schema.json``).

What matters to the recompute, and each was missed once:
* ``purchases`` has no index on ``"userID"`` (nor do ``rank_history`` and ``monthly_stats``):
  never look purchases up per user; aggregate set-based, with hash joins.
* ``purchases."optionID"``, ``"projectID"``, ``"packQty"`` and ``"packPrice"`` are NOT NULL;
  ``"createdAt"`` is nullable (the platform sets it in Python).
* ``users`` indexes ``rank``, ``"isActive"`` and ``"fullVolume"``; ``"fullVolume"`` and
  ``"personalVolumeTotal"`` are NOT NULL.

The project creates these tables only where they do not exist (its embedded default, demo data,
tests) and never alters a table the platform made.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

users = sa.Table(
    "users",
    metadata,
    sa.Column("userID", sa.Integer, primary_key=True),
    sa.Column("telegramID", sa.BigInteger, nullable=False, unique=True),
    sa.Column("upline", sa.BigInteger),
    sa.Column("createdAt", sa.DateTime),
    sa.Column("email", sa.String),
    sa.Column("firstname", sa.String),
    sa.Column("surname", sa.String),
    sa.Column("birthday", sa.String),
    sa.Column("address", sa.String),
    sa.Column("phoneNumber", sa.String),
    sa.Column("city", sa.String),
    sa.Column("country", sa.String),
    sa.Column("passport", sa.String),
    sa.Column("lang", sa.String),
    sa.Column("status", sa.String),
    sa.Column("lastActive", sa.DateTime),
    sa.Column("balanceActive", sa.Numeric(12, 2)),
    sa.Column("balancePassive", sa.Numeric(12, 2)),
    sa.Column("rank", sa.String, index=True),
    sa.Column("isActive", sa.Boolean, index=True),
    sa.Column("fullVolume", sa.Numeric(15, 2), nullable=False, index=True),
    sa.Column("totalVolume", sa.JSON),
    sa.Column("teamVolumeTotal", sa.Numeric(12, 2)),
    sa.Column("personalVolumeTotal", sa.Numeric(12, 2), nullable=False),
    sa.Column("mlmStatus", sa.JSON),
    sa.Column("mlmVolumes", sa.JSON),
    sa.Column("personalData", sa.JSON),
    sa.Column("emailVerification", sa.JSON),
    sa.Column("settings", sa.JSON),
    sa.Column("notes", sa.Text),
    sa.Column("stateFSM", sa.String),
)

active_balances = sa.Table(
    "active_balances",
    metadata,
    sa.Column("paymentID", sa.Integer, primary_key=True),
    sa.Column("userID", sa.Integer, sa.ForeignKey("users.userID"), nullable=False),
    sa.Column("firstname", sa.String),
    sa.Column("surname", sa.String),
    sa.Column("amount", sa.Numeric(12, 2), nullable=False),
    sa.Column("status", sa.String),
    sa.Column("reason", sa.String),
    sa.Column("link", sa.String),
    sa.Column("notes", sa.String),
    sa.Column("ownerTelegramID", sa.BigInteger, index=True),
    sa.Column("ownerEmail", sa.String, index=True),
    sa.Column("createdAt", sa.DateTime),
    sa.Column("updatedAt", sa.DateTime),
)

options = sa.Table(
    "options",
    metadata,
    sa.Column("optionID", sa.Integer, primary_key=True),
    sa.Column("projectID", sa.Integer, nullable=False),
    sa.Column("projectName", sa.String),
    sa.Column("costPerShare", sa.Numeric(12, 2)),
    sa.Column("packQty", sa.Integer),
    sa.Column("packPrice", sa.Numeric(12, 2)),
    sa.Column("isActive", sa.Boolean),
)

purchases = sa.Table(
    "purchases",
    metadata,
    sa.Column("purchaseID", sa.Integer, primary_key=True),
    sa.Column("userID", sa.Integer, sa.ForeignKey("users.userID"), nullable=False),
    sa.Column("optionID", sa.Integer, sa.ForeignKey("options.optionID"), nullable=False),
    sa.Column("projectID", sa.Integer, nullable=False, index=True),
    sa.Column("projectName", sa.String),
    sa.Column("packQty", sa.Integer, nullable=False),
    sa.Column("packPrice", sa.Numeric(12, 2), nullable=False),
    sa.Column("ownerTelegramID", sa.BigInteger, index=True),
    sa.Column("ownerEmail", sa.String, index=True),
    sa.Column("createdAt", sa.DateTime),
    sa.Column("updatedAt", sa.DateTime),
)

bonuses = sa.Table(
    "bonuses",
    metadata,
    sa.Column("bonusID", sa.Integer, primary_key=True),
    sa.Column("userID", sa.Integer, sa.ForeignKey("users.userID"), nullable=False),
    sa.Column("downlineID", sa.Integer, sa.ForeignKey("users.userID")),
    sa.Column("purchaseID", sa.Integer, sa.ForeignKey("purchases.purchaseID")),
    sa.Column("projectID", sa.Integer),
    sa.Column("optionID", sa.Integer),
    sa.Column("packQty", sa.Integer),
    sa.Column("packPrice", sa.Numeric(12, 2)),
    sa.Column("commissionType", sa.String),
    sa.Column("uplineLevel", sa.Integer),
    sa.Column("fromRank", sa.String),
    sa.Column("sourceRank", sa.String),
    sa.Column("bonusRate", sa.Numeric(6, 5), nullable=False),
    sa.Column("bonusAmount", sa.Numeric(12, 2), nullable=False),
    sa.Column("compressionApplied", sa.Integer),
    sa.Column("status", sa.String),
    sa.Column("notes", sa.Text),
    sa.Column("ownerTelegramID", sa.BigInteger, index=True),
    sa.Column("ownerEmail", sa.String, index=True),
    sa.Column("createdAt", sa.DateTime),
    sa.Column("updatedAt", sa.DateTime),
)

global_pool = sa.Table(
    "global_pool",
    metadata,
    sa.Column("poolID", sa.Integer, primary_key=True),
    sa.Column("createdAt", sa.DateTime),
    sa.Column("month", sa.String, nullable=False),
    sa.Column("totalCompanyVolume", sa.Numeric(15, 2), nullable=False),
    sa.Column("poolPercentage", sa.Numeric(5, 4)),
    sa.Column("poolSize", sa.Numeric(12, 2), nullable=False),
    sa.Column("qualifiedUsersCount", sa.Integer, nullable=False),
    sa.Column("perUserAmount", sa.Numeric(12, 2)),
    sa.Column("status", sa.String),
    sa.Column("distributedAt", sa.DateTime),
    sa.Column("qualifiedUsers", sa.Text),
)

legacy_migration_v1 = sa.Table(
    "legacy_migration_v1",
    metadata,
    sa.Column("migrationID", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(255), nullable=False, index=True),
    sa.Column("upliner", sa.String(255)),
    sa.Column("project", sa.String(100), nullable=False),
    sa.Column("qty", sa.Integer),
    sa.Column("gsRowIndex", sa.Integer, index=True),
    sa.Column("IsFound", sa.Integer),
    sa.Column("UplinerFound", sa.Integer, nullable=False),
    sa.Column("PurchaseDone", sa.Integer, nullable=False),
    sa.Column("purchaseID", sa.Integer, sa.ForeignKey("purchases.purchaseID", ondelete="SET NULL")),
    sa.Column("status", sa.String(20), nullable=False, index=True),
    sa.Column("errorCount", sa.Integer, nullable=False),
    sa.Column("lastError", sa.Text),
    sa.Column("createdAt", sa.DateTime, nullable=False),
    sa.Column("processedAt", sa.DateTime),
    sa.Index("ix_legacy_v1_status_pending", "status", postgresql_where=sa.text("status = 'pending'")),
    sa.Index("ix_legacy_v1_upliner", "upliner"),
)

legacy_migration_v2 = sa.Table(
    "legacy_migration_v2",
    metadata,
    sa.Column("migrationID", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(255), nullable=False, index=True),
    sa.Column("parent", sa.String(255)),
    sa.Column("value", sa.Numeric(12, 2)),
    sa.Column("gsRowIndex", sa.Integer, index=True),
    sa.Column("IsFound", sa.Integer),
    sa.Column("UplinerFound", sa.Integer, nullable=False),
    sa.Column("PurchaseDone", sa.Integer, nullable=False),
    sa.Column("jetupPurchaseID", sa.Integer, sa.ForeignKey("purchases.purchaseID", ondelete="SET NULL")),
    sa.Column("aquixPurchaseID", sa.Integer, sa.ForeignKey("purchases.purchaseID", ondelete="SET NULL")),
    sa.Column("status", sa.String(20), nullable=False, index=True),
    sa.Column("errorCount", sa.Integer, nullable=False),
    sa.Column("lastError", sa.Text),
    sa.Column("createdAt", sa.DateTime, nullable=False),
    sa.Column("processedAt", sa.DateTime),
    sa.Index("ix_legacy_v2_parent", "parent"),
    sa.Index("ix_legacy_v2_status_pending", "status", postgresql_where=sa.text("status = 'pending'")),
)

monthly_stats = sa.Table(
    "monthly_stats",
    metadata,
    sa.Column("statsID", sa.Integer, primary_key=True),
    sa.Column("createdAt", sa.DateTime),
    sa.Column("userID", sa.Integer, sa.ForeignKey("users.userID"), nullable=False),
    sa.Column("month", sa.String, nullable=False),
    sa.Column("personalVolume", sa.Numeric(12, 2)),
    sa.Column("teamVolume", sa.Numeric(12, 2)),
    sa.Column("activePartnersCount", sa.Integer),
    sa.Column("directReferralsCount", sa.Integer),
    sa.Column("totalTeamSize", sa.Integer),
    sa.Column("activeRank", sa.String),
    sa.Column("commissionsEarned", sa.Numeric(12, 2)),
    sa.Column("bonusesEarned", sa.Numeric(12, 2)),
    sa.Column("globalPoolEarned", sa.Numeric(12, 2)),
    sa.Column("wasActive", sa.Integer),
)

notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("notificationID", sa.Integer, primary_key=True),
    sa.Column("createdAt", sa.DateTime),
    sa.Column("source", sa.String, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("buttons", sa.Text),
    sa.Column("targetType", sa.String, nullable=False),
    sa.Column("targetValue", sa.String, nullable=False),
    sa.Column("priority", sa.Integer),
    sa.Column("category", sa.String),
    sa.Column("importance", sa.String),
    sa.Column("status", sa.String),
    sa.Column("sentAt", sa.DateTime),
    sa.Column("failureReason", sa.Text),
    sa.Column("retryCount", sa.Integer),
    sa.Column("parseMode", sa.String),
    sa.Column("disablePreview", sa.Boolean),
    sa.Column("expiryAt", sa.DateTime),
    sa.Column("silent", sa.Boolean),
    sa.Column("autoDelete", sa.Integer),
)

notification_deliveries = sa.Table(
    "notification_deliveries",
    metadata,
    sa.Column("deliveryID", sa.Integer, primary_key=True),
    sa.Column("notificationID", sa.Integer, sa.ForeignKey("notifications.notificationID")),
    sa.Column("userID", sa.Integer, sa.ForeignKey("users.userID")),
    sa.Column("status", sa.String),
    sa.Column("sentAt", sa.DateTime),
    sa.Column("attempts", sa.Integer),
    sa.Column("errorMessage", sa.String),
)

passive_balances = sa.Table(
    "passive_balances",
    metadata,
    sa.Column("paymentID", sa.Integer, primary_key=True),
    sa.Column("userID", sa.Integer, sa.ForeignKey("users.userID"), nullable=False),
    sa.Column("firstname", sa.String),
    sa.Column("surname", sa.String),
    sa.Column("amount", sa.Numeric(12, 2), nullable=False),
    sa.Column("status", sa.String),
    sa.Column("reason", sa.String),
    sa.Column("link", sa.String),
    sa.Column("notes", sa.String),
    sa.Column("ownerTelegramID", sa.BigInteger, index=True),
    sa.Column("ownerEmail", sa.String, index=True),
    sa.Column("createdAt", sa.DateTime),
    sa.Column("updatedAt", sa.DateTime),
)

payments = sa.Table(
    "payments",
    metadata,
    sa.Column("paymentID", sa.Integer, primary_key=True),
    sa.Column("userID", sa.Integer, sa.ForeignKey("users.userID"), nullable=False),
    sa.Column("firstname", sa.String),
    sa.Column("surname", sa.String),
    sa.Column("direction", sa.String, nullable=False),
    sa.Column("amount", sa.Numeric(18, 2), nullable=False),
    sa.Column("method", sa.String, nullable=False),
    sa.Column("sumCurrency", sa.Numeric(20, 8)),
    sa.Column("fromWallet", sa.String),
    sa.Column("toWallet", sa.String),
    sa.Column("txid", sa.String),
    sa.Column("status", sa.String),
    sa.Column("confirmedBy", sa.String),
    sa.Column("confirmationTime", sa.DateTime),
    sa.Column("notes", sa.String),
    sa.Column("ownerTelegramID", sa.BigInteger, index=True),
    sa.Column("ownerEmail", sa.String, index=True),
    sa.Column("createdAt", sa.DateTime),
    sa.Column("updatedAt", sa.DateTime),
)

projects = sa.Table(
    "projects",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("projectID", sa.Integer, nullable=False, index=True),
    sa.Column("lang", sa.String, nullable=False),
    sa.Column("projectName", sa.String, nullable=False),
    sa.Column("projectTitle", sa.String),
    sa.Column("fullText", sa.Text),
    sa.Column("status", sa.String),
    sa.Column("rate", sa.Float),
    sa.Column("linkImage", sa.String),
    sa.Column("linkPres", sa.String),
    sa.Column("linkVideo", sa.String),
    sa.Column("docsFolder", sa.String),
    sa.UniqueConstraint("projectID", "lang", name="_project_lang_uc"),
)

rank_history = sa.Table(
    "rank_history",
    metadata,
    sa.Column("historyID", sa.Integer, primary_key=True),
    sa.Column("createdAt", sa.DateTime),
    sa.Column("userID", sa.Integer, sa.ForeignKey("users.userID"), nullable=False),
    sa.Column("previousRank", sa.String),
    sa.Column("newRank", sa.String, nullable=False),
    sa.Column("teamVolume", sa.Numeric(12, 2)),
    sa.Column("activePartners", sa.Integer),
    sa.Column("qualificationMethod", sa.String),
    sa.Column("assignedBy", sa.Integer, sa.ForeignKey("users.userID")),
    sa.Column("notes", sa.Text),
)

system_time = sa.Table(
    "system_time",
    metadata,
    sa.Column("timeID", sa.Integer, primary_key=True),
    sa.Column("realTime", sa.DateTime),
    sa.Column("virtualTime", sa.DateTime),
    sa.Column("isTestMode", sa.Boolean),
    sa.Column("createdBy", sa.Integer),
    sa.Column("notes", sa.String),
    sa.Column("schedulerState", sa.JSON),
)

transfers = sa.Table(
    "transfers",
    metadata,
    sa.Column("transferID", sa.Integer, primary_key=True),
    sa.Column("senderUserID", sa.Integer, sa.ForeignKey("users.userID"), nullable=False),
    sa.Column("senderFirstname", sa.String),
    sa.Column("senderSurname", sa.String),
    sa.Column("fromBalance", sa.String, nullable=False),
    sa.Column("amount", sa.Numeric(12, 2), nullable=False),
    sa.Column("receiverUserID", sa.Integer, sa.ForeignKey("users.userID"), nullable=False),
    sa.Column("receiverFirstname", sa.String),
    sa.Column("receiverSurname", sa.String),
    sa.Column("toBalance", sa.String, nullable=False),
    sa.Column("status", sa.String),
    sa.Column("notes", sa.String),
    sa.Column("ownerTelegramID", sa.BigInteger, index=True),
    sa.Column("ownerEmail", sa.String, index=True),
    sa.Column("createdAt", sa.DateTime),
    sa.Column("updatedAt", sa.DateTime),
)

# Every table of the platform, in an order that creates referenced tables first.
PLATFORM_TABLES = tuple(metadata.sorted_tables)
