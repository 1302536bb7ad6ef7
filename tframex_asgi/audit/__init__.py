"""Audit logging: hash-chained ``audit_logs`` rows for requests and admin changes, security
events in ``events``, redaction of every secret, ``GET /audit`` and the ``audit`` CLI."""

from __future__ import annotations

from tframex_asgi.audit.chain import VerifyReport, verify_rows
from tframex_asgi.audit.layer import AuditMiddleware
from tframex_asgi.audit.logger import AuditLogger, get_audit
from tframex_asgi.audit.redact import Redactor, escape_text

__all__ = ["AuditLogger", "AuditMiddleware", "Redactor", "VerifyReport", "escape_text", "get_audit", "verify_rows"]
