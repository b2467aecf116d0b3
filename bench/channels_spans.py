"""The channels worker with time spans around each step of a payment: bench/channels.py's profile.

    python -m services.runtime bench.channels_spans:WORKER --config-json '{...}'

The very worker of services.channels (its own ``definition()``), with each step a payment takes
wrapped in a time.perf_counter span once it is registered: on the instance (Channels, its store, its
storage, each PeerClient) and on the class for Rules (a frozen dataclass). Nothing of the worker's
code is changed or copied; Storage.transaction is wrapped so its outermost COMMIT (the fsync) is a
span of its own. Spans nest (``put_state`` holds a ``commit``); each is the wall time between its start
and its end, its awaits included, so figures are clean with one payment in flight.

Signals, so the bench reads the spans of the payments it chooses: SIGUSR1 clears the spans (and
starts cProfile when ``L2NODE_BENCH_CPROFILE`` names a file); SIGUSR2 writes them as JSON to
``L2NODE_BENCH_SPANS`` (``{label: [count, seconds]}``) and cProfile's stats to its file.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import functools
import inspect
import json
import os
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from services.channels import Channels, Rules
from services.channels import definition as channels_definition
from services.runtime import Service, WorkerContext, WorkerDefinition
from supervisor import ChildSpec

SPANS_ENV = "L2NODE_BENCH_SPANS"
CPROFILE_ENV = "L2NODE_BENCH_CPROFILE"


class Spans:
    """label -> [count, seconds]."""

    def __init__(self) -> None:
        self.totals: dict[str, list[float]] = {}

    def add(self, label: str, seconds: float) -> None:
        entry = self.totals.setdefault(label, [0, 0.0])
        entry[0] += 1
        entry[1] += seconds

    def wrap(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                start = time.perf_counter()
                try:
                    return await fn(*args, **kwargs)
                finally:
                    self.add(label, time.perf_counter() - start)
            return timed_async

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(label, time.perf_counter() - start)
        return timed


def _wrap_each(target: object, spans: Spans, names: dict[str, str]) -> None:
    """Each of ``names`` the target has (the worker changes: a name it lost is skipped), timed."""
    for name, label in names.items():
        if hasattr(target, name):
            setattr(target, name, spans.wrap(label, getattr(target, name)))


def _instrument(channels: Channels, ctx: WorkerContext, spans: Spans) -> None:
    # The payer's side (ChannelsService.Pay) and the receiver's (PeerService.Propose); the servicers
    # and the worker call these through the instance, so instance attributes take their place.
    _wrap_each(channels, spans, {
        "pay": "pay (Channels.pay: the lock, then all below)",
        "direct_channel": "direct_channel (find the channel)",
        "channel_to": "channel_to (find the channel)",
        "_flush": "flush (the pending-state look-up)",
        "propose": "propose (build, sign, seal, put_state, send)",
        "_send": "send (the Propose RPC, then verify and record)",
        "on_propose": "on_propose (the receiver's whole handler)",
        "_accept": "accept (verify, rules, sign, record_payment)",
    })
    if hasattr(channels, "updates"):  # the one update path (services/channels/_updates.py)
        _wrap_each(channels.updates, spans, {
            "pay": "updates.pay (queued, waits for the channel's turn and its round trip)",
            "pay_many": "updates.pay_many (a message's payments queued at once, their round trips)",
            "_drain": "updates.drain (one round trip: the payments waiting, one state)",
            "flush": "updates.flush (pending states re-sent first)",
            "_send": "updates.send (the Propose(Batch) RPC, then verify and record)",
            "on_propose_batch": "updates.on_propose_batch (the receiver's whole handler)",
            "on_propose": "updates.on_propose (the receiver's whole handler)",
            "_accept": "updates.accept (verify, check_proposal, sign, record)",
        })
    _wrap_each(channels.payments, spans, {
        "pay": "payments.pay (a routed payment: route, HTLC out, wait for its outcome)",
        "_offer": "payments.offer (add the HTLC to the first hop)",
        "_send_on": "payments.send_on (a forward: the HTLC on to the next hop)",
        "_resolve": "payments.resolve (settle or fail an incoming HTLC)",
    })
    _wrap_each(channels.store, spans, {name: f"store.{name}" for name in (
        "put_state", "put_parts", "record_sent", "record_received", "record_payment", "apply", "latest_cosigned",
        "highest_sequence", "pending", "channel", "paid", "paid_many", "invoice", "by_request_key", "by_request_keys",
        "state", "parts_of")})
    original_peer = channels.peer

    def peer(address: str) -> Any:
        client = original_peer(address)
        if not getattr(client, "_bench_timed", False):
            client.propose = spans.wrap("peer.propose (the Propose RPC, the peer's work in it)", client.propose)
            if hasattr(client, "propose_batch"):
                client.propose_batch = spans.wrap("peer.propose_batch (the ProposeBatch RPC, the peer's work in it)",
                                                  client.propose_batch)
            client._bench_timed = True
        return client

    channels.peer = peer  # type: ignore[method-assign]
    storage = ctx.storage
    original_transaction = storage.transaction
    depth = 0

    @contextlib.contextmanager
    def transaction() -> Iterator[Any]:
        # The runtime's own transaction; its end timed when it is the outermost: the COMMIT, the fsync.
        nonlocal depth
        inner = original_transaction()
        db = inner.__enter__()
        depth += 1
        try:
            yield db
        except BaseException as exc:
            depth -= 1
            if not inner.__exit__(type(exc), exc, exc.__traceback__):
                raise
            return
        depth -= 1
        start = time.perf_counter()
        inner.__exit__(None, None, None)
        if depth == 0:
            spans.add("commit (COMMIT: the fsync)", time.perf_counter() - start)

    storage.transaction = transaction  # type: ignore[method-assign]
    _wrap_each(Rules, spans, {
        "sign": "rules.sign (a state: EIP-712 digest + secp256k1 sign)",
        "signer_of": "rules.signer_of (a state: digest + recover)",
        "sign_message": "rules.sign_message (a peer message's seal)",
        "check": "rules.check (check_update C1-C7)",
    })
    Rules.message_signer = staticmethod(spans.wrap(  # type: ignore[method-assign]
        "rules.message_signer (a peer message's sender: recover)", Rules.message_signer))


class _Profiled:
    """The channels service, its spans cleared and written on signals."""

    def __init__(self, inner: Service, spans: Spans) -> None:
        self._inner = inner
        self._spans = spans
        self._profile: cProfile.Profile | None = None
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, self.clear)
        loop.add_signal_handler(signal.SIGUSR2, self.write)

    def clear(self) -> None:
        self._spans.totals.clear()
        if os.environ.get(CPROFILE_ENV):
            self._profile = cProfile.Profile()
            self._profile.enable()

    def write(self) -> None:
        if self._profile is not None:
            self._profile.disable()
            self._profile.dump_stats(os.environ[CPROFILE_ENV])
            self._profile = None
        where = os.environ.get(SPANS_ENV)
        if where:
            tmp = Path(where + ".tmp")
            tmp.write_text(json.dumps(self._spans.totals))
            tmp.replace(where)  # whole or absent: the bench polls for it

    def tasks(self) -> Sequence[ChildSpec]:
        return self._inner.tasks()

    async def aclose(self) -> None:
        await self._inner.aclose()


_INNER = channels_definition()


async def _register(ctx: WorkerContext) -> Service:
    service = await _INNER.register(ctx)
    channels = getattr(service, "channels", service)  # the worker's Service holds its Channels (and its tower)
    assert isinstance(channels, Channels), type(service)
    spans = Spans()
    _instrument(channels, ctx, spans)
    return _Profiled(service, spans)


WORKER = WorkerDefinition(name="channels", register=_register)
