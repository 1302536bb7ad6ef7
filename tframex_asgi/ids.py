"""Random ids for requests and rows, drawn from one pool that a forked child never shares.

Ids are 128 random bits from os.urandom, drawn a block at a time: one ``uuid.uuid4()`` is one
syscall, and ids are made on the request path (request ids) and for every audit row. Every id is
fully random (no counter), so ids reveal neither volume nor each other.

``list.pop`` is atomic, so two threads never get the same id. A forked child would hand out the
parent's unused ids a second time (and the writer's ``ON CONFLICT DO NOTHING`` would then drop a
row silently), so the child empties the pool right after ``fork()`` and draws its own.
"""

from __future__ import annotations

import os

__all__ = ["new_hex_id", "new_uuid"]

# Ids per os.urandom call: larger blocks amortise the syscall, smaller ones waste less at exit.
_BATCH = 256
_pool: list[str] = []
# RFC 4122 version 4: the variant's two high bits are 10.
_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}


def _refill() -> None:
    block = os.urandom(16 * _BATCH).hex()
    _pool.extend([block[i : i + 32] for i in range(0, 32 * _BATCH, 32)])


def new_hex_id() -> str:
    """128 random bits as 32 lower-case hex digits (the form of ``uuid4().hex``, no version bits)."""
    try:
        return _pool.pop()
    except IndexError:
        _refill()
        return _pool.pop()


def new_uuid() -> str:
    """A random (version 4) UUID as text, from the same pool."""
    try:
        h = _pool.pop()
    except IndexError:
        _refill()
        h = _pool.pop()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_pool.clear)
