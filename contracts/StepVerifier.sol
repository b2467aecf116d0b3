// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {BlobInput} from "./BlobInput.sol";
import {IStepVerifier} from "./IStepVerifier.sol";
import {Snapshots} from "./Snapshot.sol";
import {StateProofs} from "./StateProofs.sol";
import {StepState} from "./StepState.sol";

/// @notice What the step reads of BatchInbox.
interface IStepInbox {
    function batchCount() external view returns (uint256);
    function batch(uint256 index) external view returns (bytes32 inputRoot, uint256 l1Block);
    function batchKind(uint256 index) external view returns (uint8);
    function forcedCount() external view returns (uint256);
    function forcedTransaction(uint256 index) external view returns (bytes32 txHash, uint256 l1Block);
}

/// @notice What the step reads of DepositPortal.
interface IStepPortal {
    function depositCount() external view returns (uint256);
    function sourceHash(uint256 index) external view returns (bytes32);
}

/// @title StepVerifier
/// @notice One step of the derivation machine, re-executed on L1: where a fraud-proof dispute ends
///         once bisection has narrowed the disagreement down to a single step.
/// @dev The specification is services/rollups/_machine.py (rules 1, F, 2-12, numbered as there); the
///      state transition is protocol/_execution.py (see StepState). What the step reads
///      from L1 (batch input roots and L1 blocks, forced-transaction hashes, deposit source hashes)
///      comes from the inbox's and the portal's storage, never from the proof; the proof only opens
///      it (a leaf and its path, a raw transaction, a deposit preimage) and carries the account and
///      append paths (services/rollups/_witness.py builds it). Anything in it that does not match
///      reverts.
///
///      The snapshot must be exact (its roots those of the state after the previous step: a trace
///      made with Machine(trace=True)), which is what the dispute bisects over.
///
///      Batches are bounded by `batchLimit` (see IStepVerifier): a batch exists for the step iff its
///      index is below min(batchLimit, inbox.batchCount()), in rules F, 2 and 11 alike. Deposits and
///      forced transactions need no bound: a block only takes those whose L1 block is at most its
///      L1 origin, which is at most the L1 block of the (bounded) batch it came from, or (rule F)
///      at most `l1Horizon`, so they were on L1 within the output's horizon; an entry appended later
///      is skipped either way.
///
///      A blob batch (inbox kind BLOB_BATCH) is opened by BlobInput (KZG point evaluations against
///      its versioned hashes) instead of a Merkle path; its leaf then fills `input`, and everything
///      after is the same rules. Rule 5c has one more case for it: a BLOCK leaf whose origin is not
///      one the inbox checked for the batch (protocol/_blob.py says why).
contract StepVerifier is IStepVerifier {
    /// @notice Sized root of an empty transactions tree: keccak256(ZERO[16] ‖ uint256(0)).
    bytes32 internal constant EMPTY_TX_ROOT = 0x0941a91968674e06d5439d8b18b048b76c72f89a999f07924a71a09c45f4168b;
    /// @notice BatchInbox.BLOB_BATCH: a batch whose leaves are in blobs.
    uint8 internal constant BLOB_BATCH = 1;
    /// @notice A BLOCK leaf: 0x01 ‖ abi.encode(number, timestamp, l1OriginNumber, l1OriginHash, txCount).
    uint256 internal constant BLOCK_LEAF_SIZE = 161;
    /// @notice Rule 5c: a block's timestamp must be below this (the snapshot range check's bound).
    uint256 internal constant TIMESTAMP_BOUND = 2 ** 64;
    /// @notice protocol/_basefee.MAX_BASE_FEE: nextBaseFee never rises above it.
    uint256 internal constant MAX_BASE_FEE = 2 ** 128 - 1;

    IStepInbox public immutable inbox;
    IStepPortal public immutable portal;
    /// @notice The L2 chain id (transactions signed for another chain are refused).
    uint256 public immutable chainId;
    /// @notice A block must be posted within this many L1 blocks of its L1 origin.
    uint256 public immutable sequencerWindow;

    /// @notice The snapshot's phase is none of IDLE, DEPOSITS, FORCED, BATCH.
    error InvalidPhase(uint256 phase);
    /// @notice The batch leaf (or leaf count) does not prove against the batch's input root.
    error InvalidInputProof();
    /// @notice The deposit preimage does not hash to the portal's source hash.
    error InvalidDeposit();
    /// @notice The raw forced transaction does not hash to the queued one.
    error InvalidForcedTransaction();

    /// @notice A BLOCK leaf's fields.
    struct BlockLeaf {
        uint256 number;
        uint256 timestamp;
        uint256 originNumber;
        bytes32 originHash;
        uint256 txCount;
    }

    constructor(address inbox_, address portal_, uint256 chainId_, uint256 sequencerWindow_) {
        inbox = IStepInbox(inbox_);
        portal = IStepPortal(portal_);
        chainId = chainId_;
        sequencerWindow = sequencerWindow_;
    }

    /// @inheritdoc IStepVerifier
    /// @dev `proof` is abi.encode(StepState.Proof); it may be empty for a step that reads nothing
    ///      (rules 1, F, 2, a seal, an exhausted queue, a batch past the bound).
    function step(
        Snapshots.Snapshot calldata pre,
        uint256 target,
        uint256 batchLimit,
        uint256 l1Horizon,
        bytes calldata proof
    ) external view returns (bytes32 post) {
        Snapshots.Snapshot memory s = pre;
        uint256 phase = s.phase;
        if (phase == Snapshots.IDLE) _idle(s, target, batchLimit, l1Horizon, proof);
        else if (phase == Snapshots.DEPOSITS) _deposits(s, proof);
        else if (phase == Snapshots.FORCED) _forced(s, proof);
        else if (phase == Snapshots.BATCH) _batch(s, batchLimit, proof);
        else revert InvalidPhase(phase);
        return Snapshots.commitment(s);
    }

    /// @inheritdoc IStepVerifier
    function batchCount() external view returns (uint256) {
        return inbox.batchCount();
    }

    // --- the rules (numbers as in services/rollups/_machine.py) ---------------------------------

    function _idle(
        Snapshots.Snapshot memory s,
        uint256 target,
        uint256 batchLimit,
        uint256 l1Horizon,
        bytes calldata proof
    ) private view {
        if (s.number >= target) return; // 1
        bool posted = _batchExists(s.batchIndex, batchLimit);
        bytes32 inputRoot;
        uint256 l1Block;
        if (posted) (inputRoot, l1Block) = inbox.batch(s.batchIndex);
        // F: E >= o + W + 1, with E the batch's L1 block, or l1Horizon + 1 when there is none
        // (written so that neither side can overflow: o < 2**64 in any reachable snapshot).
        uint256 windowEnd = s.l1OriginNumber + sequencerWindow;
        if (posted ? l1Block > windowEnd : l1Horizon >= windowEnd) {
            _start(s, s.timestamp, s.l1OriginNumber + 1, bytes32(0), 0);
            return;
        }
        if (posted) _readBatch(s, inputRoot, l1Block, proof); // else 2
    }

    /// @dev Rules 3-5: the leaf at (batchIndex, itemIndex) of a batch that exists.
    function _readBatch(Snapshots.Snapshot memory s, bytes32 inputRoot, uint256 l1Block, bytes calldata proof)
        private
        view
    {
        StepState.Proof memory p = _proof(proof);
        (bool exists, uint256 count, BlobInput.Origin[] memory origins, bool blob) =
            _open(s.batchIndex, inputRoot, s.itemIndex, p);
        if (!exists) {
            (s.batchIndex, s.itemIndex) = (s.batchIndex + 1, 0); // 3
            return;
        }
        if (!_isBlockLeaf(p.input)) {
            s.itemIndex += 1; // 4
            return;
        }
        BlockLeaf memory b = _blockLeaf(p.input);
        if (b.number <= s.number) {
            s.itemIndex = _past(s.itemIndex, b.txCount, count); // 5a
            return;
        }
        if (b.number != s.number + 1) {
            (s.batchIndex, s.itemIndex) = (s.batchIndex + 1, 0); // 5b
            return;
        }
        // 5c. Evaluated left to right: originNumber + window is reached only when originNumber <=
        // l1Block, so it cannot overflow.
        if (
            b.timestamp < s.timestamp || b.timestamp >= TIMESTAMP_BOUND || b.originNumber < s.l1OriginNumber
                || b.originNumber > l1Block || b.originNumber + sequencerWindow < l1Block
                || (blob && !BlobInput.attests(origins, b.originNumber, b.originHash))
        ) {
            s.itemIndex = _past(s.itemIndex, b.txCount, count);
            return;
        }
        _start(s, b.timestamp, b.originNumber, b.originHash, b.txCount); // 5d
        s.itemIndex += 1;
    }

    /// @dev A block in progress (rules F and 5d); the cursors are the caller's.
    function _start(Snapshots.Snapshot memory s, uint256 timestamp, uint256 origin, bytes32 originHash, uint256 txLeft)
        private
        pure
    {
        s.phase = Snapshots.DEPOSITS;
        s.blockTimestamp = timestamp;
        s.blockOriginNumber = origin;
        s.blockOriginHash = originHash;
        s.blockBaseFee = nextBaseFee(s.baseFee, s.gasUsed, s.gasLimit);
        s.blockGasUsed = 0;
        s.txRoot = EMPTY_TX_ROOT;
        s.txLeft = txLeft;
    }

    function _deposits(Snapshots.Snapshot memory s, bytes calldata proof) private view {
        uint256 index = s.depositIndex;
        if (index >= portal.depositCount()) {
            s.phase = Snapshots.FORCED; // 7
            return;
        }
        StepState.Proof memory p = _proof(proof);
        (address from, address to, uint256 mint, uint256 l1Block) =
            abi.decode(p.input, (address, address, uint256, uint256));
        bytes32 sourceHash = keccak256(abi.encode(index, from, to, mint, l1Block));
        if (sourceHash != portal.sourceHash(index)) revert InvalidDeposit();
        if (l1Block > s.blockOriginNumber) {
            s.phase = Snapshots.FORCED; // 7
            return;
        }
        StepState.applyDeposit(s, p, sourceHash, to, mint); // 6
        s.depositIndex = index + 1;
    }

    function _forced(Snapshots.Snapshot memory s, bytes calldata proof) private view {
        uint256 index = s.forcedIndex;
        if (index >= inbox.forcedCount()) {
            s.phase = Snapshots.BATCH; // 9
            return;
        }
        (bytes32 txHash, uint256 l1Block) = inbox.forcedTransaction(index);
        if (l1Block > s.blockOriginNumber) {
            s.phase = Snapshots.BATCH; // 9
            return;
        }
        StepState.Proof memory p = _proof(proof);
        if (keccak256(p.input) != txHash) revert InvalidForcedTransaction();
        (uint256 outcome, uint256 gas) = StepState.applyTransaction(s, p.input, p, chainId, true); // 8
        if (outcome == StepState.FULL) {
            s.phase = Snapshots.BATCH; // it leads the next block
            return;
        }
        s.forcedIndex = index + 1; // applied, or dropped
        s.blockGasUsed += gas; // 0 unless applied
    }

    function _batch(Snapshots.Snapshot memory s, uint256 batchLimit, bytes calldata proof) private view {
        if (s.txLeft == 0) {
            _seal(s); // 10
            return;
        }
        // 11: the batch being read always exists in a reachable snapshot (START read it, under the
        // same bound); cut if not.
        if (!_batchExists(s.batchIndex, batchLimit)) {
            s.txLeft = 0;
            return;
        }
        (bytes32 inputRoot,) = inbox.batch(s.batchIndex);
        StepState.Proof memory p = _proof(proof);
        (bool exists,,,) = _open(s.batchIndex, inputRoot, s.itemIndex, p);
        if (!exists || !_isTxLeaf(p.input)) {
            s.txLeft = 0; // 11
            return;
        }
        (uint256 outcome, uint256 gas) = StepState.applyTransaction(s, _txOfLeaf(p.input), p, chainId, false); // 12
        s.itemIndex += 1;
        s.txLeft -= 1;
        if (outcome == StepState.APPLIED) s.blockGasUsed += gas;
    }

    /// @dev 10: the block seals; the header's fields become the snapshot's, its hash the block hash.
    function _seal(Snapshots.Snapshot memory s) private pure {
        // The header (protocol/_block.py): 11 words, in this order.
        bytes32[11] memory header;
        header[0] = bytes32(s.number + 1);
        header[1] = s.blockHash;
        header[2] = bytes32(s.blockTimestamp);
        header[3] = s.stateRoot;
        header[4] = s.txRoot;
        header[5] = s.messageRoot;
        header[6] = bytes32(s.blockBaseFee);
        header[7] = bytes32(s.blockGasUsed);
        header[8] = bytes32(s.gasLimit);
        header[9] = bytes32(s.blockOriginNumber);
        header[10] = s.blockOriginHash;
        s.blockHash = keccak256(abi.encodePacked(header));
        s.number += 1;
        s.timestamp = s.blockTimestamp;
        s.baseFee = s.blockBaseFee;
        s.gasUsed = s.blockGasUsed;
        s.l1OriginNumber = s.blockOriginNumber;
        s.phase = Snapshots.IDLE;
        s.blockTimestamp = 0;
        s.blockOriginNumber = 0;
        s.blockOriginHash = bytes32(0);
        s.blockBaseFee = 0;
        s.blockGasUsed = 0;
        s.txRoot = bytes32(0);
        s.txLeft = 0;
    }

    /// @notice protocol/_basefee.next_base_fee (EIP-1559, integer-only, at most MAX_BASE_FEE).
    /// @dev A parent gas limit below 2 divides by zero and reverts, as Python raises. In range
    ///      (baseFee <= MAX_BASE_FEE, gas figures < 2**64) nothing overflows.
    function nextBaseFee(uint256 baseFee, uint256 gasUsed, uint256 gasLimit) public pure returns (uint256) {
        uint256 target = gasLimit / 2;
        if (gasUsed == target) return baseFee;
        if (gasUsed > target) {
            uint256 up = baseFee * (gasUsed - target) / target / 8;
            uint256 next = baseFee + (up > 1 ? up : 1);
            return next < MAX_BASE_FEE ? next : MAX_BASE_FEE;
        }
        return baseFee - baseFee * (target - gasUsed) / target / 8;
    }

    /// @dev Rule 2's "batch `index` exists": below the trace's bound and on L1.
    function _batchExists(uint256 index, uint256 batchLimit) private view returns (bool) {
        return index < batchLimit && index < inbox.batchCount();
    }

    // --- reading the proof ---------------------------------------------------------------------

    function _proof(bytes calldata proof) private pure returns (StepState.Proof memory) {
        return abi.decode(proof, (StepState.Proof));
    }

    /// @dev Leaf `index` of batch `batchIndex` (root `inputRoot`), by the batch's kind: a blob batch's
    ///      is read from p.blob into p.input (with the batch's origins, and `blob` true), a calldata
    ///      batch's proven by `_leaf`.
    function _open(uint256 batchIndex, bytes32 inputRoot, uint256 index, StepState.Proof memory p)
        private
        view
        returns (bool exists, uint256 count, BlobInput.Origin[] memory origins, bool blob)
    {
        blob = inbox.batchKind(batchIndex) == BLOB_BATCH;
        if (blob) {
            (exists, count, p.input, origins) = BlobInput.open(inputRoot, index, p.blob);
        } else {
            (exists, count) = _leaf(inputRoot, index, p);
        }
    }

    /// @dev Whether the batch with `inputRoot` has a leaf at `index` (then p.input, proven); and its
    ///      leaf count. The count is bound by the sized root either way: through the leaf's path, or
    ///      (no leaf) as the root's preimage with the tree root.
    function _leaf(bytes32 inputRoot, uint256 index, StepState.Proof memory p)
        private
        pure
        returns (bool exists, uint256 count)
    {
        count = p.inputCount;
        if (index >= count) {
            if (keccak256(abi.encode(p.inputTreeRoot, count)) != inputRoot) revert InvalidInputProof();
            return (false, count);
        }
        if (!StateProofs.verifyMerkleProofMemory(inputRoot, keccak256(p.input), index, count, p.inputSiblings)) {
            revert InvalidInputProof();
        }
        return (true, count);
    }

    /// @dev As protocol/_batch_input.decode_leaf: 0x01 and exactly 161 bytes.
    function _isBlockLeaf(bytes memory leaf) private pure returns (bool) {
        return leaf.length == BLOCK_LEAF_SIZE && leaf[0] == 0x01;
    }

    /// @dev 0x00, then the raw transaction (possibly empty: then it fails to decode).
    function _isTxLeaf(bytes memory leaf) private pure returns (bool) {
        return leaf.length != 0 && leaf[0] == 0x00;
    }

    function _blockLeaf(bytes memory leaf) private pure returns (BlockLeaf memory b) {
        assembly ("memory-safe") {
            let words := add(leaf, 33) // past the length word and the kind byte
            mstore(b, mload(words))
            mstore(add(b, 32), mload(add(words, 32)))
            mstore(add(b, 64), mload(add(words, 64)))
            mstore(add(b, 96), mload(add(words, 96)))
            mstore(add(b, 128), mload(add(words, 128)))
        }
    }

    /// @dev The raw transaction of a TX leaf: the leaf without its kind byte.
    function _txOfLeaf(bytes memory leaf) private pure returns (bytes memory raw) {
        uint256 length = leaf.length - 1;
        raw = new bytes(length);
        assembly ("memory-safe") {
            mcopy(add(raw, 32), add(leaf, 33), length)
        }
    }

    /// @dev min(index + 1 + txCount, count): past a skipped block's transactions (txCount is any
    ///      uint256, so compare before adding). index < count here.
    function _past(uint256 index, uint256 txCount, uint256 count) private pure returns (uint256) {
        return txCount >= count - index - 1 ? count : index + 1 + txCount;
    }
}
