// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {StateProofs} from "./StateProofs.sol";

/// @title StateProofsHarness
/// @notice Exposes the StateProofs library as external functions, so that tests can eth_call it
///         and compare it with the Python verifier. Not deployed by the node.
/// @dev StateProofs' functions are internal (inlined into the dispute game); a library can only
///      be called from outside through a contract like this one.
contract StateProofsHarness {
    /// @notice See StateProofs.merkleRoot.
    function merkleRoot(bytes32 leaf, uint256 index, uint256 count, bytes32[48] calldata siblings)
        external
        pure
        returns (bytes32)
    {
        return StateProofs.merkleRoot(leaf, index, count, siblings);
    }

    /// @notice See StateProofs.verifyMerkleProof.
    function verifyMerkleProof(
        bytes32 root,
        bytes32 leaf,
        uint256 index,
        uint256 count,
        bytes32[48] calldata siblings
    ) external pure returns (bool) {
        return StateProofs.verifyMerkleProof(root, leaf, index, count, siblings);
    }

    /// @notice See StateProofs.accountLeafHash.
    function accountLeafHash(address account, uint64 nonce, uint256 balance, address next)
        external
        pure
        returns (bytes32)
    {
        return StateProofs.accountLeafHash(account, nonce, balance, next);
    }

    /// @notice See StateProofs.verifyInclusion.
    function verifyInclusion(
        bytes32 root,
        address account,
        uint64 nonce,
        uint256 balance,
        address next,
        uint256 index,
        uint256 count,
        bytes32[48] calldata siblings
    ) external pure returns (bool) {
        return StateProofs.verifyInclusion(root, account, nonce, balance, next, index, count, siblings);
    }

    /// @notice StateProofs.verifyInclusion, and the gas it spent, measured inside the EVM.
    /// @dev For reports: a transaction's gas is dominated by the proof's calldata (1.5 KB), which
    ///      depends on how a caller encodes it and on the L1 fork's calldata pricing; this is the
    ///      verifier's own share.
    function verifyInclusionGas(
        bytes32 root,
        address account,
        uint64 nonce,
        uint256 balance,
        address next,
        uint256 index,
        uint256 count,
        bytes32[48] calldata siblings
    ) external view returns (bool valid, uint256 gasUsed) {
        gasUsed = gasleft();
        valid = StateProofs.verifyInclusion(root, account, nonce, balance, next, index, count, siblings);
        gasUsed -= gasleft();
    }

    /// @notice See StateProofs.verifyExclusion.
    function verifyExclusion(
        bytes32 root,
        address account,
        address lowAccount,
        uint64 lowNonce,
        uint256 lowBalance,
        address lowNext,
        uint256 index,
        uint256 count,
        bytes32[48] calldata siblings
    ) external pure returns (bool) {
        return StateProofs.verifyExclusion(
            root, account, lowAccount, lowNonce, lowBalance, lowNext, index, count, siblings
        );
    }

    /// @notice See StateProofs.updatedRoot.
    function updatedRoot(
        bytes32 root,
        bytes32 oldLeaf,
        bytes32 newLeaf,
        uint256 index,
        uint256 count,
        bytes32[48] calldata siblings
    ) external pure returns (bytes32) {
        return StateProofs.updatedRoot(root, oldLeaf, newLeaf, index, count, siblings);
    }

    /// @notice See StateProofs.appendedRoot.
    function appendedRoot(bytes32 root, bytes32 newLeaf, uint256 count, bytes32[48] calldata siblings)
        external
        pure
        returns (bytes32)
    {
        return StateProofs.appendedRoot(root, newLeaf, count, siblings);
    }
}
