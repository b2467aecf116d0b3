"""Block production: select from the mempool, execute, commit roots, make durable, publish.

What comes from L1, by the rule derivation repeats: a deposit made (or a transaction pushed
into the inbox's forced queue) in L1 block F is applied in the first L2 block whose L1 origin
is at least F. A block begins with its due deposits (portal order; they cannot fail), then
its due forced transactions (queue order), then the mempool's selection. Forced transactions
follow protocol.apply_forced, as derivation does: never refused for the base fee; one the rules
refuse (bad encoding, nonce, funds, a gas limit above the block's) is skipped for good; only a
full block defers it to the next one. Of the pool's selection, made before the forced ones ran, one
whose nonce a forced transaction took is dropped; one that no longer fits (gas left, funds) waits
in the pool for the next block, and so do its sender's later ones. Deposits are not in
batches: derivation reads them from the portal. The L1 origin follows L1's safe head, so the
delay is bounded by the confirmation depth.

The in-memory state always equals the durable snapshot of the head block, except during a
seal: execution mutates it before the block is written. If the write fails, the state is
reloaded from disk (the block never happened) with an empty pool, and the error propagates, so
the producer loop restarts from a consistent state; before the next block the intake puts back
every transaction it acknowledged and has not seen sealed (``ChainListener.repool``).

The chain is built with what it tells (a :class:`ChainListener`: the intake) and with its
:class:`Mempools`, which the intake is built with too: so neither needs the other to exist first.

The sequencer window (protocol._window): with a batcher, ``window`` is set, and the chain seals a
heartbeat block (empty if nothing waits) whenever its tip's origin is more than half a window
behind L1's safe head, so an idle chain never lets the window lapse. When it has lapsed anyway
(the batcher or the whole sequencer was down), derivation made blocks of its own, and the chain
follows them (``_follow``): ``rewind`` drops the blocks after the last one derivation agrees with,
and ``seal_followed`` seals derivation's blocks by the same rules as any block.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from opentelemetry import trace

from protocol import (
    DERIVED_ORIGIN_HASH,
    EMPTY_ACCOUNT,
    FEE_VAULT,
    ZERO_ADDRESS,
    Account,
    AccountTree,
    BlockEnv,
    BlockHeader,
    Genesis,
    Reason,
    State,
    StoredAccountTree,
    Transaction,
    TxRejected,
    TxResult,
    apply_deposit,
    apply_forced,
    apply_plain,
    apply_transaction,
    decode_transaction,
    heartbeat_due,
    next_base_fee,
    transactions_root,
)

from ._mempool import Dropped, Mempool
from ._store import (
    FORCED_INCLUDED,
    FORCED_SKIPPED,
    AccountRow,
    BlockWrite,
    DueDeposit,
    ForcedOutcome,
    ForcedTx,
    SentMessage,
    SequencerStore,
)
from ._traces import BlockTraces

_tracer = trace.get_tracer("l2node.sequencer")
#: Links per block span, at most: enough to find the sending calls, bounded in cost.
_MAX_LINKS = 32
#: Account tree nodes kept in memory between blocks, at most (~150 bytes each with the dict's share):
#: the top levels and recent paths; the rest is read back from the store when a block touches it.
#: Memory no longer grows with the chain (at a million accounts, everything in memory took 519 MB).
_CACHED_NODES = 1 << 18
#: Accounts (and their slots and successors) kept in memory between blocks, at most.
_CACHED_ACCOUNTS = 1 << 17


class ChainListener(Protocol):
    """What the chain tells about the transactions it seals and lets go (the intake, which keeps
    what is acknowledged and not yet settled)."""

    def origin(self, tx_hash: bytes) -> trace.SpanContext | None:
        """Where the transaction's accept span is: its block's span links to it."""
        ...

    def sealed(self, tx_hashes: Iterable[bytes]) -> None:
        """These transactions are in a block, now durable."""
        ...

    async def record_drops(self, dropped: Sequence[Dropped]) -> None:
        """What the pool let go: their receipts must say DROPPED."""
        ...

    async def repool(self) -> object:
        """The pool was replaced by an empty one after a failed block write (told before the next
        block): put back what was acknowledged and not seen sealed."""
        ...

    async def unseal(self, txs: Sequence[Transaction]) -> None:
        """These sealed transactions' blocks are about to be dropped (``Chain.rewind``): they are
        acknowledged and not sealed again, durably, before the blocks go."""
        ...


#: How many of a block's selected transactions (a prefix) its batch can carry and still be posted
#: in one L1 transaction: (number, timestamp, L1 origin number and hash, txs) -> count.
BlockRoom = Callable[[int, int, int, bytes, Sequence[Transaction]], int]


class L1Origin(NamedTuple):
    """The L1 block new L2 blocks derive from (ordered by number, then hash: ``max`` keeps the newest)."""

    number: int
    hash: bytes


class Mempools:
    """Makes the chain's mempool over its state, and knows the current one.

    The chain makes a new pool whenever it (re)loads its state (at open, after a failed block
    write); the intake adds to whichever is current. Both are built with this object.
    """

    __slots__ = ("_current", "_new")

    def __init__(self, new: Callable[[State, int], Mempool]) -> None:
        self._new = new
        self._current: Mempool | None = None

    def renew(self, state: State, base_fee: int) -> Mempool:
        """A new, empty pool over ``state``: the current one from now on."""
        self._current = self._new(state, base_fee)
        return self._current

    def current(self) -> Mempool:
        assert self._current is not None, "no pool yet: the chain makes the first"
        return self._current


def header_to_json(h: BlockHeader) -> str:
    return json.dumps({
        "number": h.number, "parent_hash": h.parent_hash.hex(), "timestamp": h.timestamp,
        "state_root": h.state_root.hex(), "transactions_root": h.transactions_root.hex(),
        "message_root": h.message_root.hex(), "base_fee": str(h.base_fee), "gas_used": h.gas_used,
        "gas_limit": h.gas_limit, "l1_origin_number": h.l1_origin_number, "l1_origin_hash": h.l1_origin_hash.hex(),
    }, sort_keys=True)


def header_from_json(text: str) -> BlockHeader:
    d = json.loads(text)
    return BlockHeader(
        number=d["number"], parent_hash=bytes.fromhex(d["parent_hash"]), timestamp=d["timestamp"],
        state_root=bytes.fromhex(d["state_root"]), transactions_root=bytes.fromhex(d["transactions_root"]),
        message_root=bytes.fromhex(d["message_root"]), base_fee=int(d["base_fee"]), gas_used=d["gas_used"],
        gas_limit=d["gas_limit"], l1_origin_number=d["l1_origin_number"],
        l1_origin_hash=bytes.fromhex(d["l1_origin_hash"]),
    )


@dataclass(frozen=True, slots=True)
class SealedBlock:
    header: BlockHeader
    hash: bytes
    tx_hashes: tuple[bytes, ...]
    #: L2->L1 messages recorded by the chain up to and including this block.
    message_count: int


class ChainCorrupted(RuntimeError):
    """The durable snapshot does not reproduce the head's state root."""


class _StaleTree(ChainCorrupted):
    """The stored account tree is missing or does not give the head's state root."""


class BlockMismatch(ValueError):
    """A block re-executed by the rules is not the block claimed (``seal_followed``'s ``expect``):
    nothing was written, the chain is as it was."""

    def __init__(self, number: int, claimed: bytes, computed: BlockHeader) -> None:
        super().__init__(f"block {number} re-executes to hash 0x{computed.hash().hex()} (state root "
                         f"0x{computed.state_root.hex()}), not the claimed 0x{claimed.hex()}")
        self.number = number
        self.computed = computed


def is_derived(header: BlockHeader) -> bool:
    """Whether derivation made the block itself (a lapsed window): such a block is never posted.
    (Genesis may have a zero origin hash too: it is no such block.)"""
    return header.number > 0 and header.l1_origin_hash == DERIVED_ORIGIN_HASH


class Chain:
    def __init__(self, store: SequencerStore, genesis: Genesis, pools: Mempools, listener: ChainListener,
                 *, max_block_txs: int, block_room: BlockRoom | None = None,
                 empty_block_time_s: float = 1.0) -> None:
        self._store = store
        self._empty_block_time_s = empty_block_time_s
        self._genesis = genesis
        self._max_block_txs = max_block_txs
        self.state = State()
        #: Set by ``open`` (genesis's header is computed only for a new chain).
        self.head: BlockHeader
        self.head_hash = b""
        self.next_base_fee = genesis.base_fee
        self._pools = pools
        self._listener = listener
        self._repool_due = False
        #: The rest of a block's selection stays pooled for the next block. None: no batcher, no bound.
        self._block_room = block_room
        self._room_held: int | None = None  # block_worth
        self.mempool: Mempool = pools.renew(self.state, self.next_base_fee)
        self._slots = 0  # accounts in the durable snapshot: the next new account's slot
        #: The newest block this process sealed (durable): followers read it from here.
        self._last_sealed: SealedBlock | None = None
        self._seal_lock = asyncio.Lock()
        #: While a block is executed and made durable, the accounts it may change as they are at the
        #: head: ``state`` already holds the block's changes, which reads must not see before it is
        #: durable and the head (``account``). None between blocks.
        self._at_head: dict[bytes, Account] | None = None
        self._new_block = asyncio.Condition()
        self.sealed_blocks = 0
        #: What the batch post and the SAFE / FINALIZED spans link to (see ``_traces``).
        self.traces = BlockTraces()
        #: The L1 block new L2 blocks derive from; only ever moves forward (``open`` sets the head's).
        self.l1_origin = L1Origin(genesis.l1_origin_number, genesis.l1_origin_hash)
        #: The sequencer window (L1 blocks), set with a batcher: heartbeats keep the tip's origin fresh.
        self.window: int | None = None
        #: Rewinds so far (``rewind``): whoever remembers block numbers compares this first.
        self.rewinds = 0
        #: The block each rewind went back to, in order (rewinds are rare: an outage each).
        self._rewound_to: list[int] = []
        #: Empty blocks still to seal at once after following a lapse (``catch_up``).
        self._catch_up = 0
        #: Set while _follow seals derivation's blocks: ``seal`` seals nothing meanwhile.
        self.following = False
        #: Set when the L1 origin moved and deposits or forced transactions became due: the producer
        #: seals at once instead of at its next tick (a deposit's latency from depth to mint).
        self.inputs_due = asyncio.Event()
        #: Set whenever the L1 origin moves: a read replica waits on it until its reading of L1
        #: reached an upstream block's origin (``_replica``).
        self.origin_moved = asyncio.Event()

    # -- opening ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Load the head and its state from disk, or write genesis on first start."""
        latest = self._store.latest_block_number()
        if latest is None:
            state = self._genesis.state()
            header = self._genesis.header(state)
            rows = [AccountRow(a, slot, acct) for slot, (a, acct) in enumerate(state.accounts.items())]
            block_hash = header.hash()
            nodes = dict(state.account_tree.nodes())

            def write_genesis(db: sqlite3.Connection) -> None:
                self._store.seal_block(db, BlockWrite(0, block_hash, header_to_json(header), new_accounts=rows,
                                                      nodes=nodes))
                self._store.set_meta(db, "chain_id", str(self._genesis.chain_id))
                self._store.set_meta(db, "genesis_hash", block_hash.hex())

            await self._store.run(write_genesis)
        stored_chain = self._store.meta("chain_id")
        if stored_chain is not None and int(stored_chain) != self._genesis.chain_id:
            raise ChainCorrupted(f"the database is for chain {stored_chain}, not {self._genesis.chain_id}")
        try:
            self._load()
        except _StaleTree:
            await self._rebuild_tree()
            self._load()

    async def _rebuild_tree(self) -> None:
        """Write the account tree's nodes from every account row (a database from before they were
        stored, once): the one start that reads every account."""
        accounts = self._store.accounts()
        # Slot order, the zero address (slot 0, whatever it holds) first: the tree the rows make.
        tree = await asyncio.to_thread(AccountTree, [(row.address, row.account) for row in accounts])
        await self._store.run(functools.partial(self._store.write_nodes, nodes=tree.nodes(), replace_all=True))

    def _load(self) -> None:
        """The head and a state over the store: its account tree read lazily (the top node now),
        checked against the head's state root; the message tree rebuilt from its leaves."""
        number = self._store.latest_block_number()
        assert number is not None
        text = self._store.block_header(number)
        assert text is not None
        header = header_from_json(text)
        count = self._store.account_count()
        tree = StoredAccountTree(self._store, count)
        try:
            state_root = tree.root()
        except LookupError:
            raise _StaleTree from None  # no nodes stored yet
        if state_root != header.state_root:
            raise _StaleTree  # nodes of another snapshot: rebuilt from the rows (which must agree)
        state = State((), self._store.message_hashes(), account_tree=tree)
        roots = state.commit()
        if roots.message_root != header.message_root:
            raise ChainCorrupted(f"the snapshot at block {number} does not reproduce its message root")
        self.state = state
        self._last_sealed = None
        self._slots = count
        self.head = header
        self.head_hash = header.hash()
        self.next_base_fee = next_base_fee(header.base_fee, header.gas_used, header.gas_limit)
        self.mempool = self._pools.renew(state, self.next_base_fee)
        self.l1_origin = max(self.l1_origin, L1Origin(header.l1_origin_number, header.l1_origin_hash))

    def set_l1_origin(self, number: int, block_hash: bytes) -> None:
        if number > self.l1_origin.number:
            self.l1_origin = L1Origin(number, block_hash)
            self.origin_moved.set()
            if self._store.deposits_due(number) or self._store.forced_due(number):
                self.inputs_due.set()

    @property
    def genesis_hash(self) -> bytes:
        stored = self._store.meta("genesis_hash")
        return bytes.fromhex(stored) if stored else self._genesis.header().hash()

    # -- sealing ------------------------------------------------------------------------------

    async def seal(self, now: float | None = None) -> SealedBlock | None:
        """Seal one block from the pending pool; None if nothing was executable."""
        async with self._seal_lock:
            if self.following or (self.window is not None and self.l1_origin.hash == DERIVED_ORIGIN_HASH):
                return None  # following derivation; or no L1 origin yet that a batch could cite
            if self._repool_due:
                self._repool_due = False
                await self._listener.repool()
            base_fee = self.next_base_fee
            deposits = self._store.deposits_due(self.l1_origin.number)
            forced = self._store.forced_due(self.l1_origin.number)
            txs = self.mempool.select(base_fee, self.head.gas_limit, self._max_block_txs)
            sealed_at = time.time() if now is None else now
            if (not txs and not forced and not deposits and not self._empty_block_due(base_fee, sealed_at)
                    and not self._heartbeat_due()):
                return None
            # A span per block, not per transaction; links lead back to the calls that sent them.
            links = list({ctx.span_id: trace.Link(ctx) for tx in txs[:_MAX_LINKS]
                          if (ctx := self._listener.origin(tx.hash)) is not None}.values())
            with _tracer.start_as_current_span("seal_block", links=links) as span:
                block = await self._seal(deposits, forced, txs, base_fee, sealed_at)
                self._catch_up = max(0, self._catch_up - 1)
                span.set_attribute("l2.block.number", block.header.number)
                span.set_attribute("l2.block.transactions", len(block.tx_hashes))
                self.traces.sealed(block.header.number, span.get_span_context(), block.tx_hashes,
                                   self._listener.origin)
            async with self._new_block:
                self._new_block.notify_all()
            return block

    def account(self, address: bytes) -> Account:
        """The account at ``address`` as of the head block (not a block being sealed)."""
        at_head = self._at_head
        if at_head is not None and (found := at_head.get(address)) is not None:
            return found
        return self.state.get(address)

    def _empty_block_due(self, base_fee: int, now: float) -> bool:
        """Whether to seal an empty block: something waits for the base fee to fall, an empty block
        lowers it, and the last block is ``empty_block_time_s`` old.

        EIP-1559 lowers the base fee after blocks below the gas target; with no block at all it
        never falls, and a fee cap under it would wait forever. Empty blocks are the one way that
        needs no new rule: derivation (and the one-step proof on L1) re-executes whatever blocks
        the batches hold, each block's base fee next_base_fee(parent), empty blocks included, so
        they agree with no change. A base fee computed from elapsed time instead would be a new
        protocol rule for the sequencer, derivation and StepVerifier.sol alike. Sealed only while a
        transaction waits on the base fee (an idle chain posts nothing to L1), at a slower cadence
        than blocks with transactions, and never once the base fee cannot fall further.
        """
        return (now >= self.head.timestamp + self._empty_block_time_s
                and next_base_fee(base_fee, 0, self.head.gas_limit) < base_fee
                and self.mempool.waits_on_base_fee())

    def _heartbeat_due(self) -> bool:
        """Whether to seal a block, empty if nothing waits, to keep the sequencer window from
        lapsing (protocol.heartbeat_due), or to catch up after following a lapse (``catch_up``)."""
        return self.window is not None and (
            self._catch_up > 0 or heartbeat_due(self.head.l1_origin_number, self.l1_origin.number, self.window))

    async def _seal(self, deposits: list[DueDeposit], forced: list[ForcedTx], txs: list[Transaction], base_fee: int,
                    now: float, origin: L1Origin | None = None, replay: bool = False,
                    expect: bytes | None = None) -> SealedBlock:
        """Seal a block of ``txs`` after the due deposits and forced transactions. ``replay``: the
        block is derivation's (``seal_followed``): ``txs`` are a posted block's, each one the rules
        refuse is skipped (rule 12), and it has ``origin``, not the chain's. ``expect``: the hash
        the block must have (a replica's re-execution of its upstream's); BlockMismatch otherwise,
        before anything is written."""
        parent = self.head
        origin = origin or self.l1_origin
        env = BlockEnv(number=parent.number + 1, timestamp=max(parent.timestamp, int(now)), base_fee=base_fee,
                       gas_limit=parent.gas_limit)
        if self._block_room is not None and txs and not replay:
            room = self._block_room(env.number, env.timestamp, self.l1_origin.number, self.l1_origin.hash, txs)
            self._room_held = room if room < len(txs) else None
            txs = txs[:room]
        state = self.state
        touches = self._touches(deposits, forced, txs)
        state.prefetch(touches)
        held = state.accounts
        self._at_head = {a: held.get(a, EMPTY_ACCOUNT) for a in touches}
        applied: list[tuple[Transaction, TxResult]] = []
        refused: list[tuple[bytes, Reason]] = []
        gas = 0
        minted = [d.deposit for d in deposits]
        for deposit in minted:
            apply_deposit(state, deposit)
        settled: list[ForcedOutcome] = []
        for index, raw in forced:  # by derivation's forced rules: apply_forced (base fee waiver; drop or wait)
            outcome = apply_forced(state, raw, self._genesis.chain_id, env, gas)
            if outcome.waits:
                break  # no room left: it leads the next block instead
            if outcome.tx is None or outcome.result is None:
                assert outcome.reason is not None
                settled.append(ForcedOutcome(index, FORCED_SKIPPED, outcome.reason))
                continue
            gas += outcome.result.gas_used
            applied.append((outcome.tx, outcome.result))
            settled.append(ForcedOutcome(index, FORCED_INCLUDED, "0x" + outcome.tx.hash.hex()))
        included = {tx.hash for tx, _ in applied}
        stalled: set[bytes] = set()  # senders whose run stopped short in this block
        index = 0
        while index < len(txs):
            if not included and not stalled:  # the plain transfers in C, up to the first that is not one
                index, gas = apply_plain(state, txs, index, env, gas, applied)
                if index == len(txs):
                    break
            tx = txs[index]
            index += 1
            if tx.hash in included or tx.sender in stalled:
                continue  # in already as a forced transaction; or behind one of its sender's that waits
            try:
                result = apply_transaction(state, tx, env, gas)
            except TxRejected as e:  # the pool's view was stale (forced transactions ran first)
                if replay:
                    continue  # derivation skips it, whatever the reason
                if e.reason is Reason.NONCE_TOO_LOW:  # its nonce is taken: it can never apply
                    refused.append((tx.hash, e.reason))
                else:  # no gas left, or funds spent: it waits, pooled, with its sender's later ones
                    stalled.add(tx.sender)
                continue
            gas += result.gas_used
            applied.append((tx, result))
        touched = state.changed_addresses()  # before commit, which clears it
        roots = state.commit()
        signed_hashes = [tx.hash for tx, _ in applied]
        tx_hashes = (*(d.hash() for d in minted), *signed_hashes)
        header = BlockHeader(
            number=env.number, parent_hash=self.head_hash, timestamp=env.timestamp, state_root=roots.state_root,
            transactions_root=transactions_root(tx_hashes), message_root=roots.message_root, base_fee=base_fee,
            gas_used=gas, gas_limit=env.gas_limit, l1_origin_number=origin.number, l1_origin_hash=origin.hash,
        )
        block_hash = header.hash()
        if expect is not None and block_hash != expect:
            self._load()  # execution mutated the state: back to the durable head
            self._repool_due = True
            self._at_head = None
            raise BlockMismatch(header.number, expect, header)
        tree = state.account_tree
        slot_of = {a: slot for a in touched if (slot := tree.index_of(a)) is not None}  # each: it was written
        nodes = tree.take_writes() if isinstance(tree, StoredAccountTree) else dict(tree.nodes())
        accounts = state.accounts
        changed = {address: accounts[address] for address in touched}  # what the pool is told, below
        rows = [AccountRow(a, slot, changed[a]) for a, slot in slot_of.items()]
        new_accounts = [row for row in rows if row.slot >= self._slots]
        changed_accounts = [row for row in rows if row.slot < self._slots]
        signed = [tx for tx, _ in applied]  # the store builds their rows on its own thread
        messages = [SentMessage(tx.hash, r.withdrawal) for tx, r in applied if r.withdrawal is not None]

        def write_block(db: sqlite3.Connection) -> None:
            self._store.seal_block(db, BlockWrite(
                header.number, block_hash, header_to_json(header), txs=signed, first_index=len(minted),
                new_accounts=new_accounts, changed_accounts=changed_accounts, messages=messages, nodes=nodes))
            self._store.settle_forced(db, header.number, settled)
            self._store.settle_deposits(db, header.number, [d.portal_index for d in deposits])

        try:
            await self._store.run(write_block)
        except BaseException:
            self._load()  # the block never happened: back to the durable head, an empty pool
            self._repool_due = True
            self._at_head = None
            raise
        self._slots = tree.count
        if isinstance(tree, StoredAccountTree):  # the block is durable: caches may forget
            tree.evict(_CACHED_NODES, _CACHED_ACCOUNTS)
            state.evict(_CACHED_ACCOUNTS)
        self.head = header
        self.head_hash = block_hash
        self._at_head = None  # reads see the block now, with it as the head
        self.next_base_fee = next_base_fee(base_fee, gas, env.gas_limit)
        self.sealed_blocks += 1
        block = SealedBlock(header, block_hash, tx_hashes, state.message_count)
        self._last_sealed = block
        self._listener.sealed(signed_hashes)
        dropped = [d for tx_hash, reason in refused for d in self.mempool.drop(tx_hash, reason)]
        dropped += self.mempool.on_block(signed, changed, self.next_base_fee)
        await self._record_drops(dropped)
        return block

    async def expire(self, now: float) -> None:
        """Drop queued transactions that waited past the pool's lifetime (same clock as adds)."""
        await self._record_drops(self.mempool.expire(now))

    async def _record_drops(self, dropped: Sequence[Dropped]) -> None:
        """Receipts of what the pool let go say DROPPED, with the pool's reason."""
        if dropped:
            await self._listener.record_drops(dropped)

    def _touches(self, deposits: Sequence[DueDeposit], forced: Sequence[ForcedTx], txs: Sequence[Transaction]
                 ) -> list[bytes]:
        """Every address executing these may read or write (protocol._execution: the sender, the
        recipient or the zero address, FEE_VAULT; a deposit's recipient): the state reads those
        not cached from the store before execution, which reads only what is cached."""
        touched = [ZERO_ADDRESS, FEE_VAULT, *(d.deposit.to for d in deposits)]
        for _, raw in forced:
            try:
                tx = decode_transaction(raw, self._genesis.chain_id)
            except TxRejected:
                continue  # apply_forced skips it: it touches nothing
            touched += (tx.sender, tx.to or ZERO_ADDRESS)
        for tx in txs:
            touched += (tx.sender, tx.to or ZERO_ADDRESS)
        return touched

    # -- derivation's blocks (a lapsed sequencer window; see _follow) ------------------------

    async def seal_followed(self, number: int, timestamp: int, origin: L1Origin, raws: Sequence[bytes],
                            expect: bytes | None = None) -> SealedBlock | None:
        """Seal block ``number`` as derivation makes it: its due deposits and forced transactions
        (at ``origin``), then ``raws`` (a posted block's transactions; none for a block derivation
        made itself), each the rules refuse skipped, at ``timestamp``. The same code as every block.
        None if the head is no longer ``number`` - 1 (a block was sealed meanwhile). A replica
        re-executes its upstream's blocks so, with ``expect`` their hash (BlockMismatch if not)."""
        async with self._seal_lock:
            if self.head.number + 1 != number:
                return None
            if self._repool_due:
                self._repool_due = False
                await self._listener.repool()
            txs = []
            for raw in raws:
                try:
                    txs.append(decode_transaction(raw, self._genesis.chain_id))
                except TxRejected:
                    continue  # derivation skips it too (rule 12)
            with _tracer.start_as_current_span("seal_followed_block") as span:
                block = await self._seal(self._store.deposits_due(origin.number), self._store.forced_due(origin.number),
                                         txs, self.next_base_fee, timestamp, origin=origin, replay=True,
                                         expect=expect)
                span.set_attribute("l2.block.number", block.header.number)
                span.set_attribute("l2.block.transactions", len(block.tx_hashes))
            async with self._new_block:
                self._new_block.notify_all()
            return block

    def block_worth(self, max_block_txs: int) -> int:
        """How many pending transactions make a block's worth: ``max_block_txs``, or fewer when the
        last block's room (``block_room``: a batch of it alone fits one batch's data) cut its
        selection short, as many as that room held. The producer seals at once when the pool holds
        this many: waiting out the block time after every full block would cap sealing at a room's
        worth per block time, however fast the code (3,442 transfers per 250 ms in 390 kB batches:
        13.8k tx/s). The gas limit is not counted: it is the protocol's, and the base fee's market
        prices blocks at the block time."""
        held = self._room_held
        return max_block_txs if held is None else max(1, min(held, max_block_txs))

    @property
    def catching_up(self) -> bool:
        """Catch-up blocks remain to be sealed (the poster waits for all of them)."""
        return self._catch_up > 0

    def catch_up(self, blocks: int) -> None:
        """Seal ``blocks`` empty blocks at once (on the chain's own origin) after following a lapse.

        Derivation makes one block per L1 block of lapse until it reads the sequencer's next batch,
        which lands a few L1 blocks after the safe head the follow saw: the blocks of that batch
        numbered below what derivation reached by then are skipped (rule 5a), the rest are taken.
        A batch that leads with these empty blocks loses only empty ones to that overlap.
        """
        self._catch_up = max(self._catch_up, blocks)

    async def rewind(self, number: int) -> list[Transaction]:
        """Drop every block after ``number``; their signed transactions (forced ones aside, which
        L1's queue holds) are pending again, acknowledged and durable, and go back to the pool.

        An outage path (the sequencer window lapsed, see _follow), so the state at ``number`` is
        rebuilt by replaying the stored blocks from genesis (the snapshot holds only the head's),
        checked against block ``number``'s roots. Crash-safe: the transactions are logged as
        pending before the blocks go (a crash in between logs them twice, and restore keeps the
        sealed copy until the rewind is done again).
        """
        async with self._seal_lock:
            head = self.head.number
            if number >= head:
                return []
            txs: list[Transaction] = []
            tx_hashes: list[bytes] = []
            for n in range(number + 1, head + 1):
                tx_hashes += self._store.block_tx_hashes(n)
                txs += self._store.block_transactions(n)[self._store.block_forced_count(n):]
            await self._listener.unseal(txs)
            state = await asyncio.to_thread(self._replay, number)
            rows = [AccountRow(a, slot, account) for slot, (a, account) in enumerate(state.accounts.items())]
            await self._store.run(functools.partial(self._store.rewind, number=number, accounts=rows,
                                                    tx_hashes=tx_hashes, nodes=state.account_tree.nodes()))
            self._load()
            self.rewinds += 1
            self._rewound_to.append(number)
            self._repool_due = False
            await self._listener.repool()
        async with self._new_block:
            self._new_block.notify_all()  # block followers go back to the new blocks
        return txs

    def _replay(self, number: int) -> State:
        """The state after block ``number``, replayed from genesis from the stored blocks."""
        state = self._genesis.state()
        header = self._genesis.header(state)
        for n in range(1, number + 1):
            text = self._store.block_header(n)
            if text is None:
                raise ChainCorrupted(f"block {n} is missing: the chain cannot be replayed")
            header = header_from_json(text)
            for deposit in self._store.block_deposits(n):
                apply_deposit(state, deposit)
            env = BlockEnv(number=n, timestamp=header.timestamp, base_fee=header.base_fee, gas_limit=header.gas_limit)
            gas = 0
            # Forced transactions lead the signed ones; each is replayed by the rule the block
            # applied it with (apply_forced: the base fee waiver), the others by apply_transaction.
            forced = self._store.block_forced_count(n)
            for i, tx in enumerate(self._store.block_transactions(n)):
                result = (apply_forced(state, tx.raw, self._genesis.chain_id, env, gas).result if i < forced
                          else apply_transaction(state, tx, env, gas))
                if result is None:
                    raise ChainCorrupted(f"block {n}'s forced transaction {i} no longer applies on replay")
                gas += result.gas_used
        roots = state.commit()
        if roots.state_root != header.state_root or roots.message_root != header.message_root:
            raise ChainCorrupted(f"replaying blocks 1-{number} does not reproduce block {number}'s roots")
        return state

    # -- following ----------------------------------------------------------------------------

    def _reached(self, number: int, rewinds: int) -> bool:
        return self.head.number >= number or self.rewinds != rewinds

    def block(self, number: int) -> SealedBlock | None:
        last = self._last_sealed
        if last is not None and last.header.number == number:
            return last  # what every follower asks for next: not read back from disk
        text = self._store.block_header(number)
        if text is None:
            return None
        header = header_from_json(text)
        deposits = [d.hash() for d in self._store.block_deposits(number)]
        return SealedBlock(header, header.hash(), (*deposits, *self._store.block_tx_hashes(number)),
                           self._store.message_count(number))

    async def follow(self, from_number: int | None) -> AsyncIterator[SealedBlock]:
        """Blocks from ``from_number`` (or the next one) on, as they are sealed. Never ends. After a
        rewind, the blocks that replaced those already given come again (a number with another hash
        and parent: the client sees the reorg as on L1)."""
        number = self.head.number + 1 if from_number is None else from_number
        rewinds = self.rewinds
        while True:
            if self.rewinds != rewinds:
                number = min(number, min(self._rewound_to[rewinds:]) + 1)
                rewinds = self.rewinds
            while number <= self.head.number:
                block = self.block(number)
                if block is not None:
                    yield block
                number += 1
            async with self._new_block:
                await self._new_block.wait_for(functools.partial(self._reached, number, rewinds))
