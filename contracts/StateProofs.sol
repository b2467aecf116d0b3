// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title StateProofs
/// @notice Verifies Merkle proofs against L2 state commitments, and rewrites one leaf of a
///         proven tree: the building blocks of the one-step fraud proof.
/// @dev The commitment is specified in protocol/_commitment.py; this library must agree
///      with it bit for bit (tests/contracts/test_state_proofs.py runs one table of vectors
///      against both). In short:
///
///      - A 4-ary tree of fixed depth 16 (4**16 slots). An empty slot is bytes32(0); an inner
///        node is keccak256(c0 ‖ c1 ‖ c2 ‖ c3).
///      - The sized root is keccak256(treeRoot ‖ uint256(count)), count = used slots.
///      - A proof is (index, count, siblings): for each level from the leaf up, the three other
///        children of the node on the path, left to right (48 hashes).
///      - The account tree is an indexed tree: slot 0 holds the zero address, the leaves form a
///        linked list in ascending address order, and a leaf is
///        keccak256(abi.encodePacked(address account, uint64 nonce, uint256 balance, address next)).
///        An address that was never created is proven absent by its "low leaf": the leaf with
///        account < address < next (or next == address(0): the largest).
///
///      Proofs come from calldata (the dispute game's step takes them as arguments), so the
///      siblings are read in place rather than copied to memory.
library StateProofs {
    /// @notice Tree depth: levels between a leaf and the tree root.
    uint256 internal constant DEPTH = 16;
    /// @notice Siblings in a proof: DEPTH x (arity - 1).
    uint256 internal constant SIBLINGS = 48;
    /// @notice Slots in a tree: 4**DEPTH.
    uint256 internal constant MAX_LEAVES = 4 ** 16;

    /// @notice A proof does not lead from the claimed leaf to the given root.
    error InvalidProof();
    /// @notice The tree has no free slot left to append to.
    error TreeFull();

    /// @notice The sized root that a proof leads to from `leaf`.
    /// @dev Pure computation, no bounds: `index == count` is how an append proves the empty slot
    ///      it will fill. Bits of `index` above 4**16 are ignored, so callers that accept the
    ///      result as a proof must check `index < count <= MAX_LEAVES` (verifyMerkleProof does).
    /// @param leaf The leaf hash in slot `index` (bytes32(0) for an empty slot).
    /// @param index The slot.
    /// @param count The tree's used slots, committed to by the sized root.
    /// @param siblings Per level from the leaf up, the three other children left to right.
    /// @return root keccak256(treeRoot ‖ uint256(count)).
    function merkleRoot(bytes32 leaf, uint256 index, uint256 count, bytes32[48] calldata siblings)
        internal
        pure
        returns (bytes32 root)
    {
        assembly ("memory-safe") {
            // Scratch space past the free memory pointer: 128 bytes, never kept.
            let buf := mload(0x40)
            let node := leaf
            let i := index
            for { let s := siblings } lt(s, add(siblings, 1536)) { s := add(s, 96) } {
                // The node's position p among its four children: the siblings before it, the
                // node, the siblings after it. One keccak-f permutation per level.
                let before := shl(5, and(i, 3))
                calldatacopy(buf, s, before)
                mstore(add(buf, before), node)
                calldatacopy(add(add(buf, before), 32), add(s, before), sub(96, before))
                node := keccak256(buf, 128)
                i := shr(2, i)
            }
            mstore(buf, node)
            mstore(add(buf, 32), count)
            root := keccak256(buf, 64)
        }
    }

    /// @notice Whether slot `index` of the tree with sized root `root` holds `leaf`.
    /// @dev `count <= MAX_LEAVES` with `index < count` keeps `index` within the tree, so no
    ///      two indices alias the same slot.
    function verifyMerkleProof(
        bytes32 root,
        bytes32 leaf,
        uint256 index,
        uint256 count,
        bytes32[48] calldata siblings
    ) internal pure returns (bool) {
        return index < count && count <= MAX_LEAVES && merkleRoot(leaf, index, count, siblings) == root;
    }

    /// @notice An account tree leaf: keccak256(abi.encodePacked(account, nonce, balance, next)).
    /// @dev 20 + 8 + 32 + 20 = 80 bytes; `next` is the next-larger address present, or
    ///      address(0) for the largest.
    function accountLeafHash(address account, uint64 nonce, uint256 balance, address next)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(abi.encodePacked(account, nonce, balance, next));
    }

    /// @notice Whether the account tree with root `root` holds `account` with `nonce` and
    ///         `balance`, in slot `index`, linked to `next`.
    function verifyInclusion(
        bytes32 root,
        address account,
        uint64 nonce,
        uint256 balance,
        address next,
        uint256 index,
        uint256 count,
        bytes32[48] calldata siblings
    ) internal pure returns (bool) {
        return verifyMerkleProof(root, accountLeafHash(account, nonce, balance, next), index, count, siblings);
    }

    /// @notice Whether `account` is absent from the account tree with root `root` (never
    ///         created: nonce 0, balance 0), shown by its low leaf in slot `index`.
    /// @dev The low leaf is the largest address below `account`; the list being sorted, its
    ///      `next` skipping over `account` proves absence. The zero address is always present
    ///      (slot 0), and `lowAccount < account` can never hold for it, so it is never excluded.
    /// @param lowAccount The low leaf's address: lowAccount < account.
    /// @param lowNext The low leaf's successor: account < lowNext, or address(0) if none.
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
    ) internal pure returns (bool) {
        if (lowAccount >= account || (lowNext != address(0) && account >= lowNext)) return false;
        return verifyInclusion(root, lowAccount, lowNonce, lowBalance, lowNext, index, count, siblings);
    }

    /// @notice The root after slot `index` changes from `oldLeaf` to `newLeaf` (count unchanged).
    /// @dev The siblings of a path do not depend on the leaf, so the proof of the old leaf is
    ///      the proof of the new one: one proof gives the pre-state check and the post-state.
    ///      Reverts with InvalidProof unless the proof shows `oldLeaf` under `root`.
    function updatedRoot(
        bytes32 root,
        bytes32 oldLeaf,
        bytes32 newLeaf,
        uint256 index,
        uint256 count,
        bytes32[48] calldata siblings
    ) internal pure returns (bytes32) {
        if (!verifyMerkleProof(root, oldLeaf, index, count, siblings)) revert InvalidProof();
        return merkleRoot(newLeaf, index, count, siblings);
    }

    /// @notice The root after `newLeaf` takes slot `count`, the next free one (count + 1).
    /// @dev The proof is that of the empty slot `count` (leaf bytes32(0)) in the tree of `root`;
    ///      committing to the count is what makes the slot, hence the result, unique.
    ///      Reverts with TreeFull if every slot is used, InvalidProof if the proof is wrong.
    function appendedRoot(bytes32 root, bytes32 newLeaf, uint256 count, bytes32[48] calldata siblings)
        internal
        pure
        returns (bytes32)
    {
        if (count >= MAX_LEAVES) revert TreeFull();
        if (merkleRoot(bytes32(0), count, count, siblings) != root) revert InvalidProof();
        return merkleRoot(newLeaf, count, count + 1, siblings);
    }

    // Memory variants: the same functions over siblings held in memory (a proof decoded from a
    // `bytes` argument with abi.decode, as the one-step proof's are). Separate names, because a
    // calldata argument converts to memory too and an overload would make existing calls ambiguous.

    /// @notice merkleRoot, with the siblings in memory.
    function merkleRootMemory(bytes32 leaf, uint256 index, uint256 count, bytes32[48] memory siblings)
        internal
        pure
        returns (bytes32 root)
    {
        assembly ("memory-safe") {
            let buf := mload(0x40)
            let node := leaf
            let i := index
            for { let s := siblings } lt(s, add(siblings, 1536)) { s := add(s, 96) } {
                let before := shl(5, and(i, 3))
                mcopy(buf, s, before)
                mstore(add(buf, before), node)
                mcopy(add(add(buf, before), 32), add(s, before), sub(96, before))
                node := keccak256(buf, 128)
                i := shr(2, i)
            }
            mstore(buf, node)
            mstore(add(buf, 32), count)
            root := keccak256(buf, 64)
        }
    }

    /// @notice verifyMerkleProof, with the siblings in memory.
    function verifyMerkleProofMemory(
        bytes32 root,
        bytes32 leaf,
        uint256 index,
        uint256 count,
        bytes32[48] memory siblings
    ) internal pure returns (bool) {
        return index < count && count <= MAX_LEAVES && merkleRootMemory(leaf, index, count, siblings) == root;
    }

    /// @notice appendedRoot, with the siblings in memory.
    function appendedRootMemory(bytes32 root, bytes32 newLeaf, uint256 count, bytes32[48] memory siblings)
        internal
        pure
        returns (bytes32)
    {
        if (count >= MAX_LEAVES) revert TreeFull();
        if (merkleRootMemory(bytes32(0), count, count, siblings) != root) revert InvalidProof();
        return merkleRootMemory(newLeaf, count, count + 1, siblings);
    }
}
