// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title PullPayments
/// @notice Every payout of the registry and of a dispute game (bonds returned, won or refunded)
///         is a credit its owner withdraws, never a transfer made during resolution: a recipient
///         that reverts or burns gas could otherwise block a game from resolving.
abstract contract PullPayments {
    mapping(address => uint256) private _credit;

    event Withdrawn(address indexed account, uint256 amount);

    error NothingToWithdraw(address account);
    error WithdrawFailed(address account, uint256 amount);

    /// @notice Pay out the caller's credit (checks, effects, then the call).
    function withdraw() external {
        uint256 amount = _credit[msg.sender];
        if (amount == 0) revert NothingToWithdraw(msg.sender);
        _credit[msg.sender] = 0;
        emit Withdrawn(msg.sender, amount);
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert WithdrawFailed(msg.sender, amount);
    }

    /// @notice What `account` may withdraw.
    function credit(address account) external view returns (uint256) {
        return _credit[account];
    }

    function _pay(address account, uint256 amount) internal {
        _credit[account] += amount;
    }
}
