"""The sequencer's own settings (the worker config's ``settings`` table), each with its default."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from protocol import DEFAULT_CHAIN_ID
from services.l1 import Deployment, FollowerConfig, needed_files, read_key
from services.runtime import check_nice, check_threads, cpu_count, settings_from

from ._mempool import MempoolConfig

#: Most transactions one SendRawTransactions call may carry: bigger batches should be split
#: (the response must stay well under gRPC's 4 MiB default message size).
DEFAULT_MAX_BATCH: Final = 4096
#: The largest transaction an L1 node accepts (geth's txpool: txMaxSize, 128 KiB). A block whose
#: batch could not be posted in one would hold SAFE back for good, so no block outgrows it.
L1_MAX_TX_BYTES: Final = 128 * 1024
#: EIP-7825 (Osaka): no L1 transaction may use more than 2**24 gas.
L1_MAX_TX_GAS: Final = 2**24
#: EIP-7623: calldata costs at least 10 gas a token, 4 tokens a non-zero byte (a batch is mostly
#: non-zero bytes, and under this floor appendBatch's execution, ~400 gas a transfer, costs nothing).
L1_FLOOR_GAS_PER_BYTE: Final = 40
#: The intrinsic gas of a transaction, and a margin for appendBatch's execution above the floor.
L1_TX_BASE_GAS: Final = 21_000 + 200_000


def batch_tx_gas(calldata: bytes, max_tx_gas: int) -> int:
    """The gas limit of an ``appendBatch`` transaction with this calldata: its EIP-7623 floor (10
    gas a token) plus ``L1_TX_BASE_GAS``, capped at ``max_tx_gas``. It covers the call on any L1:
    the standard cost is 4 gas a token, and the execution (~400 gas a transfer, ~0.3M of memory at
    400 kB) stays far under the other 6 gas a token (~2,800 a transfer). Computed here, not asked
    of L1: for eth_estimateGas anvil executed the whole batch (its input root, a keccak a leaf),
    ~2/3 of the devnet L1's CPU under load (bench/RESULTS.md, issue 15, session 13)."""
    zeros = calldata.count(0)
    return min(L1_TX_BASE_GAS + 10 * (zeros + 4 * (len(calldata) - zeros)), max_tx_gas)


#: What an L1 transaction adds around a batch's data, at most: appendBatch's selector and ABI head
#: (100 bytes) and padding (31), the signed EIP-1559 envelope (~120), rounded up.
L1_TX_OVERHEAD: Final = 512
#: What a batch of one block of one transaction adds around the transaction's bytes (protocol's
#: batch format 1): the version byte, the BLOCK leaf (161) and the TX leaf's kind byte, each framed (3).
BATCH_FRAMING: Final = 1 + 3 + 161 + 3 + 1


def _inbox_and_portal(contracts: str) -> tuple[bytes, bytes]:
    deployment = Deployment.load(contracts)
    return deployment.address_of("BatchInbox"), deployment.address_of("DepositPortal")


#: The values of ``l1.batch_data``.
BATCH_DATA: Final = ("calldata", "blobs", "auto")


@dataclass(frozen=True, slots=True)
class L1Settings:
    """Where L1 is and how batches go there. No rpc: no batcher (blocks stay SEALED), e.g. a bare
    worker in a benchmark. With an rpc, the batcher is the sequencer's job: without its contracts
    file or its key the worker is not ready (:meth:`missing`)."""

    rpc: str = ""
    #: contracts.json of the L1 chain (written by `l2node up` on a local anvil).
    contracts: str = ""
    #: A file holding the hex private key batches are posted with.
    batcher_key_file: str = ""
    #: Post at least this often while blocks wait (seconds) ...
    batch_interval_s: float = 1.0
    #: ... or as soon as a batch would be this large (bytes of batch data). A batch larger than one
    #: L1 transaction carries (``frame_bytes``: geth's pool takes at most 128 KiB a transaction,
    #: ``max_tx_bytes``, and EIP-7825's 2**24 gas at EIP-7623's floor of 40 gas a byte allows
    #: ~414 KB, ``max_tx_gas``) is posted in frames (``appendFrame``, protocol._frames), and a block
    #: may then be as large as this too. 100 kB (the default) keeps every batch in one transaction.
    batch_max_bytes: int = 100_000
    #: The largest frame of a batch posted in several L1 transactions (bytes of frame data); 0: what
    #: one L1 transaction carries (``max_batch_data``). No L2 transaction larger than a frame's room
    #: is let into the pool (a frame holds whole leaves).
    max_frame_bytes: int = 0
    #: The largest transaction the L1 accepts (bytes): every block's batch fits one.
    max_tx_bytes: int = L1_MAX_TX_BYTES
    #: The most gas one L1 transaction may use (EIP-7825: 2**24 from Osaka on): no batch may need
    #: more at the calldata floor, and the sender never asks for more. A devnet L1 without the cap
    #: may raise it (bench/e2e_throughput.py's tuned runs).
    max_tx_gas: int = L1_MAX_TX_GAS
    #: Batch transactions sent and not yet mined, at most. One was the old poster (one batch per L1
    #: block: it waited for each receipt). 8 fills a devnet L1 block (30M gas holds 6 batches of
    #: 100 kB at the floor) with some to spare; on a 12 s L1 it lets a burst go out in one block.
    #: Each in flight polls for its receipt (at most every 0.25 s) until mined.
    max_in_flight: int = 8
    #: Where batch data goes (issue 15): "calldata" (``appendBatch``), "blobs" (EIP-4844 blob
    #: transactions, ``appendBlobBatch``: the L1 must take them, Cancun on; protocol._blob) or
    #: "auto": per batch, whichever the L1 prices lower when it is sent (calldata at EIP-7623's floor
    #: of 40 gas a byte x the base fee, against whole blobs of 2**17 blob gas x eth_blobBaseFee),
    #: calldata when the L1 has no blob fee to give. Either way, a block holding a transaction
    #: longer than a step can open from a blob (protocol._blob.MAX_BLOB_LEAF, 4 KiB) goes as calldata.
    batch_data: str = "calldata"
    #: Blobs per blob batch, at most (EIP-7594, Osaka: 6 a transaction; a Prague block holds 9).
    max_blobs: int = 6
    #: Send blobs with EIP-7594 cell proofs (the sidecar an Osaka L1's nodes require) rather than
    #: Cancun's blob proofs (~4x the KZG work; anvil 1.7.1 takes either).
    blob_cell_proofs: bool = False
    #: L1 blocks on top of a batch's before its transactions count as SAFE.
    confirmation_depth: int = 4
    #: How often the inbox follower asks L1 for news (seconds) while something it saw awaits depth;
    #: idle, it backs off to services.l1's idle_poll_s. A deposit is minted within about this long
    #: of reaching the depth (Chain.inputs_due seals at once): bench/deposit_latency.py, p50 ~140 ms
    #: at 0.25 s, ~210 ms at 0.5 s (the goal: 300 ms). Idle, it costs nothing (see idle_poll_s).
    poll_interval_s: float = 0.25
    #: The longest sleep of the idle follower (seconds); default services.l1's (8 s). 0: derived at
    #: start from L1's block time (``idle_poll_for``), so that a deposit made while the node is idle
    #: is still seen before it reaches the depth and minted within ``poll_interval_s`` of it: on the
    #: devnet's L1 (1 s blocks, depth 4) 4 s, and the sequencer's idle L1 calls double (0.67 -> 1.33
    #: a second, against an idle node's budget of 2, tests/node/test_quiet.py); at 8 s, the first
    #: deposit after a quiet spell waits up to ~4 s more there. An L1 of 12 s slots: 8 s either way.
    idle_poll_s: float = field(default_factory=lambda: FollowerConfig().idle_poll_s)

    def idle_poll_for(self, block_time_s: float | None) -> float:
        """The idle follower's longest sleep: ``idle_poll_s``, or when that is 0, derived for an
        L1 with blocks every ``block_time_s`` (None: not known, as on an L1 that mines only when
        sent a transaction): the time a deposit takes to reach the depth, so the first poll after
        it comes before (it then polls every ``poll_interval_s`` until the depth) or right at it;
        between ``poll_interval_s`` and services.l1's default (8 s: a 12 s L1 slot never makes it
        poll more)."""
        if self.idle_poll_s:
            return max(self.idle_poll_s, self.poll_interval_s)
        idle_max = FollowerConfig().idle_poll_s
        if not block_time_s:
            return idle_max
        return max(self.poll_interval_s, min(idle_max, self.confirmation_depth * block_time_s))

    @property
    def enabled(self) -> bool:
        return bool(self.rpc and self.contracts and self.batcher_key_file)

    def missing(self, *, posts: bool = True) -> list[str]:
        """What the batcher needs and cannot have (the file and what is wrong with it); empty when
        it has everything, or when there is no L1 (no batcher asked for). ``posts=False``: a read
        replica's follower, which posts nothing and needs no key."""
        if not self.rpc:
            return []
        files: dict[str, tuple[str, Callable[[str], object]]] = {"l1.contracts": (self.contracts, _inbox_and_portal)}
        if posts:
            files["l1.batcher_key_file"] = (self.batcher_key_file, read_key)
        return needed_files("the batcher", files)

    @property
    def max_batch_data(self) -> int:
        """The most batch data (appendBatch's bytes) one L1 transaction carries."""
        return self.max_tx_bytes - L1_TX_OVERHEAD

    @property
    def frame_bytes(self) -> int:
        """The most data of one L1 transaction of a batch: a frame, or a batch posted whole."""
        return self.max_frame_bytes or self.max_batch_data

    @property
    def block_data(self) -> int:
        """The most batch data one L2 block may need: a batch of it alone is then postable, in frames
        if it is larger than one L1 transaction carries."""
        return max(self.batch_max_bytes, self.frame_bytes)

    @property
    def max_data_by_gas(self) -> int:
        """The most batch data one L1 transaction of ``max_tx_gas`` carries at the calldata floor."""
        return (self.max_tx_gas - L1_TX_BASE_GAS) // L1_FLOOR_GAS_PER_BYTE

    @property
    def max_l2_tx(self) -> int:
        """The largest L2 transaction a block can carry and still be posted (alone) in one L1 one:
        its leaf, whole, in one frame."""
        return self.frame_bytes - BATCH_FRAMING


@dataclass(frozen=True, slots=True)
class SequencerSettings:
    #: The L2 chain id; transactions signed for any other chain are refused (replay protection).
    chain_id: int = DEFAULT_CHAIN_ID
    #: Seal a block at least this often while transactions wait (seconds).
    block_time_s: float = 0.25
    #: ... or as soon as this many are pending.
    max_block_txs: int = 10_000
    #: Seal an empty block this often (seconds) while a transaction waits for the base fee to fall
    #: (its fee cap is under it): EIP-1559's decay needs blocks (``_chain.Chain._empty_block_due``).
    empty_block_time_s: float = 1.0
    #: "fee" (effective tip, ties by arrival) or "fcfs" (arrival order).
    ordering: str = "fee"
    #: The genesis JSON file, set by the node from its one ``[node] genesis`` (the same for every
    #: service; l2node/node/genesis.py); empty: the devnet genesis (the anvil/hardhat dev accounts funded).
    genesis_file: str = ""
    max_batch: int = DEFAULT_MAX_BATCH
    #: Pool limits, as services.sequencer._mempool.MempoolConfig fields (geth's defaults otherwise).
    mempool: Mapping[str, Any] = field(default_factory=dict)
    #: L1Settings fields (`l2node up` fills rpc, contracts and batcher_key_file).
    l1: Mapping[str, Any] = field(default_factory=dict)
    #: A read replica's upstream sequencer, gRPC ``host:port``: set, this sequencer seals no blocks
    #: and posts no batches; it re-executes the upstream's blocks, follows derivation from L1
    #: (``l1.rpc`` and ``l1.contracts`` required, no key) and forwards sends (``_replica``).
    upstream: str = ""
    #: A read replica is not ready (``l2node.ready``, GetWorkerStatus) while it is more than this many
    #: blocks behind its upstream's head as last heard: catching up after a restart, or falling behind.
    max_lag_blocks: int = 20
    #: Threads decoding incoming batches. Sender recovery (~45 us a transaction) runs in C
    #: without the GIL, so each thread uses a core of its own; default: one per CPU.
    decode_threads: int = field(default_factory=cpu_count)
    #: Added to the decode threads' niceness (0-19; Linux, where nice is per thread). Recovery is
    #: the worker's parallel part and needs no GIL; the event loop is its serial part and holds it:
    #: when the loop waits for a CPU behind a decode thread, every Python thread of the worker waits
    #: too. At 5 the loop and the store's threads go first, and recovery takes the rest (the whole
    #: tree under load: 12.4k sealed tx/s against 10.8-12.0k at 0; bench/RESULTS.md, session 19).
    decode_nice: int = 5

    def l1_settings(self) -> L1Settings:
        try:
            return L1Settings(**self.l1)
        except TypeError as exc:
            raise ValueError(f"l1 settings: {exc}") from None

    def mempool_config(self) -> MempoolConfig:
        """The pool's limits; with a batcher, no transaction larger than one L1 transaction can post
        (the pool refuses it OVERSIZED, rather than hold it forever)."""
        try:
            config = MempoolConfig(**self.mempool)
        except TypeError as exc:
            raise ValueError(f"mempool settings: {exc}") from None
        l1 = self.l1_settings()
        if l1.enabled and config.max_tx_size > l1.max_l2_tx:
            config = replace(config, max_tx_size=l1.max_l2_tx)
        return config

    def __post_init__(self) -> None:
        if self.ordering not in ("fee", "fcfs"):
            raise ValueError(f"ordering {self.ordering!r} must be 'fee' or 'fcfs'")
        if not 0 < self.block_time_s <= 60:
            raise ValueError(f"block_time_s {self.block_time_s} must be in (0, 60]")
        if not 0 < self.empty_block_time_s <= 3600:
            raise ValueError(f"empty_block_time_s {self.empty_block_time_s} must be in (0, 3600]")
        if self.max_block_txs < 1 or self.max_batch < 1:
            raise ValueError("max_block_txs and max_batch must be at least 1")
        check_threads("decode_threads", self.decode_threads)
        check_nice("decode_nice", self.decode_nice)
        if not isinstance(self.max_lag_blocks, int) or self.max_lag_blocks < 0:
            raise ValueError(f"max_lag_blocks {self.max_lag_blocks!r} must be an integer >= 0")
        if not isinstance(self.upstream, str) or (self.upstream and ":" not in self.upstream):
            raise ValueError(f"upstream {self.upstream!r} must be a gRPC address (host:port), or empty")
        l1 = self.l1_settings()
        if l1.enabled and l1.max_l2_tx < 1024:
            raise ValueError(f"l1.max_tx_bytes {l1.max_tx_bytes} / l1.max_frame_bytes {l1.max_frame_bytes} leave no "
                             "room for a batch")
        if l1.enabled and l1.max_batch_data > l1.max_data_by_gas:
            raise ValueError(f"l1.max_tx_bytes {l1.max_tx_bytes}: a batch that large needs more than l1.max_tx_gas "
                             f"{l1.max_tx_gas} at the calldata floor (at most {l1.max_data_by_gas} bytes of data)")
        if l1.batch_data not in BATCH_DATA:
            raise ValueError(f"l1.batch_data {l1.batch_data!r} must be one of {', '.join(BATCH_DATA)}")
        if not 1 <= l1.max_blobs <= 9:
            raise ValueError(f"l1.max_blobs {l1.max_blobs} must be in [1, 9]")
        if l1.enabled and l1.max_in_flight < 1:
            raise ValueError(f"l1.max_in_flight {l1.max_in_flight} must be at least 1")
        if l1.enabled and not 0 <= l1.max_frame_bytes <= l1.max_batch_data:
            raise ValueError(f"l1.max_frame_bytes {l1.max_frame_bytes} exceeds what one L1 transaction carries "
                             f"({l1.max_batch_data} of l1.max_tx_bytes {l1.max_tx_bytes})")
        self.mempool_config()  # fail at start, with the reason, not at the first transaction

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> SequencerSettings:
        return settings_from(cls, data, "sequencer")
