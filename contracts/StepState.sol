// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {L2Transaction} from "./L2Transaction.sol";
import {Snapshots} from "./Snapshot.sol";
import {StateProofs} from "./StateProofs.sol";

/// @title StepState
/// @notice The state side of one derivation step on L1: the step's proof (its layout), reading and
///         writing accounts through it, and applying one L2 transaction or deposit exactly as
///         protocol/_execution.py does.
/// @dev A step writes accounts one at a time in _execution's order (sender, then `to`, then
///      FEE_VAULT), each against the root the previous write left: every write consumes the next
///      account witness, proven against that intermediate root. Python's tree applies the same
///      writes at once (creation order = first-write order), which gives the same slots and so the
///      same root. services/rollups/_witness.py builds the proofs.
library StepState {
    /// @notice Optimism's SequencerFeeVault predeploy: receives the tips.
    address internal constant FEE_VAULT = 0x4200000000000000000000000000000000000011;

    /// @notice How a transaction fared (rules 8 and 12 of services/rollups/_machine.py).
    uint256 internal constant APPLIED = 0;
    /// @notice Refused by a rule (changes nothing but the cursor; a forced transaction is dropped).
    uint256 internal constant REFUSED = 1;
    /// @notice Refused for BLOCK_GAS_LIMIT_REACHED (a forced transaction then waits for the next block).
    uint256 internal constant FULL = 2;

    /// @notice One account, as the tree held it when the step touched it: its own leaf (it exists) or
    ///         its low leaf (it does not: the leaf with account < address < next), and that leaf's path.
    /// @dev `appendSiblings` is used only when the step creates the account: the path of the free slot
    ///      `count` after the low leaf was relinked to the new address.
    struct AccountWitness {
        address account;
        uint64 nonce;
        uint256 balance;
        address next;
        uint256 index;
        uint256 count;
        bytes32[48] siblings;
        bytes32[48] appendSiblings;
    }

    /// @notice The path of the free slot `count` of a tree (an append: message passer, transactions).
    struct Append {
        uint256 count;
        bytes32[48] siblings;
    }

    /// @notice Everything a step reads besides its snapshot and L1's storage: abi.encode(Proof).
    /// @dev Fields a step does not read are ignored (left empty by the prover).
    struct Proof {
        /// @dev The batch leaf at (batchIndex, itemIndex) (IDLE, BATCH), the forced transaction's raw
        ///      bytes (FORCED), or abi.encode(from, to, mint, l1Block) of the deposit (DEPOSITS).
        bytes input;
        /// @dev The batch's leaf count, committed to by its input root.
        uint256 inputCount;
        /// @dev Only when itemIndex >= inputCount: inputRoot == keccak256(inputTreeRoot ‖ inputCount)
        ///      proves the count.
        bytes32 inputTreeRoot;
        /// @dev The leaf's path in the batch's input tree (index itemIndex).
        bytes32[48] inputSiblings;
        /// @dev Every account the step reads or writes, in the order it does.
        AccountWitness[] accounts;
        /// @dev The message-passer append (a withdrawal).
        Append message;
        /// @dev The transactions-root append (whatever the block includes).
        Append txs;
        /// @dev A blob batch's leaf (IDLE, BATCH): abi.encode(BlobInput.Opening), from which the step
        ///      reads the leaf (then `input` and the Merkle fields are ignored). Empty otherwise.
        bytes blob;
    }

    /// @notice The account tree as the step rewrites it: its current root, the witnesses, how many used.
    struct Accounts {
        bytes32 root;
        AccountWitness[] witnesses;
        uint256 used;
    }

    /// @notice What a transaction needs beyond its decoding (kept in memory: the stack is short).
    struct Applying {
        uint256 nonce;
        uint256 balance;
        uint256 tip;
        uint256 gas;
    }

    /// @notice An account witness does not prove its account (or absence) under the current root.
    error InvalidAccountProof(address account);
    /// @notice The step touches more accounts than the proof has witnesses for.
    error MissingAccountWitness(uint256 index);

    /// @notice Reads `who` under the current root with the next witness.
    /// @return w The witness (its leaf is `who`'s own when `exists`, else `who`'s low leaf).
    /// @return exists Whether `who` has an account (else it reads as nonce 0, balance 0).
    function read(Accounts memory a, address who) internal pure returns (AccountWitness memory w, bool exists) {
        uint256 used = a.used;
        if (used >= a.witnesses.length) revert MissingAccountWitness(used);
        w = a.witnesses[used];
        a.used = used + 1;
        exists = w.account == who;
        // Absence: the sorted list skips over `who` (the zero address, always in slot 0, is never absent).
        if (!exists && (w.account >= who || (w.next != address(0) && who >= w.next))) {
            revert InvalidAccountProof(who);
        }
        bytes32 leaf = StateProofs.accountLeafHash(w.account, w.nonce, w.balance, w.next);
        if (!StateProofs.verifyMerkleProofMemory(a.root, leaf, w.index, w.count, w.siblings)) {
            revert InvalidAccountProof(who);
        }
    }

    /// @notice Writes `who` := (nonce, balance), with the witness `read` returned for it.
    /// @dev An existing leaf is rewritten in place (its path, just verified, is the new leaf's too).
    ///      A new account is inserted as _commitment specifies: the low leaf is relinked to `who` (same
    ///      path), then `who` takes the free slot `count`, pointing to the low leaf's old successor.
    function write(Accounts memory a, AccountWitness memory w, bool exists, address who, uint64 nonce, uint256 balance)
        internal
        pure
    {
        if (exists) {
            a.root = StateProofs.merkleRootMemory(
                StateProofs.accountLeafHash(who, nonce, balance, w.next), w.index, w.count, w.siblings
            );
            return;
        }
        bytes32 linked = StateProofs.merkleRootMemory(
            StateProofs.accountLeafHash(w.account, w.nonce, w.balance, who), w.index, w.count, w.siblings
        );
        a.root = StateProofs.appendedRootMemory(
            linked, StateProofs.accountLeafHash(who, nonce, balance, w.next), w.count, w.appendSiblings
        );
    }

    /// @notice State.credit: adds `amount` wei to `who`; 0 wei changes nothing (and creates nothing).
    /// @dev A balance past 2**256 - 1 reverts (Python raises OverflowError there: no answer either).
    function credit(Accounts memory a, address who, uint256 amount) internal pure {
        if (amount == 0) return;
        (AccountWitness memory w, bool exists) = read(a, who);
        if (exists) write(a, w, true, who, w.nonce, w.balance + amount);
        else write(a, w, false, who, 0, amount);
    }

    /// @notice The root after `leaf` takes the next free slot of the tree with sized root `root`;
    ///         `append.count` is that tree's size, proven by the path.
    function appended(bytes32 root, bytes32 leaf, Append memory append) internal pure returns (bytes32) {
        return StateProofs.appendedRootMemory(root, leaf, append.count, append.siblings);
    }

    /// @notice _execution.apply_deposit and the machine's rule 6: mints to `to`, includes the deposit.
    /// @dev Its hash (a transactions-root leaf) is keccak256(0x7E ‖ sourceHash ‖ abi.encode(to, mint)).
    function applyDeposit(Snapshots.Snapshot memory s, Proof memory p, bytes32 sourceHash, address to, uint256 mint)
        internal
        pure
    {
        Accounts memory a = Accounts(s.stateRoot, p.accounts, 0);
        credit(a, to, mint);
        s.stateRoot = a.root;
        s.txRoot = appended(s.txRoot, keccak256(abi.encodePacked(uint8(0x7e), sourceHash, uint256(uint160(to)), mint)), p.txs);
    }

    /// @notice decode_transaction then apply_transaction on the block in progress of `s` (`forced`:
    ///         protocol/_execution.apply_forced, which executes it at base fee min(blockBaseFee, its
    ///         fee cap), so the base fee never refuses it): the state, message and transactions roots
    ///         of `s` move when it applies; the caller moves the cursors and the block's gas.
    /// @return outcome APPLIED, REFUSED or FULL.
    /// @return gas The gas it used when APPLIED (its intrinsic gas: no L2 EVM).
    function applyTransaction(
        Snapshots.Snapshot memory s,
        bytes memory raw,
        Proof memory p,
        uint256 chainId,
        bool forced
    ) internal view returns (uint256 outcome, uint256 gas) {
        (bool ok,, L2Transaction.Tx memory t) = L2Transaction.decode(raw, chainId);
        if (!ok) return (REFUSED, 0);
        // apply_transaction's refusals, in its order.
        uint256 baseFee = s.blockBaseFee;
        if (forced && t.maxFeePerGas < baseFee) baseFee = t.maxFeePerGas; // the waiver
        if (t.maxFeePerGas < baseFee) return (REFUSED, 0); // FEE_CAP_BELOW_BASE_FEE
        if (t.gasLimit > s.gasLimit) return (REFUSED, 0); // GAS_LIMIT_ABOVE_BLOCK: no block holds it
        if (s.blockGasUsed + t.gasLimit > s.gasLimit) return (FULL, 0); // BLOCK_GAS_LIMIT_REACHED
        Accounts memory a = Accounts(s.stateRoot, p.accounts, 0);
        (AccountWitness memory w, bool exists) = read(a, t.sender);
        Applying memory x;
        if (exists) (x.nonce, x.balance) = (w.nonce, w.balance);
        if (t.nonce != x.nonce) return (REFUSED, 0);
        if (!_affords(x.balance, t.gasLimit, t.maxFeePerGas, t.value)) return (REFUSED, 0);

        x.gas = t.intrinsicGas;
        x.tip = t.maxPriorityFeePerGas;
        if (t.maxFeePerGas - baseFee < x.tip) x.tip = t.maxFeePerGas - baseFee;
        // No overflow or underflow: gas <= gasLimit and baseFee + tip <= maxFeePerGas, which the
        // balance covers. The nonce is below 2**64 - 1 (decode refuses a larger one), so +1 fits.
        write(a, w, exists, t.sender, uint64(x.nonce + 1), x.balance - x.gas * (baseFee + x.tip) - t.value);
        credit(a, t.to, t.value);
        credit(a, FEE_VAULT, x.tip * x.gas);
        s.stateRoot = a.root;
        if (t.to == L2Transaction.MESSAGE_PASSER) {
            // The message's nonce is the number of messages recorded so far: the tree's size.
            bytes32 message = L2Transaction.withdrawalHash(
                p.message.count, t.sender, t.withdrawalTarget, t.value, t.withdrawalGasLimit, t.withdrawalData
            );
            s.messageRoot = appended(s.messageRoot, message, p.message);
        }
        s.txRoot = appended(s.txRoot, t.txHash, p.txs);
        return (APPLIED, x.gas);
    }

    /// @notice balance >= gasLimit * maxFeePerGas + value, without overflowing (Python's integers are
    ///         unbounded: a cost past 2**256 - 1 is more than any balance).
    function _affords(uint256 balance, uint256 gasLimit, uint256 feeCap, uint256 value) private pure returns (bool) {
        if (feeCap != 0 && gasLimit > type(uint256).max / feeCap) return false;
        uint256 cost = gasLimit * feeCap;
        if (cost > type(uint256).max - value) return false;
        return balance >= cost + value;
    }
}
