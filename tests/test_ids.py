"""The id pool shared by request ids and audit row ids: formats, uniqueness, and fork safety."""

from __future__ import annotations

import os
import uuid

import pytest

from tframex_asgi import ids

# Three pool refills, so the child also draws ids from blocks of its own.
_DRAWS = 3 * ids._BATCH


def test_hex_ids_and_uuids_have_their_formats_and_never_repeat() -> None:
    hexes = [ids.new_hex_id() for _ in range(5000)]
    uuids = [ids.new_uuid() for _ in range(5000)]
    assert len(set(hexes)) == len(hexes) and len(set(uuids)) == len(uuids)
    assert all(len(h) == 32 and int(h, 16) >= 0 and h == h.lower() for h in hexes)
    for text in uuids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122
    # Fully random, no counter: the first 8 digits differ beyond chance.
    assert len({h[:8] for h in hexes}) > 4900


def test_time_ordered_ids_lead_with_the_time_and_keep_80_random_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1_796_600_000_123_456_789]
    monkeypatch.setattr(ids, "_time_ns", lambda: now[0])
    first_hex, first_uuid = ids.new_time_hex_id(), ids.new_time_uuid()
    parsed = uuid.UUID(first_uuid)
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122 and str(parsed) == first_uuid
    # RFC 9562: the first 48 bits are the Unix time in milliseconds.
    assert int(first_hex[:12], 16) == parsed.int >> 80 == 1_796_600_000_123
    now[0] += 1_000_000  # one millisecond later: every id sorts after the earlier ones
    later_hex = [ids.new_time_hex_id() for _ in range(3000)]
    later_uuid = [ids.new_time_uuid() for _ in range(3000)]
    assert min(later_hex) > first_hex and min(later_uuid) > first_uuid
    assert len(set(later_hex)) == len(later_hex) and len(set(later_uuid)) == len(later_uuid)
    # Within one millisecond no counter: the digits after the time differ beyond chance.
    assert len({h[12:20] for h in later_hex}) > 2900
    assert len({u.replace("-", "")[13:21] for u in later_uuid}) > 2900


def _draw() -> list[str]:
    # Alternating, as the request path and the audit rows of one process do.
    makers = (ids.new_hex_id, ids.new_uuid, ids.new_time_hex_id, ids.new_time_uuid)
    return [makers[i % 4]() for i in range(_DRAWS)]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_never_hands_out_the_parents_ids() -> None:
    ids.new_hex_id()  # the pool now holds ids the parent has not handed out yet
    pending = set(ids._pool)
    assert pending
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report every id it hands out, then leave without running pytest's exit
        try:
            os.write(write, ",".join(_draw()).encode())
        finally:
            os._exit(0)
    os.close(write)
    parent = _draw()  # the parent goes on drawing its pending ids after the fork
    with os.fdopen(read) as pipe:
        child = pipe.read().split(",")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(child) == len(set(child)) == _DRAWS
    assert not set(child) & set(parent)
    # A uuid is its pool entry with the version and variant digits set: compare those digits too.
    raw = {c.replace("-", "") for c in child}
    assert not {c for c in raw if len(c) == 32} & pending
    masked = {p[:12] + "4" + p[13:16] + ids._VARIANT[p[16]] + p[17:] for p in pending}
    assert not raw & masked
    # Every form keeps its pool entry's last 48 bits as they are: no child id reuses a pending entry.
    assert not {c[20:] for c in raw} & {p[20:] for p in pending}
