"""Ids for requests and rows, drawn from one pool of random bits that a forked child never shares.

Random bits come from os.urandom, a block at a time: one ``uuid.uuid4()`` is one syscall, and ids
are made on the request path (request ids) and for every audit row.

Two kinds:

- **random** (:func:`new_uuid`, :func:`new_hex_id`): 122 / 128 random bits, for ids handed to
  users (users, roles, API keys): they reveal nothing, not even when they were made.
- **time-ordered** (:func:`new_time_uuid`, :func:`new_time_hex_id`): the Unix time in
  milliseconds (48 bits), then 74 / 80 random bits; the UUID form is RFC 9562's version 7. For
  append-only log rows (audit rows, events, metrics) and request ids: a random key lands on a
  random page of its index, so once the table outgrows the cache every insert reads and writes a
  cold page (at 400k audit rows, random row and request ids made an insert 3.4x dearer than
  time-ordered ones: ``python -m benchmarks.bench_audit_indexes --prefill 400000``); a
  time-ordered key lands on the index's last pages.
  They tell when they were made (the row holds that time anyway), never how many were made: no
  counter.

``list.pop`` is atomic, so two threads never get the same bits. A forked child would hand out the
parent's unused bits a second time (and the writer's ``ON CONFLICT DO NOTHING`` would then drop a
row silently), so the child empties the pool right after ``fork()`` and draws its own.
"""

from __future__ import annotations

import os
import time

__all__ = ["new_hex_id", "new_time_hex_id", "new_time_uuid", "new_uuid"]

# Ids per os.urandom call: larger blocks amortise the syscall, smaller ones waste less at exit.
_BATCH = 256
_pool: list[str] = []
# RFC 4122 / 9562 variant: the two high bits of digit 16 are 10.
_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}
_time_ns = time.time_ns


def _refill() -> None:
    block = os.urandom(16 * _BATCH).hex()
    _pool.extend([block[i : i + 32] for i in range(0, 32 * _BATCH, 32)])


def _bits() -> str:
    try:
        return _pool.pop()
    except IndexError:
        _refill()
        return _pool.pop()


def new_hex_id() -> str:
    """128 random bits as 32 lower-case hex digits (the form of ``uuid4().hex``, no version bits)."""
    return _bits()


def new_uuid() -> str:
    """A random (version 4) UUID as text."""
    h = _bits()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def new_time_hex_id() -> str:
    """32 lower-case hex digits: the Unix time in ms (12 digits), then 80 random bits."""
    return f"{_time_ns() // 1_000_000 & 0xFFFFFFFFFFFF:012x}{_bits()[12:]}"


def new_time_uuid() -> str:
    """A time-ordered (version 7) UUID as text: Unix ms, then 74 random bits."""
    h = _bits()
    t = f"{_time_ns() // 1_000_000 & 0xFFFFFFFFFFFF:012x}"
    return f"{t[:8]}-{t[8:]}-7{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_pool.clear)
