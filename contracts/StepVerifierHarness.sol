// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IStepVerifier} from "./IStepVerifier.sol";
import {Snapshots} from "./Snapshot.sol";

/// @title StepVerifierHarness
/// @notice A TEST DOUBLE for the dispute game's mechanics only: a "counter machine" whose step
///         adds one to the snapshot's block number until it reaches the target, then stands
///         still. Honest traces are then trivial to compute off-chain, which is all the game's
///         tests need. It says nothing about derivation: the real StepVerifier, which executes
///         an actual derivation step, is written separately. Never deploy it in a node.
/// @dev Also exposes the Snapshots library, so that tests can compare Solidity's commitment
///      and output root with Python's.
contract StepVerifierHarness is IStepVerifier {
    /// @notice The L1 block of each batch of the inbox this double also stands for (see inbox()).
    uint256[] public batchBlocks;

    /// @notice `proof` is not what this machine expects: the commitment of `pre` itself.
    error ForgedProof(bytes32 expected);
    error IndexOutOfRange(uint256 index, uint256 count);

    /// @inheritdoc IStepVerifier
    /// @dev The "proof" must be abi.encode(commitment(pre)): a stand-in for a real proof of
    ///      what the step reads, so that the game's forged-proof path can be exercised. The
    ///      counter machine reads no batch: batchLimit and l1Horizon are ignored.
    function step(Snapshots.Snapshot calldata pre, uint256 target, uint256, uint256, bytes calldata proof)
        external
        pure
        returns (bytes32 post)
    {
        Snapshots.Snapshot memory s = pre;
        bytes32 expected = Snapshots.commitment(s);
        if (proof.length != 32 || bytes32(proof) != expected) revert ForgedProof(expected);
        // Stutter once the target is reached: a trace may be longer than its block range.
        if (s.number < target) s.number += 1;
        return Snapshots.commitment(s);
    }

    // --- the inbox double: the registry checks a proposal's batch limit on verifier.inbox() ------

    /// @notice This contract: it answers BatchInbox's batchCount() and batch(i) itself.
    function inbox() external view returns (address) {
        return address(this);
    }

    /// @inheritdoc IStepVerifier
    function batchCount() external view returns (uint256) {
        return batchBlocks.length;
    }

    /// @notice Batch `index` as BatchInbox.batch returns it (a zero root: nothing reads it).
    function batch(uint256 index) external view returns (bytes32 inputRoot, uint256 l1Block) {
        if (index >= batchBlocks.length) revert IndexOutOfRange(index, batchBlocks.length);
        return (bytes32(0), batchBlocks[index]);
    }

    /// @notice Append a batch "included" in L1 block `l1Block` (anyone: a test double).
    function addBatch(uint256 l1Block) external {
        batchBlocks.push(l1Block);
    }

    /// @notice Snapshots.commitment, for the tests.
    function commitment(Snapshots.Snapshot calldata s) external pure returns (bytes32) {
        return Snapshots.commitment(s);
    }

    /// @notice Snapshots.outputRoot, for the tests.
    function outputRoot(Snapshots.Snapshot calldata s) external pure returns (bytes32) {
        return Snapshots.outputRoot(s);
    }
}
