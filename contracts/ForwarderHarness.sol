// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title ForwarderHarness
/// @notice Calls `target` with `data`: a contract as BatchInbox's batcher (or as the code an
///         EIP-7702-delegated batcher runs), so that tests can see the inbox refuse a batch
///         appended by an internal call, whose data no transaction's input would hold. Not
///         deployed by the node.
contract ForwarderHarness {
    /// @notice The call to `target` reverted with `reason`.
    error CallFailed(bytes reason);

    function forward(address target, bytes calldata data) external {
        (bool ok, bytes memory reason) = target.call(data);
        if (!ok) revert CallFailed(reason);
    }
}
