// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title BatchInbox
/// @notice Where the L2 sequencer posts its transaction batches, and where anyone can queue a
///         signed L2 transaction that the sequencer must include (forced inclusion).
/// @dev What is bound, and why. Derivation reads a batch's leaves (protocol/_batch_input.py: one
///      BLOCK leaf per block, one TX leaf per transaction) from the `appendBatch` calldata; a
///      one-step fraud proof opens one leaf with a Merkle proof against the `inputRoot` stored
///      here. The two must be the same leaves, or a batcher could post data that does not match
///      its root: derivation could not read the batch, the proof could, and judging would stop
///      (issue 12, item 1). So the inbox computes `inputRoot` itself, from the calldata, with
///      protocol/_commitment.merkle_root's exact tree (4-ary, depth 16, sized root; the same
///      tree StateProofs.verifyMerkleProof checks). Whatever the inbox stores, derivation reads.
///
///      Batch format 1 (protocol/_batch.py): `0x01 ‖ frame*`, frame = uint24 big-endian length ‖
///      leaf; a leaf is a TX leaf (0x00 ‖ raw tx, any length >= 1) or a BLOCK leaf (0x01 ‖ 5
///      words, exactly 161 bytes). A batch with no leaves, an empty leaf, a frame running past
///      the end or a leaf of another kind or size reverts with a named error, and Python's
///      decoder refuses exactly these: a malformed batch never enters the inbox, so derivation
///      never meets one (no "unavailable" batch, no halt). What the leaves *say* (gaps, late
///      blocks, bad transactions) is derivation's to judge, by rules Python and StepVerifier share.
///
///      Decisions:
///      - No compression: no contract can afford to inflate zlib, and the root must be computed
///        from what derivation reads. (Under EIP-7623 the calldata floor of 40 gas a byte, not
///        this contract's hashing, prices a batch; compression and blobs are issue 15's.)
///      - Top-level calls from an EOA only (`msg.sender == tx.origin`, no code at `tx.origin`):
///        then the batch is the transaction's own calldata, where derivation finds it through the
///        `BatchAppended` log's transaction. A contract batcher, or an EOA with an EIP-7702
///        delegation (its code is the delegation designator), could make the call from inside
///        another transaction's execution, invisible in any transaction input.
///      - The L1 origin is checked, not recorded (item 10): every BLOCK leaf's (l1OriginNumber,
///        l1OriginHash) must be a block L1 itself attests: BLOCKHASH for the last 256 blocks, the
///        EIP-2935 history contract for the last 8191. An origin in the future (the current block
///        or later), older than that history, or with another hash reverts the batch. So an L2
///        block follows a real L1 block of the chain that includes its batch (a batch built on
///        a reorged-out L1 block cannot land), and the origin's deposits and forced transactions
///        are those of that chain. Consequence for deployments: the sequencer window must stay
///        below 8191 L1 blocks (a valid block's origin is at most the window old when posted;
///        the params check enforces it at deploy). Blocks derivation makes itself when the
///        window lapses carry a zero origin hash and are never posted.
///
///      - A batch may also come in several transactions, as frames of a channel (`appendFrame`,
///        protocol/_frames.py): each frame is whole leaves in this format, checked as above, folded
///        into the batch's tree through a frontier kept in storage; the closing frame stores the
///        same BatchEntry `appendBatch` would (StepVerifier cannot tell them apart).
///      Blob batches (EIP-4844, issue 15; protocol/_blob.py has the layout and the rules): a contract
///      cannot read a blob, only its versioned hash (`blobhash`). `appendBlobBatch` therefore stores,
///      as the entry's `inputRoot`, keccak256(abi.encode(versionedHashes, origins)) with kind
///      BLOB_BATCH: the step verifier, told the kind (`batchKind`), opens a leaf with KZG
///      point-evaluation proofs against those hashes instead of a Merkle path. What `_commit`
///      checks of a calldata batch's leaves cannot be checked here: the framing is given a meaning
///      by rule in derivation (a bad header is a batch of no leaves, a bad offset an empty leaf:
///      never a halt), and the BLOCK leaves' L1 origins are named in calldata (`origins`), each
///      checked here exactly as `_commit` checks a leaf's, and bound into the root; derivation
///      skips a block whose origin is not among them (rule 5c). So "an origin L1 does not attest
///      never enters the inbox" holds for blob batches too, and a step only compares with the list.
///
///      Batch data stays in calldata: storing it would cost ~20k gas per 32 bytes, while calldata
///      is already part of L1 history. Only the batcher may append: the inbox is the L2's
///      ordering, and if anyone could write to it anyone could fill it with junk that every node
///      must download and reject. The escape hatch against a censoring sequencer is the
///      forced-inclusion queue, which is open to everyone: the sequencer must include each queued
///      transaction within a deadline of L1 blocks after `l1Block`, and a fraud proof can check
///      that against the stored entry.
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
        uint8 kind;
    }

    /// @notice An L1 origin a blob batch's blocks use: checked against L1 when it is appended.
    struct Origin {
        uint256 number;
        bytes32 hash;
    }

    /// @notice A batch's kind: its leaves are in the calldata (a Merkle root over them) ...
    uint8 public constant CALLDATA_BATCH = 0;
    /// @notice ... or in its transaction's blobs (the root binds their versioned hashes).
    uint8 public constant BLOB_BATCH = 1;
    /// @notice Most origins a blob batch may name (protocol/_blob.MAX_BLOB_ORIGINS).
    uint256 public constant MAX_BLOB_ORIGINS = 64;

    /// @notice Largest signed L2 transaction the queue accepts (geth's txMaxSize, 128 KiB).
    uint256 public constant MAX_FORCED_TX_SIZE = 131072;
    /// @notice The batch format this inbox reads: the first byte of every batch.
    uint8 public constant BATCH_VERSION = 1;
    /// @notice The EIP-2935 history contract: the hashes of the last HISTORY_WINDOW blocks.
    address public constant HISTORY = 0x0000F90827F1C53a10cb7A02335B175320002935;
    /// @notice How far back the history contract answers (EIP-2935's HISTORY_SERVE_WINDOW).
    uint256 public constant HISTORY_WINDOW = 8191;

    /// @notice The only address allowed to append batches.
    address public immutable batcher;

    BatchEntry[] private _batches;
    ForcedEntry[] private _forced;

    /// @notice The channel being filled by `appendFrame` (frames == 0: none open), in one slot.
    struct Channel {
        uint64 id; // of the open channel, or of the last one opened (from 1)
        uint64 frames; // frames appended so far
        uint64 leaves; // leaves folded into the frontier so far
        uint64 openedBlock; // the L1 block of its frame 0
    }

    Channel private _channel;
    /// @notice The open channel's hash chain over its frames: h = keccak256(h ‖ keccak256(frame)), from 0.
    bytes32 private _channelHash;
    /// @notice The open channel's tree frontier: slot 3l + j holds the j-th child, left to right, of
    ///         the incomplete node at level l + 1 (valid for j < (leaves >> 2l) % 4). Never cleared: a
    ///         slot rewritten costs 2,900 gas (5,000 cold), one written from zero 20,000 (22,100).
    bytes32[48] private _frontier;

    /// @notice A batch was appended; its data is the input of this log's transaction.
    /// @param index Position of the batch in the inbox, from 0.
    /// @param dataHash keccak256 of the batch data.
    /// @param inputRoot Sized Merkle root over the batch's leaves.
    /// @param l1Block The L1 block that included it.
    event BatchAppended(uint256 indexed index, bytes32 dataHash, bytes32 inputRoot, uint256 l1Block);

    /// @notice A frame of channel `channel` was appended; its data is the `frame` argument of this
    ///         log's transaction (`appendFrame`). The closing frame's transaction also logs the
    ///         batch's `BatchAppended`; derivation finds the earlier frames through this log.
    /// @param channel The channel (from 1; indexed, so a reader filters by it).
    /// @param frame The frame's number in its channel, from 0.
    /// @param frameHash keccak256 of the frame data.
    /// @param openedBlock The L1 block of the channel's frame 0: where a reader starts looking.
    event FrameAppended(uint256 indexed channel, uint256 frame, bytes32 frameHash, uint256 openedBlock);

    /// @notice An open channel was replaced by a new frame 0 before it closed: it never becomes a batch.
    event ChannelAbandoned(uint256 indexed channel, uint256 frames);

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
    /// @notice The batcher called from inside another call (a contract batcher, or a call routed
    ///         through one): the batch would not be the transaction's calldata.
    error NotTopLevelCall(address sender, address origin);
    /// @notice The batcher's account has code (an EIP-7702 delegation): it could append from
    ///         inside its own code, out of derivation's sight.
    error BatcherHasCode(address batcher);
    /// @notice The batch's first byte is not BATCH_VERSION.
    error UnknownVersion(uint8 version);
    /// @notice A batch of no leaves.
    error NoLeaves();
    /// @notice Leaf `leaf`'s frame (its 3-byte length or its bytes) runs past the end of the batch.
    error TruncatedLeaf(uint256 leaf);
    /// @notice Leaf `leaf` is framed with length 0.
    error EmptyLeaf(uint256 leaf);
    /// @notice Leaf `leaf` is neither a TX leaf (0x00 ‖ tx) nor a 161-byte BLOCK leaf (0x01 ‖ 5 words).
    error UnknownLeaf(uint256 leaf);
    /// @notice BLOCK leaf `leaf` names an L1 origin at or after the block that includes the batch.
    error OriginInFuture(uint256 leaf, uint256 origin, uint256 l1Block);
    /// @notice BLOCK leaf `leaf` names an L1 origin older than L1's block-hash history.
    error OriginTooOld(uint256 leaf, uint256 origin, uint256 l1Block);
    /// @notice BLOCK leaf `leaf`'s origin hash is not L1's hash of that block (`actual`; zero when
    ///         L1 has none to give, e.g. no EIP-2935 history before its fork).
    error OriginHashMismatch(uint256 leaf, uint256 origin, bytes32 claimed, bytes32 actual);
    /// @notice `appendFrame` numbered `frame` (not 0) while no channel is open.
    error NoOpenChannel(uint256 frame);
    /// @notice `appendFrame` numbered `frame` while channel `channel` expects frame `expected`.
    error FrameOutOfOrder(uint256 channel, uint256 expected, uint256 frame);
    /// @notice appendBlobBatch in a transaction that carries no blob.
    error NoBlobs();
    /// @notice A blob batch names no origin, or more than MAX_BLOB_ORIGINS.
    error OriginCount(uint256 count, uint256 maxCount);
    /// @notice Origin `origin` of a blob batch does not follow the one before it by number.
    error OriginsNotAscending(uint256 origin);
    /// @notice The constructor was given the zero address as batcher.
    error ZeroBatcher();

    /// @param batcher_ The batcher's address (an EOA, see the contract notes).
    constructor(address batcher_) {
        if (batcher_ == address(0)) revert ZeroBatcher();
        batcher = batcher_;
    }

    /// @notice Append a batch of L2 transactions. Only the batcher, and only as the top-level call
    ///         of its own transaction (see the contract notes).
    /// @param data The batch, in batch format 1: 0x01 ‖ (uint24 length ‖ leaf)*.
    /// @return index The batch's index.
    function appendBatch(bytes calldata data) external returns (uint256 index) {
        _onlyBatcher();
        (bytes32 dataHash, bytes32 inputRoot) = _commit(data);
        index = _batches.length;
        _batches.push(BatchEntry(inputRoot, uint64(block.number), CALLDATA_BATCH));
        emit BatchAppended(index, dataHash, inputRoot, block.number);
    }

    /// @notice Append a blob batch: its leaves are in this transaction's blobs (all of them, in
    ///         order; layout in protocol/_blob.py). Only the batcher, as for appendBatch.
    /// @param origins The L1 origins its BLOCK leaves use, by increasing number, each checked against
    ///        L1 as appendBatch checks a leaf's (errors name the origin's position as `leaf`).
    /// @return index The batch's index. Its event's dataHash is keccak256 of the versioned hashes,
    ///         packed; its inputRoot keccak256(abi.encode(versionedHashes, origins)).
    function appendBlobBatch(Origin[] calldata origins) external returns (uint256 index) {
        _onlyBatcher();
        uint256 count = origins.length;
        if (count == 0 || count > MAX_BLOB_ORIGINS) revert OriginCount(count, MAX_BLOB_ORIGINS);
        for (uint256 i = 0; i < count; i++) {
            if (i != 0 && origins[i].number <= origins[i - 1].number) revert OriginsNotAscending(i);
            _checkOrigin(i, origins[i].number, origins[i].hash);
        }
        uint256 blobs = 0;
        while (blobhash(blobs) != 0) blobs++;
        if (blobs == 0) revert NoBlobs();
        bytes32[] memory hashes = new bytes32[](blobs);
        for (uint256 i = 0; i < blobs; i++) {
            hashes[i] = blobhash(i);
        }
        bytes32 inputRoot = keccak256(abi.encode(hashes, origins));
        index = _batches.length;
        _batches.push(BatchEntry(inputRoot, uint64(block.number), BLOB_BATCH));
        emit BatchAppended(index, keccak256(abi.encodePacked(hashes)), inputRoot, block.number);
    }

    /// @dev Only the batcher, as the top-level call of its own transaction (see the contract notes).
    function _onlyBatcher() private view {
        if (msg.sender != batcher) revert NotBatcher(msg.sender);
        if (msg.sender != tx.origin) revert NotTopLevelCall(msg.sender, tx.origin);
        if (msg.sender.code.length != 0) revert BatcherHasCode(msg.sender);
    }

    /// @dev `_commit`'s origin check, for one origin of a blob batch (`position` in its list).
    function _checkOrigin(uint256 position, uint256 number, bytes32 claimed) private view {
        if (number >= block.number) revert OriginInFuture(position, number, block.number);
        uint256 age = block.number - number;
        bytes32 actual;
        if (age <= 256) {
            actual = blockhash(number);
        } else {
            if (age > HISTORY_WINDOW) revert OriginTooOld(position, number, block.number);
            (bool ok, bytes memory answer) = HISTORY.staticcall(abi.encode(number));
            if (ok && answer.length == 32) actual = abi.decode(answer, (bytes32));
        }
        if (actual == bytes32(0) || actual != claimed) revert OriginHashMismatch(position, number, claimed, actual);
    }

    // Why `_leafHashes` stopped (0: it did not), and the values its named error reports.
    uint256 private constant _TRUNCATED = 1;
    uint256 private constant _EMPTY_LEAF = 2;
    uint256 private constant _UNKNOWN_LEAF = 3;
    uint256 private constant _IN_FUTURE = 4;
    uint256 private constant _TOO_OLD = 5;
    uint256 private constant _MISMATCH = 6;

    /// @notice keccak256(data) and the sized Merkle root over its leaves' hashes, every BLOCK
    ///         leaf's origin checked against L1; reverts with the named error of the first fault.
    function _commit(bytes calldata data) private view returns (bytes32 dataHash, bytes32 root) {
        (bytes32 hash, uint256 hashes, uint256 count) = _leafHashes(data);
        return (hash, _treeRoot(hashes, count));
    }

    /// @notice keccak256(data), and its leaves' hashes: `count` words at memory `hashes` (with three
    ///         free words before them and room for the tree's padding after; see `_foldFrame`), every
    ///         BLOCK leaf's origin checked against L1; reverts with the named error of the first
    ///         fault (leaf numbers count from the start of `data`).
    /// @dev One pass over a memory copy of the batch (needed for the data hash anyway): each leaf is
    ///      hashed in place, its hash appended to an array after the copy.
    function _leafHashes(bytes calldata data) private view returns (bytes32 dataHash, uint256 hashes, uint256 leaf) {
        uint256 size = data.length;
        if (size == 0) revert EmptyData();
        if (uint8(data[0]) != BATCH_VERSION) revert UnknownVersion(uint8(data[0]));
        uint256 fault;
        uint256 originNumber;
        bytes32 claimed;
        bytes32 actual;
        assembly ("memory-safe") {
            let batch := mload(0x40)
            calldatacopy(batch, data.offset, size)
            dataHash := keccak256(batch, size)
            let end := add(batch, size)
            hashes := add(and(add(end, 31), not(31)), 96)
            let pos := add(batch, 1)
            // The last originNumber checked: consecutive blocks mostly share one.
            let lastOrigin := not(0)
            let lastHash := 0
            for {} lt(pos, end) {} {
                if gt(add(pos, 3), end) {
                    fault := _TRUNCATED
                    break
                }
                let len := shr(232, mload(pos))
                pos := add(pos, 3)
                if iszero(len) {
                    fault := _EMPTY_LEAF
                    break
                }
                if gt(add(pos, len), end) {
                    fault := _TRUNCATED
                    break
                }
                let kind := byte(0, mload(pos))
                if kind {
                    if or(iszero(eq(kind, 1)), iszero(eq(len, 161))) {
                        fault := _UNKNOWN_LEAF
                        break
                    }
                    // BLOCK leaf: 0x01 ‖ number ‖ timestamp ‖ l1OriginNumber ‖ l1OriginHash ‖ txCount
                    originNumber := mload(add(pos, 65))
                    claimed := mload(add(pos, 97))
                    if or(iszero(eq(originNumber, lastOrigin)), iszero(eq(claimed, lastHash))) {
                        if iszero(lt(originNumber, number())) {
                            fault := _IN_FUTURE
                            break
                        }
                        let age := sub(number(), originNumber)
                        switch gt(age, 256)
                        case 0 { actual := blockhash(originNumber) }
                        default {
                            if gt(age, HISTORY_WINDOW) {
                                fault := _TOO_OLD
                                break
                            }
                            // The history contract reverts outside its window; a chain without it
                            // answers nothing (an empty account): either way, no hash.
                            mstore(0, originNumber)
                            actual := 0
                            let ok := staticcall(gas(), HISTORY, 0, 32, 0, 32)
                            if and(ok, eq(returndatasize(), 32)) { actual := mload(0) }
                        }
                        if or(iszero(actual), iszero(eq(actual, claimed))) {
                            fault := _MISMATCH
                            break
                        }
                        lastOrigin := originNumber
                        lastHash := claimed
                    }
                }
                mstore(add(hashes, shl(5, leaf)), keccak256(pos, len))
                leaf := add(leaf, 1)
                pos := add(pos, len)
            }
            // Keep the hashes, their padding (up to 3 words) and the 4 scratch words of `_treeRoot`.
            mstore(0x40, add(hashes, shl(5, add(leaf, 8))))
        }
        if (fault == 0) {
            if (leaf == 0) revert NoLeaves();
            return (dataHash, hashes, leaf);
        }
        if (fault == _TRUNCATED) revert TruncatedLeaf(leaf);
        if (fault == _EMPTY_LEAF) revert EmptyLeaf(leaf);
        if (fault == _UNKNOWN_LEAF) revert UnknownLeaf(leaf);
        if (fault == _IN_FUTURE) revert OriginInFuture(leaf, originNumber, block.number);
        if (fault == _TOO_OLD) revert OriginTooOld(leaf, originNumber, block.number);
        revert OriginHashMismatch(leaf, originNumber, claimed, actual);
    }

    /// @notice The sized root over `count` (>= 1) hashes at memory `hashes` (see `_leafHashes`).
    /// @dev The tree is folded in place, level by level (node i of a level overwrites slot i, whose
    ///      children 4i..4i+3 are already read), an incomplete last node padded with ZERO[level].
    function _treeRoot(uint256 hashes, uint256 count) private pure returns (bytes32 root) {
        assembly ("memory-safe") {
            // The tree: 16 levels of 4-ary nodes over `count` hashes, then H(treeRoot ‖ count).
            let width := count
            let zero := 0
            for { let level := 0 } lt(level, 16) { level := add(level, 1) } {
                // Complete the last node of the level with empty subtrees.
                let padded := and(add(width, 3), not(3))
                for { let i := width } lt(i, padded) { i := add(i, 1) } {
                    mstore(add(hashes, shl(5, i)), zero)
                }
                width := shr(2, padded)
                for { let i := 0 } lt(i, width) { i := add(i, 1) } {
                    mstore(add(hashes, shl(5, i)), keccak256(add(hashes, shl(7, i)), 128))
                }
                // ZERO[level + 1] = H(ZERO[level] x 4), in the scratch words past the padding.
                let scratch := add(hashes, shl(5, padded))
                mstore(scratch, zero)
                mstore(add(scratch, 32), zero)
                mstore(add(scratch, 64), zero)
                mstore(add(scratch, 96), zero)
                zero := keccak256(scratch, 128)
            }
            mstore(add(hashes, 32), count)
            root := keccak256(hashes, 64)
        }
    }

    // -- channels: a batch in several L1 transactions ----------------------------------------------

    /// @notice Append one frame of a channel: a batch whose leaves come in several L1 transactions
    ///         (an L1 transaction carries at most ~414 KB of calldata under EIP-7825's gas cap; a
    ///         block may hold more). Only the batcher, as the top-level call of its own transaction.
    /// @dev A frame is itself in batch format 1 (`0x01 ‖ (uint24 length ‖ leaf)+`, whole leaves),
    ///      checked exactly as `appendBatch` checks a batch (the same named errors, leaf numbers
    ///      counting from the frame's start, every BLOCK leaf's origin against the L1 block that
    ///      includes the frame). Its leaves are folded into the channel's tree frontier (storage),
    ///      so the closing frame (`last`) stores the BatchEntry(inputRoot, its own L1 block) that
    ///      `appendBatch` would store for all the channel's leaves in one transaction, and logs
    ///      `BatchAppended(index, chainHash, inputRoot, l1Block)` (dataHash: the frames' hash
    ///      chain, `_channelHash`). StepVerifier and the one-step proof read the entry as any other.
    ///
    ///      Rules: frame 0 opens a channel (and abandons one still open: a batcher that restarted
    ///      mid-channel starts over, and the old channel is never a batch); frame n > 0 must be the
    ///      open channel's next (else NoOpenChannel / FrameOutOfOrder), so a frame reorged out
    ///      makes its successors revert rather than splice into another channel. A channel is no
    ///      batch until it closes: derivation never waits on an open one (a channel never closed
    ///      simply does not exist; the sequencer window, rule F, covers liveness), and its batch
    ///      index is taken at close. So `appendBatch` while a channel is open is allowed and takes
    ///      the index before it: the channel is a staging area, the inbox's batches are the
    ///      `BatchAppended` logs in order, whatever produced them.
    /// @param frame The frame: 0x01 ‖ (uint24 length ‖ leaf)+.
    /// @param frameIndex The frame's number in its channel: 0 opens one.
    /// @param last The frame closes the channel: the batch is appended now.
    /// @return channel The channel's id.
    function appendFrame(bytes calldata frame, uint256 frameIndex, bool last) external returns (uint256 channel) {
        _onlyBatcher();
        Channel memory open = _channel;
        bytes32 chain;
        if (frameIndex == 0) {
            if (open.frames != 0) emit ChannelAbandoned(open.id, open.frames);
            open = Channel(open.id + 1, 0, 0, uint64(block.number));
        } else {
            if (open.frames == 0) revert NoOpenChannel(frameIndex);
            if (frameIndex != open.frames) revert FrameOutOfOrder(open.id, open.frames, frameIndex);
            chain = _channelHash;
        }
        (bytes32 frameHash, uint256 hashes, uint256 count) = _leafHashes(frame);
        chain = keccak256(abi.encode(chain, frameHash));
        uint256 leaves = open.leaves + count;
        bytes32[48] memory frontier = _foldFrame(hashes, count, open.leaves, !last);
        channel = open.id;
        emit FrameAppended(channel, frameIndex, frameHash, open.openedBlock);
        if (!last) {
            _channel = Channel(open.id, uint64(frameIndex + 1), uint64(leaves), open.openedBlock);
            _channelHash = chain;
            return channel;
        }
        _channel = Channel(open.id, 0, 0, 0);
        bytes32 inputRoot = _frontierRoot(frontier, leaves);
        uint256 index = _batches.length;
        _batches.push(BatchEntry(inputRoot, uint64(block.number), CALLDATA_BATCH));
        emit BatchAppended(index, chain, inputRoot, block.number);
    }

    /// @notice The open channel (frames == 0: none) and its hash chain so far.
    function openChannel() external view returns (uint256 id, uint256 frames, uint256 leaves, uint256 openedBlock,
                                                  bytes32 chainHash) {
        Channel memory open = _channel;
        return (open.id, open.frames, open.leaves, open.openedBlock, open.frames == 0 ? bytes32(0) : _channelHash);
    }

    /// @notice Fold `count` leaf hashes (memory at `hashes`, three free words before them, from
    ///         `_leafHashes`) into the frontier of a tree of `before` leaves; the new frontier, in
    ///         memory, with every level a root needs. `store`: write the slots that changed back.
    /// @dev Level by level: the level's pending children (k = its digit of the count, from storage)
    ///      are put in the three words before its new nodes, every complete group of four hashed
    ///      into the next level's new nodes (written from `hashes` on: never over a word not yet
    ///      read), and the remainder is the level's new frontier. A level with no new node leaves
    ///      it and all above unchanged: only read, and only when closing.
    function _foldFrame(uint256 hashes, uint256 count, uint256 before, bool store)
        private returns (bytes32[48] memory frontier)
    {
        uint256 fresh = count; // new complete nodes at this level
        for (uint256 level = 0; level < 16; ++level) {
            uint256 slot = 3 * level;
            uint256 pending = (before >> (2 * level)) & 3;
            for (uint256 j = 0; j < pending; ++j) {
                if (fresh != 0 || !store) frontier[slot + j] = _frontier[slot + j];
            }
            if (fresh == 0) {
                if (store) break;
                continue;
            }
            uint256 base = hashes - 32 * pending;
            uint256 size = pending + fresh;
            uint256 groups = size >> 2;
            uint256 rest = size & 3;
            assembly ("memory-safe") {
                for { let j := 0 } lt(j, pending) { j := add(j, 1) } {
                    mstore(add(base, shl(5, j)), mload(add(frontier, shl(5, add(slot, j)))))
                }
                for { let i := 0 } lt(i, groups) { i := add(i, 1) } {
                    mstore(add(hashes, shl(5, i)), keccak256(add(base, shl(7, i)), 128))
                }
                let tail := add(base, shl(7, groups))
                for { let j := 0 } lt(j, rest) { j := add(j, 1) } {
                    mstore(add(frontier, shl(5, add(slot, j))), mload(add(tail, shl(5, j))))
                }
            }
            if (store) {
                // Without a complete group, the first `pending` are the stored ones, unchanged.
                for (uint256 j = groups == 0 ? pending : 0; j < rest; ++j) _frontier[slot + j] = frontier[slot + j];
            }
            fresh = groups;
        }
    }

    /// @notice The sized root of a tree of `count` (>= 1) leaves from its frontier: at each level
    ///         the pending children, then the node carried up from below, padded with ZERO[level];
    ///         the same root `_treeRoot` folds from all the leaves.
    function _frontierRoot(bytes32[48] memory frontier, uint256 count) private pure returns (bytes32 root) {
        bytes32 zero;
        bytes32 carry;
        bool carrying;
        bytes32[4] memory node;
        for (uint256 level = 0; level < 16; ++level) {
            uint256 pending = (count >> (2 * level)) & 3;
            if (pending != 0 || carrying) {
                for (uint256 j = 0; j < 4; ++j) {
                    node[j] = j < pending ? frontier[3 * level + j] : (j == pending && carrying) ? carry : zero;
                }
                carry = keccak256(abi.encode(node));
                carrying = true;
            }
            zero = keccak256(abi.encode(zero, zero, zero, zero));
        }
        return keccak256(abi.encode(carry, count));
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

    /// @notice Batch `index`'s kind: CALLDATA_BATCH or BLOB_BATCH (how a step opens its leaves).
    function batchKind(uint256 index) external view returns (uint8) {
        uint256 count = _batches.length;
        if (index >= count) revert IndexOutOfRange(index, count);
        return _batches[index].kind;
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
