"""The running bridge: what its worker opens at start (the store, the L1 client and the portal,
the sequencer and rollups clients, the relayer when a key file is configured), runs as supervised
tasks (the portal's L1 follower, the credit checker, the withdrawal tracker, the relayer's queue)
and closes at stop. The worker runtime's ``Service``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import grpc
from opentelemetry import trace

from protocol import is_local_devnet
from services.l1 import OUTAGE, Contract, Deployment, FollowerConfig, L1Client, LocalSigner, LogFollower, read_key
from services.runtime import BreakerOpen, DeadlineExceeded, quiet
from supervisor import ChildSpec, task

from ._clients import RollupsClient, SequencerClient
from ._deposits import Deposits
from ._proofs import Proofs
from ._records import DepositStatus, WithdrawalProof, WithdrawalRecord
from ._relayer import Relayer
from ._settings import BridgeSettings
from ._store import BridgeStore
from ._withdrawals import Withdrawals

#: A traced, shared channel to an address (``WorkerContext.channel``).
ChannelFn = Callable[[str], grpc.aio.Channel]
#: meta key: the first L1 block the portal follower has not seen finalized (where a restart resumes).
_RESUME_AT: Final = "l1_resume_block"
#: What a loop waits out (a neighbour or L1 down, a breaker open) rather than crash on.
_TRANSIENT: Final = (grpc.aio.AioRpcError, BreakerOpen, DeadlineExceeded, *OUTAGE)
#: A relay action its call did not settle is handed again after this long.
_RELAY_AGAIN_S: Final = 5.0
#: An idle loop backs off to this.
_IDLE_POLL_S: Final = 2.0


class Bridge:
    def __init__(self, settings: BridgeSettings, store: BridgeStore, logger: logging.Logger, tracer: trace.Tracer,
                 l1: L1Client | None = None, portal: Contract | None = None, start_block: int = 0,
                 deposits: Deposits | None = None, withdrawals: Withdrawals | None = None,
                 relayer: Relayer | None = None) -> None:
        self.settings = settings
        self.store = store
        self.portal = portal
        self.withdrawals = withdrawals
        self._log = logger
        self._tracer = tracer
        self._l1 = l1
        self._start = start_block
        self._deposits = deposits
        self._relayer = relayer
        self._serves = withdrawals_served(settings)

    @classmethod
    async def open(cls, settings: BridgeSettings, store: BridgeStore, logger: logging.Logger, tracer: trace.Tracer,
                   channel: ChannelFn, data_dir: Any) -> Bridge:
        rpc, contracts = settings.l1.get("rpc", ""), settings.l1.get("contracts", "")
        if not rpc or settings.missing():
            logger.warning("no L1 or no DepositPortal: the bridge follows nothing",
                           extra={"missing": settings.missing()})
            return cls(settings, store, logger, tracer)
        deployment = Deployment.load(contracts)
        portal = deployment.contract("DepositPortal")
        l1 = L1Client(rpc)
        try:
            sequencer = SequencerClient(channel(settings.sequencer)) if settings.sequencer else None
            rollups = RollupsClient(channel(settings.rollups)) if settings.rollups else None
            proofs = Proofs(sequencer, store) if sequencer is not None else None
            delay = await _maturity_delay(l1, portal, deployment)
            start = store.get_meta(_RESUME_AT, deployment.block_number)
            deposits = Deposits(portal, store, sequencer, settings.confirmation_depth, start, tracer, logger)
            withdrawals = Withdrawals(l1, portal, store, sequencer, rollups, proofs, delay, tracer, logger)
            relayer = None
            if settings.relayer_key:
                relayer = Relayer(l1, LocalSigner(read_key(settings.relayer_key)), portal, data_dir / "relayer.db",
                                  withdrawals_served(settings), logger)
                if settings.relays_for() is None and not settings.relay_min_value_wei and \
                        not is_local_devnet(await l1.chain_id(), str(settings.l1["rpc"])):
                    logger.warning("the relayer serves every withdrawal of any value on a paid L1: dust "
                                   "withdrawals cost the sender an L2 fee and the relayer ~180,000 L1 gas each; "
                                   "set relay_for or relay_min_value_wei")
        except BaseException:
            await l1.aclose()
            raise
        logger.info("bridge ready", extra={"portal": "0x" + (portal.address or b"").hex(), "from_block": start,
                                           "proof_maturity_delay_s": delay, "relayer": relayer is not None})
        return cls(settings, store, logger, tracer, l1, portal, start, deposits, withdrawals, relayer)

    def tasks(self) -> Sequence[ChildSpec]:
        if self._l1 is None:
            return []
        children = [ChildSpec(id="portal", start=task(self._follow_portal)),
                    ChildSpec(id="credits", start=task(self._credit)),
                    ChildSpec(id="withdrawals", start=task(self._track))]
        if self._relayer is not None:
            children.append(ChildSpec(id="relayer", start=task(self._relay)))
        return children

    async def aclose(self) -> None:
        closer = getattr(self._relayer, "aclose", None)
        if closer is not None:
            await closer()
        if self._l1 is not None:
            await self._l1.aclose()

    # --- the loops -------------------------------------------------------------------------------

    async def _follow_portal(self) -> None:
        assert self._l1 is not None and self.portal is not None and self._deposits is not None
        assert self.withdrawals is not None
        topics = [self.portal.topic("DepositQueued"), *self.withdrawals.topics]
        # The follower backs off like every L1 poller of an idle node (services.l1's default idle
        # interval: test_quiet's budget). A deposit waiting for depth, or one a client tracks
        # (TrackDeposit), holds the fast interval: that is the latency a user waits through.
        config = FollowerConfig(confirmation_depth=self.settings.confirmation_depth,
                                poll_interval_s=self.settings.poll_interval_s)
        follower = LogFollower(self._l1, address=self.portal.address, topics=[topics], start_block=self._start,
                               config=config)
        resume = self._start
        with quiet():
            async for update in follower.updates():
                self._deposits.apply(update)
                await self.withdrawals.apply(update)
                if self.store.deposits_in((DepositStatus.SEEN,)):
                    self.wake_l1()
                if update.heads.finalized + 1 > resume:
                    resume = update.heads.finalized + 1
                    self.store.set_meta(_RESUME_AT, resume)

    def wake_l1(self) -> None:
        """Poll L1 at the base interval for a while: something this node cares about is due."""
        if self._l1 is not None:
            self._l1.activity.notify()

    async def _credit(self) -> None:
        assert self._deposits is not None
        deposits = self._deposits
        await self._loop("credit checker", deposits.credit_round)

    async def _track(self) -> None:
        tracker = self.withdrawals
        assert tracker is not None

        async def round_() -> int:
            new = await tracker.read_messages()
            still_open = await tracker.progress()
            if self._relayer is not None:
                await tracker.hand_to_relayer(self._serves)
            return new + still_open

        await self._loop("withdrawal tracker", round_)

    async def _loop(self, what: str, round_: Callable[[], Awaitable[int]]) -> None:
        """``round_`` forever: at the poll interval while it reports work in flight, backing off
        to _IDLE_POLL_S when idle; a neighbour's outage is logged and waited out."""
        poll = self.settings.poll_interval_s
        delay = poll
        while True:
            busy = 0
            changed = self.store.changed()
            try:
                with quiet():
                    busy = await round_()
            except _TRANSIENT as exc:
                self._log.warning("%s: %s: %s", what, type(exc).__name__, exc)
            delay = poll if busy else min(delay * 2, max(_IDLE_POLL_S, poll))
            # A recorded change (a deposit at depth, an output, a proof) may be this loop's work:
            # it runs at once rather than after a backed-off interval.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), delay)

    async def _relay(self) -> None:
        tracker, relayer = self.withdrawals, self._relayer
        assert tracker is not None and relayer is not None
        await relayer.resume()
        while True:
            item = await tracker.relay_queue.get()
            try:
                if isinstance(item, WithdrawalProof):
                    outcome = await relayer.prove(item)
                else:
                    outcome = await relayer.finalize(item)
                state = getattr(outcome, "state", None)
                if state is not None and str(state) != "confirmed":
                    # Reverted, dropped or still open: asked again later (the relayer decides whether
                    # to send anything; by then the record has often moved on: proven or finalized by
                    # someone else).
                    tracker.retry_later(item, _RELAY_AGAIN_S)
            except _TRANSIENT as exc:
                self._log.warning("relayer: %s: %s (tried again later)", type(exc).__name__, exc)
                tracker.retry_later(item)
                await asyncio.sleep(self.settings.poll_interval_s)
            except Exception:
                # Not an outage (a revert the relayer did not expect...): logged, and tried again at a
                # later round rather than crash the loop and lose the rest of the queue.
                self._log.exception("relayer failed on 0x%s", _hash_of(item).hex())
                tracker.retry_later(item)
                await asyncio.sleep(self.settings.poll_interval_s)


def _hash_of(item: WithdrawalProof | WithdrawalRecord) -> bytes:
    return item.withdrawal.withdrawal_hash if isinstance(item, WithdrawalProof) else item.withdrawal_hash


def withdrawals_served(settings: BridgeSettings) -> Callable[[WithdrawalRecord], bool]:
    """The relayer's ``serves``: the withdrawals whose sender or target it relays for, of at least
    relay_min_value_wei."""
    serving, least = settings.relays_for(), settings.relay_min_value_wei
    if serving is None:
        return lambda r: r.message.value >= least
    return lambda r: r.message.value >= least and (r.message.sender in serving or r.message.target in serving)


async def _maturity_delay(l1: L1Client, portal: Contract, deployment: Deployment) -> int:
    """DepositPortal.proofMaturityDelay (an older portal has none: contracts.json's, else 0)."""
    try:
        portal.function("proofMaturityDelay")
    except KeyError:
        return int(deployment.rollups.get("proof_maturity_delay_s", 0))
    (delay,) = await portal.read(l1, "proofMaturityDelay")
    return int(delay)
