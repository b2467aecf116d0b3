// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {L2Transaction} from "./L2Transaction.sol";

/// @title L2TransactionHarness
/// @notice Exposes the L2Transaction library as external functions, so that tests can eth_call it
///         and compare it with the Python decoder. Not deployed by the node.
/// @dev L2Transaction's functions are internal (inlined into the dispute game); a library can
///      only be called from outside through a contract like this one.
contract L2TransactionHarness {
    /// @notice One decoded transaction: L2Transaction.decode's three results.
    struct Result {
        bool ok;
        uint8 reason;
        L2Transaction.Tx decoded;
    }

    /// @notice L2Transaction.decode of each of `raws`, in order: many vectors in one eth_call.
    function decodeMany(bytes[] calldata raws, uint256 chainId) external view returns (Result[] memory results) {
        results = new Result[](raws.length);
        for (uint256 i = 0; i < raws.length; i++) {
            Result memory result = results[i];
            (result.ok, result.reason, result.decoded) = L2Transaction.decode(raws[i], chainId);
        }
    }

    /// @notice L2Transaction.decode of `raw`, and the gas it spent, measured inside the EVM.
    /// @dev The library's own share: `raw` is copied to memory before the measurement starts (a
    ///      caller holding it in memory already pays that anyway).
    function decodeGas(bytes calldata raw, uint256 chainId) external view returns (bool ok, uint256 gasUsed) {
        bytes memory copy = raw;
        gasUsed = gasleft();
        (ok,,) = L2Transaction.decode(copy, chainId);
        gasUsed -= gasleft();
    }

    /// @notice See L2Transaction.withdrawalHash.
    function withdrawalHash(
        uint256 messageNonce,
        address sender,
        address target,
        uint256 value,
        uint256 gasLimit,
        bytes calldata data
    ) external pure returns (bytes32) {
        return L2Transaction.withdrawalHash(messageNonce, sender, target, value, gasLimit, data);
    }
}
