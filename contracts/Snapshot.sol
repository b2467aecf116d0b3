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

    function commitment(Snapshot memory s) internal pure returns (bytes32) {
        return keccak256(abi.encode(s));
    }

    function outputRoot(Snapshot memory s) internal pure returns (bytes32) {
        return keccak256(abi.encode(bytes32(0), s.stateRoot, s.messageRoot, s.blockHash));
    }
}
