// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

interface IL2Sender {
    function l2Sender() external view returns (address);
}

/// @title WithdrawalTargetHarness
/// @notice A withdrawal's target for the portal's tests (never deployed by the node): records
///         what each call brought (value, data, the portal's l2Sender()), and can be told to
///         revert, to burn gas, or to call the portal back (re-entry) with given calldata.
contract WithdrawalTargetHarness {
    address public immutable portal;

    bool public reverts;
    /// @notice Gas to burn in each call (the call fails if it was given less).
    uint256 public burn;
    /// @notice Calldata for a call back into the portal during each call; empty: none.
    bytes public reentry;

    uint256 public calls;
    uint256 public received;
    bytes public lastData;
    address public lastL2Sender;
    /// @notice The outcome of the last re-entry: success and the portal's return or revert data.
    bool public reentryOk;
    bytes public reentryResult;

    error Refused();

    constructor(address portal_) {
        portal = portal_;
    }

    function configure(bool reverts_, uint256 burn_, bytes calldata reentry_) external {
        reverts = reverts_;
        burn = burn_;
        reentry = reentry_;
    }

    fallback() external payable {
        _called();
    }

    receive() external payable {
        _called();
    }

    function _called() private {
        if (reverts) revert Refused();
        uint256 stop = gasleft() > burn ? gasleft() - burn : 0;
        while (gasleft() > stop) {}
        calls += 1;
        received += msg.value;
        lastData = msg.data;
        lastL2Sender = IL2Sender(portal).l2Sender();
        if (reentry.length != 0) {
            (reentryOk, reentryResult) = portal.call(reentry);
        }
    }
}
