"""Every default of the L1 client, in one place."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Final

from services.l1._errors import classify
from services.runtime import PolicyConfig

GWEI: Final = 10**9

#: While waiting for a receipt: the first re-ask comes after this, then twice as long each time...
RECEIPT_FIRST_POLL_S: Final = 0.005  # anvil mines within a few ms of the send
#: ...up to this interval.
RECEIPT_POLL_S: Final = 0.25

#: The CallPolicy target of the node's L1 endpoint (one breaker and one retry budget for it).
DEFAULT_TARGET: Final = "l1"

#: The L1 endpoint's call policy: the runtime's defaults, with the JSON-RPC classifier.
POLICY: Final = PolicyConfig(classify=classify)


def policy_config(**overrides: Any) -> PolicyConfig:
    """The L1 policy with some fields changed (tests, a slow provider); keeps the classifier."""
    return replace(POLICY, **overrides)


@dataclass(frozen=True, slots=True)
class SenderConfig:
    """How the batcher's transactions are priced, sized and replaced."""

    #: max fee = base fee of the latest block x this + priority fee: absorbs six full blocks of
    #: +12.5% base fee increases before the transaction becomes unincludable.
    base_fee_multiplier: int = 2
    #: Used when the node has no eth_maxPriorityFeePerGas.
    default_priority_fee_wei: int = 1 * GWEI
    #: Never offer more than this per gas (max fee); a higher market raises FeeCapExceeded.
    max_fee_cap_wei: int = 500 * GWEI
    #: Gas limit = eth_estimateGas x (100 + this) / 100: state can change between estimate and inclusion.
    gas_margin_percent: int = 20
    #: Never a gas limit above this (EIP-7825 caps a transaction at 2**24 gas from Osaka on): the
    #: margin above stops here, and an estimate above it is sent as is (the node refuses it).
    max_gas: int = 2**24
    #: A replacement raises both fee fields by at least this much; geth and anvil require +10%.
    replacement_bump_percent: int = 12
    #: wait_receipt resends with bumped fees when a transaction is not mined within this long.
    replace_after_s: float = 30.0
    #: How often wait_receipt asks whether the node still has a transaction not yet mined (one
    #: its pool dropped is sent again as it is: anvil drops those that did not fit a full block).
    rebroadcast_check_s: float = 1.0
    #: Longest interval between wait_receipt's asks for the receipt.
    receipt_poll_s: float = RECEIPT_POLL_S
    #: How often send() re-signs after "nonce too low" (each time after a resync) before giving up.
    nonce_retries: int = 3
    #: A blob transaction's max fee per blob gas = eth_blobBaseFee x this (as base_fee_multiplier:
    #: the blob base fee moves by at most +12.5% a block too), at least 1 wei.
    blob_fee_multiplier: int = 2
    #: A replacement of a blob transaction multiplies its blob fee by at least this much (geth's
    #: blob pool requires x2 for a replacement; anvil +10%).
    blob_replacement_factor: int = 2
    #: Send blob transactions with EIP-7594 cell proofs (the version-1 sidecar Osaka nodes require;
    #: ~4x the KZG work of blob proofs), not Cancun's blob proofs (anvil 1.7.1 takes both).
    blob_cell_proofs: bool = False
    #: The deadline of sending a blob transaction (seconds): up to ~800 KB of blobs, KZG-checked by
    #: the node (anvil loads its trusted setup at the first one: several seconds on a busy machine).
    blob_send_deadline_s: float = 30.0

    def __post_init__(self) -> None:
        if self.base_fee_multiplier < 1 or self.replacement_bump_percent < 10 or self.nonce_retries < 0:
            raise ValueError("need base_fee_multiplier >= 1, replacement_bump_percent >= 10, nonce_retries >= 0")
        if self.max_fee_cap_wei <= 0 or self.receipt_poll_s <= 0 or self.replace_after_s <= 0 or \
                self.rebroadcast_check_s <= 0:
            raise ValueError("max_fee_cap_wei, receipt_poll_s, replace_after_s and rebroadcast_check_s must be > 0")


@dataclass(frozen=True, slots=True)
class FollowerConfig:
    """How far behind the chain head a log counts as safe or final, and how the follower polls."""

    #: safe head = latest - this. Nothing irreversible happens before it.
    confirmation_depth: int = 6
    #: Use the node's `finalized` block tag (post-merge nodes, anvil); otherwise, or when the node
    #: does not know the tag, finalized head = latest - finality_depth.
    use_finalized_tag: bool = True
    #: Two epochs of 32 slots, as the beacon chain finalizes; also bounds the reorg window kept.
    finality_depth: int = 64
    #: Sleep between polls once caught up with the head (an L1 slot is 12 s).
    poll_interval_s: float = 2.0
    #: While no delivered log awaits finality and polls find nothing, the sleep doubles up to this
    #: (never below poll_interval_s; see services.l1's Pacer); a transaction sent here snaps it back.
    idle_poll_s: float = 8.0
    #: Blocks per eth_getLogs while catching up over finalized history (providers cap ranges).
    max_log_range: int = 1000
    #: Block headers fetched per JSON-RPC batch above the finalized head.
    max_header_batch: int = 100

    def __post_init__(self) -> None:
        if self.confirmation_depth < 0 or self.finality_depth < self.confirmation_depth:
            raise ValueError("need 0 <= confirmation_depth <= finality_depth")
        if self.poll_interval_s <= 0 or self.max_log_range < 1 or self.max_header_batch < 1:
            raise ValueError("poll_interval_s, max_log_range and max_header_batch must be positive")
