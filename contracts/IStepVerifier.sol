// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Snapshots} from "./Snapshot.sol";

/// @title IStepVerifier
/// @notice One step of the derivation machine, executed on L1: what a dispute ends with once the
///         two parties have bisected their disagreement down to a single step.
interface IStepVerifier {
    /// @notice The commitment of the snapshot one derivation step after `pre`, for a trace that
    ///         ends at L2 block `target`. Reverts if `proof` does not prove what the step reads
    ///         (a forged pre-state proof reverts). Someone else writes the real one.
    function step(Snapshots.Snapshot calldata pre, uint256 target, bytes calldata proof) external view returns (bytes32 post);
}
