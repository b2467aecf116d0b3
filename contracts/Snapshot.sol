// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title Snapshot
/// @notice The derivation machine's snapshot: what the step function carries from one step of the
///         derivation trace to the next. A dispute bisects over the commitments of these snapshots;
///         an output is proposed with the whole snapshot at the end of its block (phase IDLE).
/// @dev Must match services/rollups/_snapshot.py word for word: 21 words, abi.encode order.
///      commitment  = keccak256(abi.encode(snapshot))
///      output root = keccak256(abi.encode(bytes32(0), stateRoot, messageRoot, blockHash))
library Snapshots {
    uint256 internal constant IDLE = 0;
    uint256 internal constant DEPOSITS = 1;
    uint256 internal constant FORCED = 2;
    uint256 internal constant BATCH = 3;

    struct Snapshot {
        bytes32 stateRoot; // sized account-tree root
        bytes32 messageRoot; // sized message-passer root
        bytes32 blockHash; // last sealed L2 block
        uint256 number;
        uint256 timestamp;
        uint256 baseFee;
        uint256 gasUsed;
        uint256 gasLimit;
        uint256 l1OriginNumber;
        uint256 phase; // IDLE | DEPOSITS | FORCED | BATCH: the block in progress
        uint256 blockTimestamp; // the block in progress (zero when IDLE, through txLeft)
        uint256 blockOriginNumber;
        bytes32 blockOriginHash;
        uint256 blockBaseFee;
        uint256 blockGasUsed;
        bytes32 txRoot; // sized root over what the block in progress included so far
        uint256 txLeft; // batch transactions of the block still to read
        uint256 batchIndex; // cursors into L1: inbox batch, leaf within it, portal deposit, forced queue
        uint256 itemIndex;
        uint256 depositIndex;
        uint256 forcedIndex;
    }

    /// @notice The largest base fee a snapshot may hold (next_base_fee clamps to it).
    uint256 internal constant MAX_BASE_FEE = type(uint128).max;

    /// @notice `field` of a proposed (or anchor) snapshot is out of range: it is `value`.
    error SnapshotFieldOutOfRange(string field, uint256 value);

    /// @notice Refuse a snapshot no honest derivation can produce (issue item 9): one that could
    ///         make the step's arithmetic overflow, so that a trace starting from it could not be
    ///         disproven. Phase IDLE (an output is between blocks); number, timestamp, origin, gas
    ///         and the four cursors below 2**64; baseFee at most MAX_BASE_FEE; 2 <= gasLimit
    ///         (EIP-1559's elasticity halves it) and gasUsed <= gasLimit; the block-in-progress
    ///         words (blockTimestamp through txLeft) zero. Mirrored by check_range in
    ///         services/rollups/_snapshot.py.
    /// @dev Applied to the anchor and every proposal. A step's pre-state is then always a snapshot
    ///      the challenger agreed to or a checked start, so no step meets an absurd pre-state: an
    ///      absurd claim is disproven, never unprovable.
    function checkRange(Snapshot memory s) internal pure {
        if (s.number > type(uint64).max) revert SnapshotFieldOutOfRange("number", s.number);
        if (s.timestamp > type(uint64).max) revert SnapshotFieldOutOfRange("timestamp", s.timestamp);
        if (s.baseFee > MAX_BASE_FEE) revert SnapshotFieldOutOfRange("baseFee", s.baseFee);
        if (s.gasLimit > type(uint64).max || s.gasLimit < 2) revert SnapshotFieldOutOfRange("gasLimit", s.gasLimit);
        if (s.gasUsed > s.gasLimit) revert SnapshotFieldOutOfRange("gasUsed", s.gasUsed);
        if (s.l1OriginNumber > type(uint64).max) revert SnapshotFieldOutOfRange("l1OriginNumber", s.l1OriginNumber);
        if (s.phase != IDLE) revert SnapshotFieldOutOfRange("phase", s.phase);
        if (s.blockTimestamp != 0) revert SnapshotFieldOutOfRange("blockTimestamp", s.blockTimestamp);
        if (s.blockOriginNumber != 0) revert SnapshotFieldOutOfRange("blockOriginNumber", s.blockOriginNumber);
        if (s.blockOriginHash != 0) revert SnapshotFieldOutOfRange("blockOriginHash", uint256(s.blockOriginHash));
        if (s.blockBaseFee != 0) revert SnapshotFieldOutOfRange("blockBaseFee", s.blockBaseFee);
        if (s.blockGasUsed != 0) revert SnapshotFieldOutOfRange("blockGasUsed", s.blockGasUsed);
        if (s.txRoot != 0) revert SnapshotFieldOutOfRange("txRoot", uint256(s.txRoot));
        if (s.txLeft != 0) revert SnapshotFieldOutOfRange("txLeft", s.txLeft);
        if (s.batchIndex > type(uint64).max) revert SnapshotFieldOutOfRange("batchIndex", s.batchIndex);
        if (s.itemIndex > type(uint64).max) revert SnapshotFieldOutOfRange("itemIndex", s.itemIndex);
        if (s.depositIndex > type(uint64).max) revert SnapshotFieldOutOfRange("depositIndex", s.depositIndex);
        if (s.forcedIndex > type(uint64).max) revert SnapshotFieldOutOfRange("forcedIndex", s.forcedIndex);
    }

    function commitment(Snapshot memory s) internal pure returns (bytes32) {
        return keccak256(abi.encode(s));
    }

    function outputRoot(Snapshot memory s) internal pure returns (bytes32) {
        return keccak256(abi.encode(bytes32(0), s.stateRoot, s.messageRoot, s.blockHash));
    }
}
