// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title ForwarderHarness
/// @notice Calls `target` with `data`: a contract as BatchInbox's batcher, so that tests can see
///         what derivation reads when a batch is appended by an internal call (the transaction's
///         input is a `forward` call, not `appendBatch`). Not deployed by the node.
contract ForwarderHarness {
    /// @notice The call to `target` reverted with `reason`.
    error CallFailed(bytes reason);

    function forward(address target, bytes calldata data) external {
        (bool ok, bytes memory reason) = target.call(data);
        if (!ok) revert CallFailed(reason);
    }
}
