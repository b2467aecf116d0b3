// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Snapshots} from "./Snapshot.sol";

/// @title IStepVerifier
/// @notice One step of the derivation machine, executed on L1: what a dispute ends with once the
///         two parties have bisected their disagreement down to a single step.
/// @dev Batches keep arriving, so "does batch b exist" must not be asked of L1 as it is when the
///      step runs: the answer could change during a dispute, and an output claiming an L2 block
///      no batch held when it was proposed could never be disproven before it finalized. Every
///      dispute trace is therefore bounded by `batchLimit`, the inbox's batch count when the
///      disputed output was proposed (OutputRegistry records batchCount() then).
interface IStepVerifier {
    /// @notice The commitment of the snapshot one derivation step after `pre`, for a trace that
    ///         ends at L2 block `target` and reads only the batches with an index below
    ///         `batchLimit` (a batch at or past it does not exist for this step, even if L1 holds
    ///         it). Reverts if `proof` does not prove what the step reads (a forged pre-state
    ///         proof reverts).
    function step(Snapshots.Snapshot calldata pre, uint256 target, uint256 batchLimit, uint256 l1Horizon, bytes calldata proof) external view returns (bytes32 post);

    /// @notice How many batches L1 holds now: an output proposed now has this as its batchLimit.
    function batchCount() external view returns (uint256);
}
