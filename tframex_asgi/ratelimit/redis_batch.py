"""Coalesce the concurrent requests' rate-limit scripts into one pipelined round trip.

A lone hit on Redis costs mostly redis-py's per-command work, not the server's: taking a pooled
connection (a condition, a lock, a timeout and observability records), a socket ``send`` and a
wake-up per command. Here every ``EVALSHA`` of one loop tick joins a batch, and the batch goes out
as one write on one pooled connection; the replies are read in order. While a batch is in flight
the next one collects, so under load a batch holds every request that arrived meanwhile, and with
a single request in flight it costs what one command did.

Atomicity is unchanged: each limit is still its own ``EVALSHA`` of a Lua script, which Redis runs
atomically, so N processes together still admit exactly the limit. No ``MULTI``: the scripts of a
batch are independent. A caller that gave up (its deadline fired) before its batch was sent is
dropped from it, so a request answered "unavailable" is not counted later; once sent, a script
counts (as a lone command that timed out after reaching Redis did before).
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["ScriptBatcher", "pack_script"]


class _Call:
    __slots__ = ("future", "script", "wire")

    def __init__(self, script: Any, wire: bytes, future: asyncio.Future[Any]) -> None:
        self.script = script
        self.wire = wire  # the EVALSHA command, packed
        self.future = future


class ScriptBatcher:
    """``await batcher.run(script, keys, args)``: the script's reply, sent with the other calls
    of the same tick. ``script`` is a redis-py ``Script`` (its ``sha`` and ``script`` source)."""

    def __init__(self, pool: Any) -> None:
        from redis.exceptions import NoScriptError, ResponseError

        self.pool = pool
        self._noscript, self._response_error = NoScriptError, ResponseError
        # Every reply of a batch is read under one timeout, not one per reply (see _read).
        self.timeout: float | None = pool.connection_kwargs.get("socket_timeout")
        self._pending: list[_Call] = []
        self._drainer: asyncio.Task[None] | None = None
        # The connection the drainer holds while batches keep coming (taken and given back once
        # per busy spell, not per batch: taking and releasing a pooled connection is costly in redis-py).
        self._conn: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Replies seen per batch size would be debugging; these two are enough to show batching.
        self.batches = 0
        self.calls = 0

    async def run(self, script: Any, keys: list[Any], args: list[Any]) -> Any:
        return await self.run_packed(script, pack_script(script, keys, args))

    async def run_packed(self, script: Any, wire: bytes) -> Any:
        """:meth:`run` with the command already packed (:func:`pack_script`), for callers that
        send the same command again and again (the same counter, the same cost) and keep it."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # first use, or a new event loop (tests): start afresh
            self._loop, self._pending, self._drainer = loop, [], None
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append(_Call(script, wire, future))
        if self._drainer is None:
            # A task runs from the next loop iteration on: every call of this tick joins the batch.
            self._drainer = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                live = [c for c in batch if not c.future.done()]
                if live:
                    await self._send(live)
        finally:
            self._drainer = None
            conn, self._conn = self._conn, None
            if conn is not None:
                await self.pool.release(conn)

    async def _send(self, calls: list[_Call]) -> None:
        self.batches += 1
        self.calls += len(calls)
        try:
            replies = await self._round_trip(calls)
            noscript = self._noscript
            missing = [i for i, r in enumerate(replies) if isinstance(r, noscript)]
            if missing:  # Redis restarted or flushed its scripts: load them, send those again
                again = [calls[i] for i in missing]
                for i, reply in zip(missing, await self._round_trip(again, load=True), strict=True):
                    replies[i] = reply
        except BaseException as exc:  # every waiting caller gets the failure
            for call in calls:
                if not call.future.done():
                    call.future.set_exception(exc if isinstance(exc, Exception) else ConnectionError(str(exc)))
            if not isinstance(exc, Exception):
                raise
            return
        for call, reply in zip(calls, replies, strict=True):
            if call.future.done():
                continue
            if isinstance(reply, Exception):
                call.future.set_exception(reply)
            else:
                call.future.set_result(reply)

    async def _round_trip(self, calls: list[_Call], *, load: bool = False) -> list[Any]:
        conn = self._conn
        if conn is None:
            conn = self._conn = await self.pool.get_connection()
        try:
            scripts = {id(c.script): c.script for c in calls} if load else {}
            wire = [_pack(("SCRIPT", "LOAD", s.script)) for s in scripts.values()]
            wire.extend(c.wire for c in calls)
            await conn.send_packed_command(b"".join(wire))
            replies = await self._read(conn, len(wire))
        except BaseException:
            # Replies may still be on the socket: the connection must not serve anyone else.
            self._conn = None
            await conn.disconnect(nowait=True)
            await self.pool.release(conn)
            raise
        return replies[len(scripts) :]

    async def _read(self, conn: Any, count: int) -> list[Any]:
        """``count`` replies; a script's own error is that caller's reply, not the batch's.

        redis-py's ``read_response`` arms a timeout per reply; its parser returns the
        replies (errors as exception objects) without one, so a batch reads them all under one
        timeout (the socket timeout, as redis-py would apply). A redis-py without ``_parser``
        falls back to ``read_response``."""
        parser = getattr(conn, "_parser", None)
        read = getattr(parser, "read_response", None)
        if read is None:  # pragma: no cover - another redis-py layout
            replies: list[Any] = []
            for _ in range(count):
                try:
                    replies.append(await conn.read_response())
                except self._response_error as exc:
                    replies.append(exc)
            return replies
        async with asyncio.timeout(self.timeout):
            return [await read(disable_decoding=False) for _ in range(count)]


def pack_script(script: Any, keys: list[Any], args: list[Any]) -> bytes:
    """The ``EVALSHA`` of ``script`` on ``keys`` and ``args``, packed."""
    return _pack(("EVALSHA", script.sha, len(keys), *keys, *args))


def _pack(parts: tuple[Any, ...]) -> bytes:
    """One command in RESP (str, int and float arguments, as redis-py's encoder writes them),
    built as one string: redis-py's per-argument encoding was a third of a batched hit's CPU."""
    texts = [str(p) for p in parts]  # str(float) is repr(float), as redis-py sends it
    text = f"*{len(texts)}\r\n" + "".join([f"${len(t)}\r\n{t}\r\n" for t in texts])
    if text.isascii():
        return text.encode()
    # Non-ASCII keys: lengths are in bytes.
    data = [t.encode() for t in texts]
    return b"*%d\r\n" % len(data) + b"".join([b"$%d\r\n%s\r\n" % (len(d), d) for d in data])
