// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title BlobInput
/// @notice Opens one leaf of a blob batch (BatchInbox.appendBlobBatch) for a one-step proof: KZG
///         point evaluations (EIP-4844's precompile at 0x0A) of the field elements that hold the
///         batch header, the leaf's two offsets and its bytes, each against the versioned hash of
///         its blob; the versioned hashes (and the batch's checked L1 origins) against the inbox's
///         input root. The layout and its rules are protocol/_blob.py's, to the byte: a bad header
///         is a batch of 0 leaves, bad offsets (out of order, out of bounds, a leaf longer than
///         MAX_LEAF) the empty leaf. The prover chooses nothing: the evaluation point of each element
///         is computed here from its index, and which elements are read follows from what they say.
library BlobInput {
    /// @notice As BatchInbox.Origin.
    struct Origin {
        uint256 number;
        bytes32 hash;
    }

    /// @notice abi.encode(Opening) is StepState.Proof.blob for a blob batch's leaf.
    struct Opening {
        /// @dev The batch's blobs' versioned hashes, in order, and its origins: the root's preimage.
        bytes32[] versionedHashes;
        Origin[] origins;
        /// @dev One 48-byte KZG commitment per blob (the precompile checks it against the hash).
        bytes[] commitments;
        /// @dev The opened field elements (blob * 4096 + element), strictly increasing, with their
        ///      32-byte values and 48-byte proofs.
        uint256[] elements;
        bytes32[] values;
        bytes[] proofs;
    }

    address internal constant POINT_EVALUATION = address(0x0a);
    address internal constant MODEXP = address(0x05);
    uint256 internal constant BLS_MODULUS = 0x73eda753299d7d483339d80809a1d80553bda402fffe5bfeffffffff00000001;
    uint256 internal constant ELEMENTS = 4096;
    /// @notice z of element i is 7 ** (UNIT * bitrev12(i)) mod r: the specs' domain, w = 7 ** UNIT.
    uint256 internal constant UNIT = (BLS_MODULUS - 1) / ELEMENTS;
    uint256 internal constant ELEMENT_BYTES = 31;
    uint256 internal constant BLOB_BYTES = ELEMENTS * ELEMENT_BYTES;
    uint256 internal constant VERSION = 1;
    uint256 internal constant HEADER = 4;
    uint256 internal constant OFFSET = 4;
    uint256 internal constant MAX_LEAF = 4096;

    /// @notice The versioned hashes and origins are not the input root's preimage.
    error InvalidBlobBinding();
    /// @notice An opening is malformed (order, blob index, sizes), missing, or refused by the precompile.
    error InvalidBlobOpening(uint256 element);

    /// @notice Leaf `index` of the blob batch with `inputRoot`: whether it exists, the batch's leaf
    ///         count, the leaf's bytes (empty for a bad-offset leaf) and the batch's origins.
    function open(bytes32 inputRoot, uint256 index, bytes memory encoded)
        internal
        view
        returns (bool exists, uint256 count, bytes memory leaf, Origin[] memory origins)
    {
        Opening memory o = abi.decode(encoded, (Opening));
        if (keccak256(abi.encode(o.versionedHashes, o.origins)) != inputRoot) revert InvalidBlobBinding();
        _verify(o);
        origins = o.origins;
        uint256 size = o.versionedHashes.length * BLOB_BYTES;
        uint256 header = _word(o, 0, HEADER);
        if (header >> 24 == VERSION && HEADER + OFFSET * ((header & 0xffffff) + 1) <= size) count = header & 0xffffff;
        if (index >= count) return (false, count, leaf, origins);
        uint256 offsets = _word(o, HEADER + OFFSET * index, 2 * OFFSET);
        uint256 start = offsets >> 32;
        uint256 end = offsets & 0xffffffff;
        if (start < HEADER + OFFSET * (count + 1) || end < start || end > size || end - start > MAX_LEAF) {
            return (true, count, leaf, origins); // the empty leaf
        }
        return (true, count, _read(o, start, end - start), origins);
    }

    /// @notice Whether (number, hash) is one of the origins (derivation rule 5c for blob batches).
    function attests(Origin[] memory origins, uint256 number, bytes32 hash) internal pure returns (bool) {
        for (uint256 i = 0; i < origins.length; i++) {
            if (origins[i].number == number && origins[i].hash == hash) return true;
        }
        return false;
    }

    /// @dev Every opening, checked by the precompile against its blob's versioned hash.
    function _verify(Opening memory o) private view {
        uint256 blobs = o.versionedHashes.length;
        uint256 n = o.elements.length;
        if (o.commitments.length != blobs || o.values.length != n || o.proofs.length != n) {
            revert InvalidBlobOpening(type(uint256).max);
        }
        for (uint256 j = 0; j < n; j++) {
            uint256 e = o.elements[j];
            uint256 blob = e / ELEMENTS;
            if ((j != 0 && e <= o.elements[j - 1]) || blob >= blobs) revert InvalidBlobOpening(e);
            bytes memory commitment = o.commitments[blob];
            bytes memory proof = o.proofs[j];
            if (commitment.length != 48 || proof.length != 48) revert InvalidBlobOpening(e);
            bytes memory input = abi.encodePacked(
                o.versionedHashes[blob], bytes32(_point(e % ELEMENTS)), o.values[j], commitment, proof
            );
            (bool ok, bytes memory answer) = POINT_EVALUATION.staticcall(input);
            if (!ok || answer.length != 64) revert InvalidBlobOpening(e);
        }
    }

    /// @dev z = w ** bitrev12(element) = 7 ** (UNIT * bitrev12(element)) mod r (the exponent < r).
    function _point(uint256 element) private view returns (uint256 z) {
        uint256 reversed = 0;
        for (uint256 b = 0; b < 12; b++) {
            reversed = (reversed << 1) | ((element >> b) & 1);
        }
        (bool ok, bytes memory answer) =
            MODEXP.staticcall(abi.encodePacked(uint256(32), uint256(32), uint256(32), uint256(7), UNIT * reversed, BLS_MODULUS));
        require(ok && answer.length == 32);
        z = uint256(bytes32(answer));
    }

    /// @dev B[position : position + length] as a big-endian integer (length <= 32).
    function _word(Opening memory o, uint256 position, uint256 length) private pure returns (uint256 value) {
        bytes memory b = _read(o, position, length);
        for (uint256 i = 0; i < length; i++) {
            value = (value << 8) | uint8(b[i]);
        }
    }

    /// @dev B[position : position + length] from the opened elements (each must be there).
    function _read(Opening memory o, uint256 position, uint256 length) private pure returns (bytes memory out) {
        out = new bytes(length);
        if (length == 0) return out;
        uint256 e = position / ELEMENT_BYTES;
        uint256 j = _find(o.elements, e);
        for (uint256 q = 0; q < length; q++) {
            uint256 at = position + q;
            uint256 want = at / ELEMENT_BYTES;
            while (o.elements[j] != want) {
                j++; // elements increase: the next one must be it
                if (j >= o.elements.length || o.elements[j] > want) revert InvalidBlobOpening(want);
            }
            out[q] = o.values[j][1 + at % ELEMENT_BYTES];
        }
    }

    /// @dev The position of `e` in the increasing `elements` (binary search); reverts if absent.
    function _find(uint256[] memory elements, uint256 e) private pure returns (uint256) {
        uint256 low = 0;
        uint256 high = elements.length;
        while (low < high) {
            uint256 mid = (low + high) / 2;
            if (elements[mid] < e) low = mid + 1;
            else high = mid;
        }
        if (low >= elements.length || elements[low] != e) revert InvalidBlobOpening(e);
        return low;
    }
}
