// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {OutputRegistry} from "./OutputRegistry.sol";
import {StateProofs} from "./StateProofs.sol";

/// @title WithdrawalPortal
/// @notice The L1 half of withdrawals (L2 -> L1 messages): prove a message against an L2 output,
///         wait out the proof maturity delay, then finalize: the portal pays the message's value
///         to its target and calls it with its data. A failed target call strands nothing: the
///         withdrawal is FAILED, its value stays here earmarked, and anyone may retry the call or
///         its sender take the value back (refund). DepositPortal inherits this: the ETH locked
///         by deposits is what withdrawals pay out.
/// @dev Rules (Python cites them by number; OptimismPortal2's, except W11-W14):
///
///      W1  The withdrawal hash is keccak256(abi.encode(nonce, sender, target, value, gasLimit,
///          data)) (protocol/_withdrawal.py), the leaf of the L2 message-passer tree at slot nonce.
///      W2  prove: output `outputIndex` exists in the registry (else its UnknownOutput), its root is
///          not zero and its status is not INVALIDATED (PROPOSED, CHALLENGED and FINALIZED are
///          allowed: finalize waits for FINALIZED).
///      W3  prove: keccak256(abi.encode(outputRootProof)) is that output's root (version 0,
///          stateRoot, messagePasserRoot, blockHash: protocol/_output.py).
///      W4  prove: the inclusion proof is the 4-ary depth-16 sized-root Merkle proof of
///          protocol/_commitment.py (StateProofs.verifyMerkleProof, index < count <= 4**16) from
///          the hash to messagePasserRoot, at index == nonce.
///      W5  prove: the target is not this portal (it would act with the portal's authority).
///      W6  prove: the withdrawal is not finalized (state NONE).
///      W7  Proofs are per (hash, prover): a proof against a lying output, by anyone, neither
///          blocks nor resets another prover's proof. A prover may prove again (against another
///          output, e.g. after its first was invalidated); its own timer restarts.
///      W8  finalize(w, prover): `prover` proved w; block.timestamp >= provenAt +
///          proofMaturityDelay (exactly then passes); the proven output is FINALIZED (statuses are
///          terminal: a finalized output can never be invalidated) and its root is still the
///          proven one (its high 128 bits, kept with the proof); state NONE.
///      W9  No finalize, retry or refund inside a withdrawal's target call (a transient lock that
///          is also l2Sender): re-entry can neither finalize the same withdrawal twice nor another.
///      W10 The target call gets at least gasLimit gas: the transaction reverts InsufficientGas
///          unless gasleft() is enough for that (Optimism's SafeCall.hasMinGas: 63/64 rule plus a
///          40,000 gas CALL overhead), so a finalizer cannot make the call fail by starving it.
///          A gasLimit of 2**64 or more (beyond any block) is never called (W14 refunds it).
///      W11 The state is written before the call (checks, effects, interaction). The call's
///          outcome decides it: SUCCEEDED, or FAILED with the value kept here, earmarked.
///      W12 retry(w): state FAILED; anyone; same gas rule and lock; success -> SUCCEEDED, failure
///          leaves it FAILED. Each finalize and retry emits WithdrawalFinalized(hash, success).
///      W13 refund(w): state FAILED and msg.sender == w.sender (L2 has only EOAs: the same key
///          controls the address here); pays the value to the sender, no data, REFUNDED.
///      W14 refundUncallable(w, prover): a withdrawal W10 can never call in this block (gasLimit
///          >= 2**64, or gasLimit * 64 / 63 + CALL_OVERHEAD > block.gaslimit) would never reach
///          FAILED, so W13 could not free its value: L2 records any uint256 gas limit. Its
///          sender (as W13) takes the value back once finalize's own checks pass (W8 with that
///          prover's proof, state NONE, W9), paid as W13: REFUNDED. A withdrawal the inequality
///          lets through with the whole block's gas is refused (WithdrawalCallable: finalize
///          it). The bound is the block's gas, not what a transaction has left at the call
///          (less its intrinsic gas and finalize's own work), so a gas limit a few ten thousand
///          below it passes neither: such a withdrawal waits for a larger block gas limit.
abstract contract WithdrawalPortal {
    /// @notice An L2 -> L1 message, as the L2 message passer recorded it.
    struct Withdrawal {
        uint256 nonce;
        address sender;
        address target;
        uint256 value;
        uint256 gasLimit;
        bytes data;
    }

    /// @notice The preimage of an output root: keccak256(abi.encode(these four)).
    struct OutputRootProof {
        bytes32 version;
        bytes32 stateRoot;
        bytes32 messagePasserRoot;
        bytes32 blockHash;
    }

    /// @notice The path of the withdrawal's slot in the message-passer tree (StateProofs' proof).
    struct MessageProof {
        uint256 index;
        uint256 count;
        bytes32[48] siblings;
    }

    /// @dev One slot per proof, as OptimismPortal2's: the output's index, the time, and the
    ///      root's high 128 bits, enough to see the root change (W8). An output's root never
    ///      changes in the registry (outputs are appended; only their status moves), so the full
    ///      root is the registry's, which provenWithdrawal returns. A second slot for the full
    ///      root would cost each prove ~22,000 gas and each finalize 2,100 more.
    struct Proof {
        bytes16 rootPrefix;
        uint64 outputIndex;
        uint64 provenAt;
    }

    enum State {
        NONE,
        SUCCEEDED,
        FAILED,
        REFUNDED
    }

    /// @notice Upper bound on the maturity delay: catches a delay given in milliseconds.
    uint256 public constant MAX_DURATION = 365 days;
    /// @notice Gas kept back for the CALL opcode's own dynamic costs (cold account, value
    ///         transfer, new account) and the few instructions between the check and the call.
    uint256 public constant CALL_OVERHEAD = 40_000;
    uint256 private constant LOCKED = 1 << 160;

    address public immutable outputRegistry;
    /// @notice Seconds between a proof and the earliest finalization that uses it.
    uint256 public immutable proofMaturityDelay;

    mapping(bytes32 withdrawalHash => mapping(address prover => Proof)) private _proofs;
    mapping(bytes32 withdrawalHash => State) private _states;
    /// @dev LOCKED | sender during a target call, else 0 (W9; l2Sender()).
    uint256 private transient _call;

    event WithdrawalProven(bytes32 indexed withdrawalHash, address indexed prover, uint256 indexed outputIndex);
    /// @notice A finalization or a retry called the target; `success` is the call's outcome.
    event WithdrawalFinalized(bytes32 indexed withdrawalHash, bool success);
    event WithdrawalRefunded(bytes32 indexed withdrawalHash, address indexed to, uint256 value);

    error ZeroOutputRegistry();
    /// @notice The maturity delay must be in (0, MAX_DURATION].
    error ProofMaturityDelayOutOfRange(uint256 delay, uint256 max);
    /// @notice W5.
    error UnsafeTarget(address target);
    /// @notice W2.
    error ZeroOutputRoot(uint256 outputIndex);
    /// @notice W2.
    error InvalidatedOutput(uint256 outputIndex);
    /// @notice W3.
    error InvalidOutputRootProof(uint256 outputIndex);
    /// @notice W4: the proof's slot is not the withdrawal's nonce.
    error ProofIndexNotNonce(uint256 index, uint256 nonce);
    /// @notice W4.
    error InvalidInclusionProof();
    /// @notice W6, W8, W14: the withdrawal is finalized already (SUCCEEDED, FAILED or REFUNDED).
    error WithdrawalNotPending(bytes32 withdrawalHash, uint8 state);
    /// @notice W8.
    error WithdrawalNotProven(bytes32 withdrawalHash, address prover);
    /// @notice W8.
    error ProofNotMature(bytes32 withdrawalHash, uint256 maturesAt);
    /// @notice W8: statuses are OutputRegistry.Status values.
    error OutputNotFinalized(uint256 outputIndex, uint8 status);
    /// @notice W8.
    error OutputRootChanged(uint256 outputIndex);
    /// @notice W9.
    error InsideWithdrawalCall();
    /// @notice W10: the transaction's gas cannot give the target call `gasLimit`.
    error InsufficientGas(uint256 gasLimit);
    /// @notice W12, W13.
    error WithdrawalNotFailed(bytes32 withdrawalHash, uint8 state);
    /// @notice W13, W14.
    error NotWithdrawalSender(address caller, address sender);
    /// @notice W13, W14: the sender did not accept the value (nothing changed).
    error RefundFailed(bytes32 withdrawalHash);
    /// @notice W14: a call with `gasLimit` fits a block of `blockGasLimit` gas: finalize it instead.
    error WithdrawalCallable(uint256 gasLimit, uint256 blockGasLimit);
    /// @notice l2Sender() outside a withdrawal's target call.
    error NotInWithdrawal();

    constructor(address outputRegistry_, uint256 proofMaturityDelay_) {
        // Deployed before the registry (at its predicted address): its code cannot be checked here.
        if (outputRegistry_ == address(0)) revert ZeroOutputRegistry();
        if (proofMaturityDelay_ == 0 || proofMaturityDelay_ > MAX_DURATION) {
            revert ProofMaturityDelayOutOfRange(proofMaturityDelay_, MAX_DURATION);
        }
        outputRegistry = outputRegistry_;
        proofMaturityDelay = proofMaturityDelay_;
    }

    modifier unlocked() {
        if (_call != 0) revert InsideWithdrawalCall();
        _;
    }

    // --- prove, finalize, retry, refund ----------------------------------------------------------

    /// @notice Prove that withdrawal `w` is in output `outputIndex`'s message-passer root (W2-W7).
    function proveWithdrawal(
        Withdrawal calldata w,
        uint256 outputIndex,
        OutputRootProof calldata o,
        MessageProof calldata p
    ) external {
        if (w.target == address(this)) revert UnsafeTarget(w.target);
        bytes32 h = _hash(w);
        State state = _states[h];
        if (state != State.NONE) revert WithdrawalNotPending(h, uint8(state));
        OutputRegistry.Output memory out = OutputRegistry(outputRegistry).output(outputIndex);
        if (out.outputRoot == bytes32(0)) revert ZeroOutputRoot(outputIndex);
        if (out.status == OutputRegistry.Status.INVALIDATED) revert InvalidatedOutput(outputIndex);
        if (keccak256(abi.encode(o)) != out.outputRoot) revert InvalidOutputRootProof(outputIndex);
        if (p.index != w.nonce) revert ProofIndexNotNonce(p.index, w.nonce);
        if (!StateProofs.verifyMerkleProof(o.messagePasserRoot, h, p.index, p.count, p.siblings)) {
            revert InvalidInclusionProof();
        }
        _proofs[h][msg.sender] = Proof(bytes16(out.outputRoot), uint64(outputIndex), uint64(block.timestamp));
        emit WithdrawalProven(h, msg.sender, outputIndex);
    }

    /// @notice Pay `w` out using `prover`'s proof: value and data to the target (W8-W11).
    function finalizeWithdrawal(Withdrawal calldata w, address prover) external unlocked {
        bytes32 h = _finalizable(w, prover);
        _states[h] = State.SUCCEEDED;
        _callTarget(h, w);
    }

    /// @notice Call the target of a FAILED withdrawal again (W12). Anyone.
    function retryWithdrawal(Withdrawal calldata w) external unlocked {
        bytes32 h = _hash(w);
        State state = _states[h];
        if (state != State.FAILED) revert WithdrawalNotFailed(h, uint8(state));
        _states[h] = State.SUCCEEDED;
        _callTarget(h, w);
    }

    /// @notice Take the value of a FAILED withdrawal back to its sender (W13). The sender only.
    function refundWithdrawal(Withdrawal calldata w) external unlocked {
        bytes32 h = _hash(w);
        State state = _states[h];
        if (state != State.FAILED) revert WithdrawalNotFailed(h, uint8(state));
        if (msg.sender != w.sender) revert NotWithdrawalSender(msg.sender, w.sender);
        _refund(h, w);
    }

    /// @notice Take the value of a withdrawal no block can call back to its sender (W14), with
    ///         `prover`'s matured proof against a finalized output. The sender only.
    function refundUncallableWithdrawal(Withdrawal calldata w, address prover) external unlocked {
        if (msg.sender != w.sender) revert NotWithdrawalSender(msg.sender, w.sender);
        bytes32 h = _finalizable(w, prover);
        uint256 gasLimit = w.gasLimit;
        // W10's inequality with the whole block's gas for gasleft(); 2**64 and more first, as
        // there (the product would overflow).
        if (gasLimit < 1 << 64 && block.gaslimit * 63 >= gasLimit * 64 + CALL_OVERHEAD * 63) {
            revert WithdrawalCallable(gasLimit, block.gaslimit);
        }
        _refund(h, w);
    }

    // --- views -----------------------------------------------------------------------------------

    /// @notice W1.
    function withdrawalHash(Withdrawal calldata w) external pure returns (bytes32) {
        return _hash(w);
    }

    /// @notice `prover`'s proof of withdrawal `h`: the output, its root, the time; provenAt 0: none.
    function provenWithdrawal(bytes32 h, address prover)
        external
        view
        returns (uint256 outputIndex, bytes32 outputRoot, uint256 provenAt)
    {
        Proof memory proof = _proofs[h][prover];
        if (proof.provenAt == 0) return (0, bytes32(0), 0);
        bytes32 root = OutputRegistry(outputRegistry).output(proof.outputIndex).outputRoot;
        return (proof.outputIndex, root, proof.provenAt);
    }

    /// @notice 0 NONE, 1 SUCCEEDED, 2 FAILED, 3 REFUNDED.
    function withdrawalState(bytes32 h) external view returns (uint8) {
        return uint8(_states[h]);
    }

    /// @notice The L2 sender of the withdrawal whose target call is under way: what a target
    ///         checks to know who sent the message. Reverts outside such a call.
    function l2Sender() external view returns (address) {
        uint256 current = _call;
        if (current == 0) revert NotInWithdrawal();
        return address(uint160(current));
    }

    // --- internals -------------------------------------------------------------------------------

    /// @dev W1. abi.encode(w) is a 32-byte offset (w has a dynamic member) followed by exactly
    ///      abi.encode(nonce, sender, target, value, gasLimit, data): hashing past the offset
    ///      gives W1's hash for ~130 gas less than encoding the six fields one by one (which pays
    ///      for the new refundUncallableWithdrawal's place in the selector dispatch).
    function _hash(Withdrawal calldata w) private pure returns (bytes32) {
        bytes memory encoded = abi.encode(w);
        bytes32 h;
        assembly ("memory-safe") { h := keccak256(add(encoded, 64), sub(mload(encoded), 32)) }
        return h;
    }

    /// @dev W8 (finalize and W14 alike): `prover`'s proof of w, matured, against an output that is
    ///      FINALIZED with the proven root; w still pending. Returns w's hash.
    function _finalizable(Withdrawal calldata w, address prover) private view returns (bytes32 h) {
        h = _hash(w);
        Proof memory proof = _proofs[h][prover];
        if (proof.provenAt == 0) revert WithdrawalNotProven(h, prover);
        uint256 maturesAt;
        unchecked {
            maturesAt = uint256(proof.provenAt) + proofMaturityDelay; // < 2**64 + MAX_DURATION
        }
        if (block.timestamp < maturesAt) revert ProofNotMature(h, maturesAt);
        OutputRegistry.Output memory out = OutputRegistry(outputRegistry).output(proof.outputIndex);
        if (out.status != OutputRegistry.Status.FINALIZED) revert OutputNotFinalized(proof.outputIndex, uint8(out.status));
        if (bytes16(out.outputRoot) != proof.rootPrefix) revert OutputRootChanged(proof.outputIndex);
        State state = _states[h];
        if (state != State.NONE) revert WithdrawalNotPending(h, uint8(state));
    }

    /// @dev W13, W14: REFUNDED before the value leaves (a sender that re-enters finds it so).
    function _refund(bytes32 h, Withdrawal calldata w) private {
        _states[h] = State.REFUNDED;
        emit WithdrawalRefunded(h, w.sender, w.value);
        (bool ok,) = w.sender.call{value: w.value}("");
        if (!ok) revert RefundFailed(h);
    }

    /// @dev W9-W11: the state is SUCCEEDED already (so the same withdrawal cannot re-enter); the
    ///      lock is set for the call, the outcome recorded after it.
    function _callTarget(bytes32 h, Withdrawal calldata w) private {
        bytes memory data = w.data;
        address target = w.target;
        uint256 value = w.value;
        uint256 minGas = w.gasLimit;
        _call = LOCKED | uint160(w.sender);
        bool success;
        bool enough;
        assembly ("memory-safe") {
            // SafeCall.hasMinGas's inequality, directly before the call: EIP-150 passes at most
            // 63/64 of what is left, so gasleft * 63 / 64 must cover minGas after the overhead.
            // A gasLimit of 2**64 or more is more than any block holds (and would overflow here).
            enough := and(lt(minGas, shl(64, 1)),
                iszero(lt(mul(gas(), 63), add(mul(minGas, 64), mul(CALL_OVERHEAD, 63)))))
            if enough { success := call(gas(), target, value, add(data, 32), mload(data), 0, 0) }
        }
        if (!enough) revert InsufficientGas(minGas);
        _call = 0;
        if (!success) _states[h] = State.FAILED;
        emit WithdrawalFinalized(h, success);
    }
}
