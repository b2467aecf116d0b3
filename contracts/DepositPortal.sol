// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {WithdrawalPortal} from "./WithdrawalPortal.sol";

/// @title DepositPortal
/// @notice Where ETH enters the L2: a deposit locks ETH here and the sequencer mints the same
///         amount to `to` on L2, at the start of the first L2 block whose L1 origin covers the
///         deposit's L1 block (before forced and ordinary transactions), exactly once.
/// @dev Each deposit is identified by its `sourceHash`, stored here, so L2 can deduplicate and a
///      fraud proof can check that a deposit was minted as recorded. The locked ETH leaves only
///      through withdrawals proven against L2 outputs (WithdrawalPortal, rules W1-W13).
contract DepositPortal is WithdrawalPortal {
    /// @notice Emitted for each deposit; `sourceHash` = keccak256(abi.encode(index, from, to,
    ///         mint, l1Block)) names it on L2.
    event DepositQueued(
        uint256 indexed index, address indexed from, address indexed to, uint256 mint, uint256 l1Block,
        bytes32 sourceHash
    );

    error ZeroRecipient();
    error ZeroValue();
    error IndexOutOfRange(uint256 index, uint256 count);

    bytes32[] private _sourceHashes;

    /// @param outputRegistry_ The OutputRegistry whose outputs withdrawals are proven against
    ///        (deployed after this portal, at its predicted address).
    /// @param proofMaturityDelay_ Seconds from a proof to its finalization, e.g. 7 days.
    constructor(address outputRegistry_, uint256 proofMaturityDelay_)
        WithdrawalPortal(outputRegistry_, proofMaturityDelay_)
    {}

    /// @notice Lock `msg.value` wei here, to be minted to `to` on L2.
    /// @return index The deposit's position in the queue.
    function depositTransaction(address to) external payable returns (uint256 index) {
        if (to == address(0)) revert ZeroRecipient();
        if (msg.value == 0) revert ZeroValue();
        index = _sourceHashes.length;
        bytes32 source = keccak256(abi.encode(index, msg.sender, to, msg.value, block.number));
        _sourceHashes.push(source);
        emit DepositQueued(index, msg.sender, to, msg.value, block.number, source);
    }

    /// @notice How many deposits were made.
    function depositCount() external view returns (uint256) {
        return _sourceHashes.length;
    }

    /// @notice The source hash of deposit `index`.
    function sourceHash(uint256 index) external view returns (bytes32) {
        if (index >= _sourceHashes.length) revert IndexOutOfRange(index, _sourceHashes.length);
        return _sourceHashes[index];
    }
}
