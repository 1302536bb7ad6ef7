"""The schema as data: the seed's 13 tables and 9 indexes (migration 1) plus migration 2.

Every backend builds its DDL and checks every table/column name from these definitions, so a
name that is not here never reaches SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tframex_asgi.errors import ValidationError

__all__ = [
    "AUDIT_FILTERS",
    "DEPENDENCY_ORDER",
    "INDEXES",
    "NOW",
    "TABLES",
    "Column",
    "ForeignKey",
    "Index",
    "Kind",
    "Table",
    "column",
    "no_action_referrers",
    "table",
]

Kind = Literal["uuid", "varchar", "text", "timestamp", "bool", "json", "int", "bigint", "decimal", "inet"]
NOW = "now"  # marker for DEFAULT NOW()


@dataclass(frozen=True, slots=True)
class ForeignKey:
    table: str
    column: str = "id"
    on_delete: Literal["cascade", "no action"] = "no action"


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: Kind
    length: int | None = None  # VARCHAR(n)
    not_null: bool = False
    unique: bool = False
    default: object = None  # a literal, or NOW
    references: ForeignKey | None = None
    choices: tuple[str, ...] = ()  # CHECK (col IN (...))
    migration: int = 1  # the migration that adds it


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ("id",)
    migration: int = 1
    by_name: dict[str, Column] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {c.name: c for c in self.columns})

    @property
    def has_id(self) -> bool:
        return self.primary_key == ("id",)


@dataclass(frozen=True, slots=True)
class Index:
    name: str
    table: str
    columns: tuple[str, ...]  # "-col" = DESC
    migration: int = 1


def _c(name: str, kind: Kind, length: int | None = None, **kw: object) -> Column:
    return Column(name, kind, length, **kw)  # type: ignore[arg-type]


def _id() -> Column:
    return Column("id", "uuid", not_null=True)


def _ref(name: str, target: str, cascade: bool = False, **kw: object) -> Column:
    fk = ForeignKey(target, on_delete="cascade" if cascade else "no action")
    return Column(name, "uuid", references=fk, **kw)  # type: ignore[arg-type]


def _now(name: str) -> Column:
    return Column(name, "timestamp", default=NOW)


_TABLES: tuple[Table, ...] = (
    Table("users", (
        _id(), _c("username", "varchar", 255, not_null=True, unique=True), _c("email", "varchar", 255, unique=True),
        _c("password_hash", "varchar", 255), _now("created_at"), _now("updated_at"),
        _c("is_active", "bool", default=True),
    )),
    Table("roles", (
        _id(), _c("name", "varchar", 100, not_null=True, unique=True), _c("description", "text"), _now("created_at"),
    )),
    Table("permissions", (
        _id(), _c("name", "varchar", 100, not_null=True, unique=True), _c("resource", "varchar", 100, not_null=True),
        _c("action", "varchar", 50, not_null=True), _c("description", "text"),
    )),
    Table("role_permissions", (
        _ref("role_id", "roles", True, not_null=True), _ref("permission_id", "permissions", True, not_null=True),
    ), primary_key=("role_id", "permission_id")),
    Table("user_roles", (
        _ref("user_id", "users", True, not_null=True), _ref("role_id", "roles", True, not_null=True),
        _now("assigned_at"), _ref("assigned_by", "users"),
    ), primary_key=("user_id", "role_id")),
    Table("conversations", (
        _id(), _ref("user_id", "users"), _c("agent_name", "varchar", 255, not_null=True), _c("title", "varchar", 500),
        _now("created_at"), _now("updated_at"), _c("metadata", "json"),
    )),
    Table("messages", (
        _id(), _ref("conversation_id", "conversations", True),
        _c("role", "varchar", 20, not_null=True, choices=("system", "user", "assistant", "tool")),
        _c("content", "text"), _c("tool_calls", "json"), _c("tool_call_id", "varchar", 255),
        _c("name", "varchar", 255), _now("created_at"), _c("metadata", "json"),
    )),
    Table("flow_executions", (
        _id(), _ref("user_id", "users"), _c("flow_name", "varchar", 255, not_null=True),
        _c("status", "varchar", 50, default="running"), _c("initial_input", "text"), _c("final_output", "text"),
        _now("started_at"), _c("completed_at", "timestamp"), _c("error_message", "text"), _c("metadata", "json"),
    )),
    Table("flow_steps", (
        _id(), _ref("execution_id", "flow_executions", True), _c("step_name", "varchar", 255, not_null=True),
        _c("step_type", "varchar", 100, not_null=True), _c("input_data", "text"), _c("output_data", "text"),
        _c("status", "varchar", 50, default="pending"), _c("started_at", "timestamp"),
        _c("completed_at", "timestamp"), _c("error_message", "text"), _c("step_order", "int", not_null=True),
    )),
    Table("agent_executions", (
        _id(), _ref("user_id", "users"), _ref("conversation_id", "conversations"),
        _ref("flow_execution_id", "flow_executions"), _c("agent_name", "varchar", 255, not_null=True),
        _c("input_message", "text"), _c("output_message", "text"), _c("execution_time_ms", "int"),
        _c("tool_calls_count", "int", default=0), _c("status", "varchar", 50, default="success"),
        _c("error_message", "text"), _now("started_at"), _c("completed_at", "timestamp"), _c("metadata", "json"),
    )),
    Table("tool_calls", (
        _id(), _ref("agent_execution_id", "agent_executions", True), _c("tool_name", "varchar", 255, not_null=True),
        _c("tool_type", "varchar", 50, not_null=True), _c("arguments", "json"), _c("result", "text"),
        _c("execution_time_ms", "int"), _c("status", "varchar", 50, default="success"), _c("error_message", "text"),
        _now("called_at"), _c("completed_at", "timestamp"),
    )),
    Table("metrics", (
        _id(), _c("metric_name", "varchar", 255, not_null=True), _c("metric_type", "varchar", 50, not_null=True),
        _c("value", "decimal"), _c("labels", "json"), _now("timestamp"), _c("source", "varchar", 100),
    )),
    Table("events", (
        _id(), _c("event_type", "varchar", 100, not_null=True), _c("event_source", "varchar", 100, not_null=True),
        _ref("user_id", "users"), _c("resource_type", "varchar", 100), _c("resource_id", "varchar", 255),
        _c("action", "varchar", 100, not_null=True), _c("status", "varchar", 50, default="success"),
        _c("details", "json"), _c("ip_address", "inet"), _c("user_agent", "text"), _now("created_at"),
    )),
    Table("audit_logs", (
        _id(), _ref("user_id", "users"), _c("action", "varchar", 100, not_null=True),
        _c("resource_type", "varchar", 100, not_null=True), _c("resource_id", "varchar", 255),
        _c("old_values", "json"), _c("new_values", "json"), _c("ip_address", "inet"), _c("user_agent", "text"),
        _now("created_at"),
        # Migration 2 (docs/internal/contracts.md): the audit hash chain and request context.
        _c("chain_id", "varchar", 64, migration=2), _c("seq", "bigint", migration=2),
        _c("prev_hash", "varchar", 64, migration=2), _c("row_hash", "varchar", 64, migration=2),
        _c("status", "varchar", 50, migration=2), _c("reason", "varchar", 100, migration=2),
        _c("request_id", "varchar", 128, migration=2),
    )),
    Table("api_keys", (
        _id(), _ref("user_id", "users", True), _c("name", "varchar", 255),
        _c("prefix", "varchar", 32, not_null=True, unique=True), _c("key_hash", "varchar", 255, not_null=True),
        _c("scopes", "json"), _now("created_at"), _c("expires_at", "timestamp"), _c("revoked_at", "timestamp"),
        _c("last_used_at", "timestamp"),
    ), migration=2),
)  # fmt: skip

TABLES: dict[str, Table] = {t.name: t for t in _TABLES}

# The equality filters of GET /audit, each with its own keyset index (migration 3).
AUDIT_FILTERS = ("user_id", "action", "status", "reason", "request_id", "chain_id")

INDEXES: tuple[Index, ...] = (
    Index("idx_conversations_user_created", "conversations", ("user_id", "-created_at")),
    Index("idx_messages_conversation_created", "messages", ("conversation_id", "created_at")),
    Index("idx_flow_executions_user_started", "flow_executions", ("user_id", "-started_at")),
    Index("idx_flow_steps_execution_order", "flow_steps", ("execution_id", "step_order")),
    Index("idx_agent_executions_started", "agent_executions", ("-started_at",)),
    Index("idx_tool_calls_agent_called", "tool_calls", ("agent_execution_id", "called_at")),
    Index("idx_metrics_name_timestamp", "metrics", ("metric_name", "-timestamp")),
    Index("idx_events_type_created", "events", ("event_type", "-created_at")),
    Index("idx_audit_logs_user_created", "audit_logs", ("user_id", "-created_at")),
    Index("idx_audit_logs_chain_seq", "audit_logs", ("chain_id", "seq"), migration=2),
    # Migration 3: GET /audit and `audit tail` read newest first by keyset on (created_at, id), with
    # at most the equality filters below; each read is then one index range scan whatever the
    # table's size (docs/audit.md, "Paging"). The seed's indexes above stay as they are.
    Index("idx_audit_logs_created_id", "audit_logs", ("-created_at", "-id"), migration=3),
    *(
        Index(f"idx_audit_logs_{name}_created_id", "audit_logs", (name, "-created_at", "-id"), migration=3)
        for name in AUDIT_FILTERS
    ),
)


def table(name: object) -> Table:
    """The table called ``name``; anything else is a :class:`ValidationError` naming it."""
    found = TABLES.get(name) if isinstance(name, str) else None
    if found is None:
        raise ValidationError(f"unknown table {name!r}", code="unknown_table")
    return found


def column(tbl: Table, name: object) -> Column:
    found = tbl.by_name.get(name) if isinstance(name, str) else None
    if found is None:
        raise ValidationError(f"unknown column {name!r} in table {tbl.name!r}", code="unknown_column")
    return found


def no_action_referrers(parent: Table) -> list[tuple[Table, str]]:
    """(child table, column) of the foreign keys to ``parent`` without ON DELETE CASCADE."""
    return [
        (child, col.name)
        for child in TABLES.values()
        for col in child.columns
        if col.references and col.references.table == parent.name and col.references.on_delete != "cascade"
    ]


def _level(name: str) -> int:
    parents = {c.references.table for c in TABLES[name].columns if c.references and c.references.table != name}
    return 1 + max((_level(p) for p in parents), default=0)


# Sort key putting every table after the tables it references (then by name). The write queue
# groups a batch by it: a child's parent is then in an earlier batch or earlier in this one, and
# each table gets one executemany per batch instead of one per row when parents and children
# alternate.
DEPENDENCY_ORDER: dict[str, tuple[int, str]] = {name: (_level(name), name) for name in TABLES}
