"""DDL for each SQL dialect, generated from :mod:`.schema`, and the list of migrations.

Migration 1 is the seed's schema exactly; migration 2 adds ``api_keys`` and the audit chain
columns; migration 3 adds the ``audit_logs`` indexes of keyset paging. Statements are
idempotent (IF NOT EXISTS) so a database created by hand from the seed's SQL is adopted rather
than broken.
"""

from __future__ import annotations

from typing import Literal

from tframex_asgi.storage.schema import INDEXES, NOW, TABLES, Column, Table

__all__ = ["LATEST", "MIGRATIONS", "VERSION_TABLE", "Dialect", "column_ddl", "migration_statements", "quote"]

Dialect = Literal["postgresql", "sqlite"]
VERSION_TABLE = "tframex_schema_migrations"
MIGRATIONS: dict[int, str] = {
    1: "seed schema: 13 tables, 9 indexes",
    2: "api_keys; audit_logs hash chain",
    3: "audit_logs keyset indexes for newest-first reads",
}
LATEST = max(MIGRATIONS)

_PG_TYPES = {
    "uuid": "UUID", "text": "TEXT", "timestamp": "TIMESTAMP", "bool": "BOOLEAN", "json": "JSONB",
    "int": "INTEGER", "bigint": "BIGINT", "decimal": "DECIMAL", "inet": "INET",
}  # fmt: skip
# SQLite: TEXT for what PostgreSQL has a dedicated type for; REAL keeps DECIMAL a float (NUMERIC
# affinity would turn 3.0 into the integer 3).
_SQLITE_TYPES = {
    "uuid": "TEXT", "text": "TEXT", "timestamp": "TEXT", "bool": "INTEGER", "json": "TEXT",
    "int": "INTEGER", "bigint": "INTEGER", "decimal": "REAL", "inet": "TEXT",
}  # fmt: skip
_SQLITE_NOW = "(strftime('%Y-%m-%d %H:%M:%f000', 'now'))"


def quote(name: str) -> str:
    # Only schema names reach here; quoting still keeps reserved words ("timestamp", "value") safe.
    return f'"{name}"'


def _type(col: Column, dialect: Dialect) -> str:
    if col.kind == "varchar":
        return f"VARCHAR({col.length})"
    return (_PG_TYPES if dialect == "postgresql" else _SQLITE_TYPES)[col.kind]


def _default(col: Column, dialect: Dialect) -> str:
    if col.default is None:
        return ""
    if col.default is NOW:
        return " DEFAULT " + ("NOW()" if dialect == "postgresql" else _SQLITE_NOW)
    if isinstance(col.default, bool):
        value = ("TRUE" if col.default else "FALSE") if dialect == "postgresql" else str(int(col.default))
        return f" DEFAULT {value}"
    if isinstance(col.default, int):
        return f" DEFAULT {col.default}"
    return f" DEFAULT '{col.default}'"


def column_ddl(tbl: Table, col: Column, dialect: Dialect) -> str:
    parts = [quote(col.name), _type(col, dialect)]
    if tbl.primary_key == (col.name,):
        parts.append("PRIMARY KEY")
    if col.not_null and tbl.primary_key != (col.name,):
        parts.append("NOT NULL")
    if col.unique:
        parts.append("UNIQUE")
    sql = " ".join(parts) + _default(col, dialect)
    if col.choices:
        sql += f" CHECK ({quote(col.name)} IN ({', '.join(repr(c) for c in col.choices)}))"
    if col.references:
        ref = col.references
        sql += f" REFERENCES {quote(ref.table)}({quote(ref.column)})"
        if ref.on_delete == "cascade":
            sql += " ON DELETE CASCADE"
    return sql


def _create_table(tbl: Table, dialect: Dialect, version: int) -> str:
    cols = [column_ddl(tbl, c, dialect) for c in tbl.columns if c.migration <= version]
    if len(tbl.primary_key) > 1:
        cols.append(f"PRIMARY KEY ({', '.join(quote(k) for k in tbl.primary_key)})")
    return f"CREATE TABLE IF NOT EXISTS {quote(tbl.name)} (\n    " + ",\n    ".join(cols) + "\n)"


def migration_statements(version: int, dialect: Dialect) -> list[str]:
    """The statements of one migration, in order (parents before children)."""
    out: list[str] = []
    for tbl in TABLES.values():
        if tbl.migration == version:
            out.append(_create_table(tbl, dialect, version))
        elif tbl.migration < version:
            for col in tbl.columns:
                if col.migration == version:
                    exists = " IF NOT EXISTS" if dialect == "postgresql" else ""
                    out.append(f"ALTER TABLE {quote(tbl.name)} ADD COLUMN{exists} {column_ddl(tbl, col, dialect)}")
    for idx in INDEXES:
        if idx.migration == version:
            cols = ", ".join(quote(c[1:]) + " DESC" if c.startswith("-") else quote(c) for c in idx.columns)
            out.append(f"CREATE INDEX IF NOT EXISTS {quote(idx.name)} ON {quote(idx.table)}({cols})")
    return out
