// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title BatchInbox
/// @notice Where the L2 sequencer posts its transaction batches, and where anyone can queue a
///         signed L2 transaction that the sequencer must include (forced inclusion).
/// @dev Batch data stays in calldata: storing it would cost ~20k gas per 32 bytes, while
///      calldata is already part of L1 history. Derivation finds a batch through the
///      `BatchAppended` log's transaction hash, decodes `appendBatch(bytes)` from that
///      transaction's input and checks it against `dataHash`. So the batcher must be an EOA
///      calling this contract directly (a contract batcher's call would be an internal call,
///      invisible in the transaction input).
///
///      No contract can afford to inflate the compressed data, so the batcher also posts
///      `inputRoot`: the sized Merkle root over the batch's leaves (one per block, one per
///      transaction; protocol/_batch_input.py). It is stored with the batch's L1 block,
///      so a one-step fraud proof can read one transaction of a batch with a Merkle proof.
///      Derivation checks the data against the root; the batcher is trusted to post data that
///      reproduces it (data availability), as it is trusted to post at all.
///
///      Only the batcher may append: the inbox is the L2's ordering, and if anyone could write
///      to it anyone could fill it with junk that every node must download and reject. The
///      escape hatch against a censoring sequencer is the forced-inclusion queue, which is open
///      to everyone: the sequencer must include each queued transaction within a deadline of
///      L1 blocks after `l1Block`, and a fraud proof can check that against the stored entry.
///
///      Forced inclusion charges no fee or bond: the L1 gas of a queue entry (~50k gas plus
///      calldata and log data) already prices out spam, and a fee would need custody and a
///      withdrawal path. A transaction that turns out invalid on L2 is skipped by the sequencer,
///      so the queue cannot be used to halt the chain. The batcher is immutable: rotating its
///      key means deploying a new inbox.
contract BatchInbox {
    /// @notice A queued forced transaction: its hash and the L1 block it was queued in.
    struct ForcedEntry {
        bytes32 txHash;
        uint64 l1Block;
    }

    /// @notice A posted batch, as a one-step proof reads it: its input root and the L1 block that
    ///         included it. (The data hash is only in the event: nothing on L1 reads it, and a third
    ///         storage slot would cost every batch ~22k gas.)
    struct BatchEntry {
        bytes32 inputRoot;
        uint64 l1Block;
    }

    /// @notice Largest signed L2 transaction the queue accepts (geth's txMaxSize, 128 KiB).
    uint256 public constant MAX_FORCED_TX_SIZE = 131072;

    /// @notice The only address allowed to append batches.
    address public immutable batcher;

    BatchEntry[] private _batches;
    ForcedEntry[] private _forced;

    /// @notice A batch was appended; its data is the input of this log's transaction.
    /// @param index Position of the batch in the inbox, from 0.
    /// @param dataHash keccak256 of the batch data.
    /// @param inputRoot Sized Merkle root over the batch's leaves.
    /// @param l1Block The L1 block that included it.
    event BatchAppended(uint256 indexed index, bytes32 dataHash, bytes32 inputRoot, uint256 l1Block);

    /// @notice A signed L2 transaction was queued for forced inclusion.
    /// @param index Position in the forced-inclusion queue, from 0.
    /// @param txHash keccak256 of the signed transaction: its L2 transaction hash.
    /// @param data The signed L2 transaction, as submitted.
    /// @param l1Block The L1 block that queued it; the inclusion deadline counts from here.
    event ForcedTransaction(uint256 indexed index, bytes32 txHash, bytes data, uint256 l1Block);

    /// @notice The caller is not the batcher.
    error NotBatcher(address caller);
    /// @notice An empty batch or forced transaction.
    error EmptyData();
    /// @notice The forced transaction exceeds MAX_FORCED_TX_SIZE.
    error ForcedTxTooLarge(uint256 size, uint256 maxSize);
    /// @notice No batch or queue entry at this index.
    error IndexOutOfRange(uint256 index, uint256 count);
    /// @notice A batch posted without an input root (no root is ever zero).
    error ZeroInputRoot();
    /// @notice The constructor was given the zero address as batcher.
    error ZeroBatcher();

    /// @param batcher_ The batcher's address (an EOA, see the contract notes).
    constructor(address batcher_) {
        if (batcher_ == address(0)) revert ZeroBatcher();
        batcher = batcher_;
    }

    /// @notice Append a batch of L2 transactions. Only the batcher.
    /// @param data The batch, in the sequencer's (compressed) batch encoding.
    /// @param inputRoot The sized Merkle root over the batch's leaves.
    /// @return index The batch's index.
    function appendBatch(bytes calldata data, bytes32 inputRoot) external returns (uint256 index) {
        if (msg.sender != batcher) revert NotBatcher(msg.sender);
        if (data.length == 0) revert EmptyData();
        if (inputRoot == bytes32(0)) revert ZeroInputRoot();
        bytes32 dataHash = keccak256(data);
        index = _batches.length;
        _batches.push(BatchEntry(inputRoot, uint64(block.number)));
        emit BatchAppended(index, dataHash, inputRoot, block.number);
    }

    /// @notice Queue a signed L2 transaction that the sequencer must include. Anyone.
    /// @param signedL2Tx The raw signed L2 transaction (an EIP-2718 typed transaction).
    /// @return index The entry's index in the queue.
    function forceInclude(bytes calldata signedL2Tx) external returns (uint256 index) {
        uint256 size = signedL2Tx.length;
        if (size == 0) revert EmptyData();
        if (size > MAX_FORCED_TX_SIZE) revert ForcedTxTooLarge(size, MAX_FORCED_TX_SIZE);
        bytes32 txHash = keccak256(signedL2Tx);
        index = _forced.length;
        _forced.push(ForcedEntry(txHash, uint64(block.number)));
        emit ForcedTransaction(index, txHash, signedL2Tx, block.number);
    }

    /// @notice How many batches were appended.
    function batchCount() external view returns (uint256) {
        return _batches.length;
    }

    /// @notice Batch `index`: its input root and the L1 block that included it.
    function batch(uint256 index) external view returns (bytes32 inputRoot, uint256 l1Block) {
        uint256 count = _batches.length;
        if (index >= count) revert IndexOutOfRange(index, count);
        BatchEntry storage entry = _batches[index];
        return (entry.inputRoot, entry.l1Block);
    }

    /// @notice How many transactions were queued for forced inclusion.
    function forcedCount() external view returns (uint256) {
        return _forced.length;
    }

    /// @notice Queue entry `index`: the transaction's hash and the L1 block that queued it.
    function forcedTransaction(uint256 index) external view returns (bytes32 txHash, uint256 l1Block) {
        uint256 count = _forced.length;
        if (index >= count) revert IndexOutOfRange(index, count);
        ForcedEntry storage entry = _forced[index];
        return (entry.txHash, entry.l1Block);
    }
}
