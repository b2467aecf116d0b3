// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title L2Transaction
/// @notice Decodes and statelessly validates one raw L2 transaction exactly as the sequencer does,
///         and hashes L2->L1 messages: what the one-step fraud proof needs to re-execute one L2
///         transaction on L1.
/// @dev The specification is Python: protocol/_tx.py (decode_transaction),
///      _withdrawal.py (initiateWithdrawal calldata, message hash) and _rules.py (limits,
///      intrinsic gas). This library must accept exactly the byte strings that decode_transaction
///      accepts, with the same fields, sender and hash (tests/contracts/test_l2_transaction.py runs
///      one table of vectors, mutations and random bytes against both). In short:
///
///      - Only EIP-1559 (type 2): 0x02 || rlp([chainId, nonce, maxPriorityFeePerGas,
///        maxFeePerGas, gasLimit, to, value, data, accessList, yParity, r, s]).
///      - Canonical RLP only: no leading zeros in integers or lengths, no long form where the
///        short one fits, a single byte below 0x80 as itself, exactly 12 fields, nothing after.
///        So one transaction has one encoding and one hash.
///      - The checks run in the order Python runs them, so a rejected transaction gets the same
///        reason (its code in protocol._reasons.L2_TRANSACTION_CODES): parsing first, field by field
///        (MALFORMED_RLP, or FIELD_OUT_OF_RANGE for an integer wider than 32 bytes, or
///        INVALID_ADDRESS for an access-list address that is not 20 bytes), then chain id, nonce,
///        `to`, fees, gas limit, intrinsic gas, withdrawal calldata, signature ranges, recovery.
///
///      Positions are memory addresses inside `raw`; every length read from the input is checked
///      against the end of its enclosing item before anything is read through it, so a lying
///      length yields a rejection, never a read outside `raw` or a revert. Lengths have at most
///      8 bytes and `raw` at most MAX_TX_SIZE, so position arithmetic cannot overflow (hence the
///      unchecked blocks).
library L2Transaction {
    /// @notice A decoded, signature-checked transaction (Python's Transaction, plus what the
    ///         one-step proof needs of it).
    /// @dev The access list is charged for (intrinsicGas) but otherwise unused on L2, so it is not
    ///      kept. The withdrawal fields are set only when `to == MESSAGE_PASSER`: the decoded
    ///      initiateWithdrawal call, or for empty calldata the plain withdrawal to the sender
    ///      itself with WITHDRAWAL_DEFAULT_GAS_LIMIT (as _withdrawal.decode_withdrawal_call).
    struct Tx {
        uint256 chainId;
        uint256 nonce;
        uint256 maxPriorityFeePerGas;
        uint256 maxFeePerGas;
        uint256 gasLimit;
        address to;
        uint256 value;
        bytes data;
        /// @dev Recovered from the signature.
        address sender;
        /// @dev keccak256 of the whole raw transaction, as wallets and explorers show it.
        bytes32 txHash;
        /// @dev _rules.intrinsic_gas: with no L2 EVM, the gas the transaction uses.
        uint256 intrinsicGas;
        address withdrawalTarget;
        uint256 withdrawalGasLimit;
        bytes withdrawalData;
    }

    // Rejection reasons: protocol._reasons.L2_TRANSACTION_CODES (tests/contracts checks they agree).
    uint8 internal constant OVERSIZED = 0;
    uint8 internal constant MALFORMED_RLP = 1;
    uint8 internal constant TX_TYPE_NOT_SUPPORTED = 2;
    uint8 internal constant WRONG_CHAIN_ID = 3;
    uint8 internal constant FIELD_OUT_OF_RANGE = 4;
    uint8 internal constant INVALID_ADDRESS = 5;
    uint8 internal constant CONTRACT_CREATION_NOT_SUPPORTED = 6;
    uint8 internal constant TIP_ABOVE_FEE_CAP = 7;
    uint8 internal constant GAS_LIMIT_TOO_HIGH = 8;
    uint8 internal constant INTRINSIC_GAS_TOO_LOW = 9;
    uint8 internal constant MALFORMED_WITHDRAWAL = 10;
    uint8 internal constant INVALID_SIGNATURE = 11;
    uint8 internal constant HIGH_S = 12;
    /// @dev "No fault" inside the decoder; never returned.
    uint8 private constant NONE = 255;

    // _rules.py: a change there is a hard fork, and must be made here too.
    uint256 internal constant MAX_TX_SIZE = 131072;
    uint256 internal constant TX_TYPE_EIP1559 = 0x02;
    uint256 internal constant MAX_NONCE = 2 ** 64 - 2;
    uint256 internal constant BLOCK_GAS_LIMIT = 30_000_000;
    uint256 internal constant TX_BASE_GAS = 21_000;
    uint256 internal constant TX_DATA_ZERO_GAS = 4;
    uint256 internal constant TX_DATA_NON_ZERO_GAS = 16;
    uint256 internal constant ACCESS_LIST_ADDRESS_GAS = 2_400;
    uint256 internal constant ACCESS_LIST_STORAGE_KEY_GAS = 1_900;
    uint256 internal constant SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;
    uint256 internal constant SECP256K1_HALF_N = SECP256K1_N / 2;
    address internal constant MESSAGE_PASSER = 0x4200000000000000000000000000000000000016;
    bytes4 internal constant INITIATE_WITHDRAWAL_SELECTOR = 0xc2b3e5ac;
    uint256 internal constant WITHDRAWAL_DEFAULT_GAS_LIMIT = 100_000;

    /// @dev selector + target + gasLimit + data offset + data length: the smallest withdrawal call.
    uint256 private constant CALL_HEAD = 132;

    /// @dev Where the parsed items are in memory, and the values the checks need that Tx does not keep.
    struct Layout {
        uint256 body; // first byte of the list's payload
        uint256 unsignedEnd; // first byte after the access list: the nine signed fields end here
        uint256 toLength;
        uint256 dataStart;
        uint256 dataLength;
        uint256 accessListGas;
        uint256 yParity;
        uint256 r;
        uint256 s;
    }

    /// @notice Decodes and validates `raw` as decode_transaction(raw, chainId) does.
    /// @dev Total: never reverts on any input. `raw`'s memory is briefly rewritten (the signing
    ///      prefix is framed in place, see _signingHash) and restored before returning.
    /// @param raw The raw transaction: 0x02 || rlp([...12 fields]).
    /// @param chainId This chain's id (EIP-155 replay protection).
    /// @return ok Whether Python accepts `raw`.
    /// @return reason When !ok, the code (L2_TRANSACTION_CODES) of the Python Reason it raises; 0 when ok.
    /// @return t The transaction when ok; partially filled and meaningless otherwise.
    function decode(bytes memory raw, uint256 chainId) internal view returns (bool ok, uint8 reason, Tx memory t) {
        reason = _decode(raw, chainId, t);
        ok = reason == NONE;
        if (ok) reason = 0;
    }

    /// @notice The L2->L1 message hash: keccak256 of WithdrawalMessage.encode() (Optimism's
    ///         Hashing.hashWithdrawal), a leaf of the message-passer tree.
    function withdrawalHash(
        uint256 messageNonce,
        address sender,
        address target,
        uint256 value,
        uint256 gasLimit,
        bytes memory data
    ) internal pure returns (bytes32) {
        return keccak256(abi.encode(messageNonce, sender, target, value, gasLimit, data));
    }

    function _decode(bytes memory raw, uint256 chainId, Tx memory t) private view returns (uint8 fault) {
        uint256 size = raw.length;
        if (size > MAX_TX_SIZE) return OVERSIZED;
        if (size == 0) return MALFORMED_RLP;
        uint256 start;
        assembly ("memory-safe") {
            start := add(raw, 32)
        }
        if (_byteAt(start) != TX_TYPE_EIP1559) return TX_TYPE_NOT_SUPPORTED;

        Layout memory l;
        fault = _fields(start + 1, start + size, t, l);
        if (fault != NONE) return fault;

        if (t.chainId != chainId) return WRONG_CHAIN_ID;
        if (t.nonce > MAX_NONCE) return FIELD_OUT_OF_RANGE; // EIP-2681
        if (l.toLength != 20) return l.toLength == 0 ? CONTRACT_CREATION_NOT_SUPPORTED : INVALID_ADDRESS;
        if (t.maxPriorityFeePerGas > t.maxFeePerGas) return TIP_ABOVE_FEE_CAP;
        if (t.gasLimit > BLOCK_GAS_LIMIT) return GAS_LIMIT_TOO_HIGH;
        t.intrinsicGas = TX_BASE_GAS + _calldataGas(l.dataStart, l.dataLength) + l.accessListGas;
        if (t.gasLimit < t.intrinsicGas) return INTRINSIC_GAS_TOO_LOW;
        bool withdrawal = t.to == MESSAGE_PASSER;
        if (withdrawal) {
            fault = _withdrawal(l.dataStart, l.dataLength, t);
            if (fault != NONE) return fault;
        }

        if (l.yParity > 1) return INVALID_SIGNATURE;
        if (l.r == 0 || l.r >= SECP256K1_N) return INVALID_SIGNATURE;
        if (l.s == 0 || l.s >= SECP256K1_N) return INVALID_SIGNATURE;
        if (l.s > SECP256K1_HALF_N) return HIGH_S; // EIP-2: every signature has a high-s twin
        address sender = _recover(_signingHash(l), l.yParity, l.r, l.s);
        if (sender == address(0)) return INVALID_SIGNATURE;

        t.sender = sender;
        if (withdrawal && l.dataLength == 0) t.withdrawalTarget = sender;
        t.data = _copy(l.dataStart, l.dataLength);
        t.txHash = keccak256(raw);
        return NONE;
    }

    /// @dev The 12 fields of the list at `p` (just after the type byte), which must end at `end`.
    function _fields(uint256 p, uint256 end, Tx memory t, Layout memory l) private pure returns (uint8 fault) {
        uint256 stop;
        (fault, p, stop) = _list(p, end);
        if (fault != NONE) return fault;
        if (stop != end) return MALFORMED_RLP; // trailing bytes
        l.body = p;
        (fault, t.chainId, p) = _int(p, end);
        if (fault != NONE) return fault;
        (fault, t.nonce, p) = _int(p, end);
        if (fault != NONE) return fault;
        (fault, t.maxPriorityFeePerGas, p) = _int(p, end);
        if (fault != NONE) return fault;
        (fault, t.maxFeePerGas, p) = _int(p, end);
        if (fault != NONE) return fault;
        (fault, t.gasLimit, p) = _int(p, end);
        if (fault != NONE) return fault;
        uint256 itemStart;
        (fault, itemStart, p) = _str(p, end);
        if (fault != NONE) return fault;
        unchecked {
            l.toLength = p - itemStart;
        }
        if (l.toLength == 20) t.to = _addressAt(itemStart);
        (fault, t.value, p) = _int(p, end);
        if (fault != NONE) return fault;
        (fault, itemStart, p) = _str(p, end);
        if (fault != NONE) return fault;
        l.dataStart = itemStart;
        unchecked {
            l.dataLength = p - itemStart;
        }
        (fault, l.accessListGas, p) = _accessList(p, end);
        if (fault != NONE) return fault;
        l.unsignedEnd = p;
        (fault, l.yParity, p) = _int(p, end);
        if (fault != NONE) return fault;
        (fault, l.r, p) = _int(p, end);
        if (fault != NONE) return fault;
        (fault, l.s, p) = _int(p, end);
        if (fault != NONE) return fault;
        if (p != end) return MALFORMED_RLP; // more than 12 fields
        return NONE;
    }

    /// @dev [[address, [storageKey, ...]], ...]: its intrinsic gas (2400 per address, 1900 per key).
    function _accessList(uint256 p, uint256 end) private pure returns (uint8 fault, uint256 gas, uint256 next) {
        (fault, p, next) = _list(p, end);
        if (fault != NONE) return (fault, 0, 0);
        while (p < next) {
            uint256 entryEnd;
            (fault, p, entryEnd) = _list(p, next);
            if (fault != NONE) return (fault, 0, 0);
            uint256 itemStart;
            (fault, itemStart, p) = _str(p, entryEnd);
            if (fault != NONE) return (fault, 0, 0);
            if (p - itemStart != 20) return (INVALID_ADDRESS, 0, 0);
            uint256 keysEnd;
            (fault, p, keysEnd) = _list(p, entryEnd);
            if (fault != NONE) return (fault, 0, 0);
            if (keysEnd != entryEnd) return (MALFORMED_RLP, 0, 0); // an entry is exactly two items
            gas += ACCESS_LIST_ADDRESS_GAS;
            while (p < keysEnd) {
                (fault, itemStart, p) = _str(p, keysEnd);
                if (fault != NONE) return (fault, 0, 0);
                if (p - itemStart != 32) return (MALFORMED_RLP, 0, 0);
                gas += ACCESS_LIST_STORAGE_KEY_GAS;
            }
        }
    }

    // Canonical RLP readers over [p, end): a fault (NONE if none), then what was read.

    /// @dev An unsigned integer of at most 256 bits: (fault, value, position after it).
    function _int(uint256 p, uint256 end) private pure returns (uint8, uint256 value, uint256 next) {
        if (p >= end) return (MALFORMED_RLP, 0, 0); // missing field
        uint256 b = _byteAt(p);
        unchecked {
            if (b < 0x80) return (b == 0 ? MALFORMED_RLP : NONE, b, p + 1); // zero is 0x80
            if (b <= 0xa0) {
                uint256 length = b - 0x80;
                next = p + 1 + length;
                if (next > end) return (MALFORMED_RLP, 0, 0);
                if (length == 0) return (NONE, 0, next);
                if (_byteAt(p + 1) == 0) return (MALFORMED_RLP, 0, 0); // leading zero
                assembly ("memory-safe") {
                    value := shr(sub(256, shl(3, length)), mload(add(p, 1)))
                }
                if (length == 1 && value < 0x80) return (MALFORMED_RLP, 0, 0); // must be itself
                return (NONE, value, next);
            }
        }
        // Python refuses a wider string by its prefix alone, before looking at its length.
        if (b < 0xc0) return (FIELD_OUT_OF_RANGE, 0, 0);
        return (MALFORMED_RLP, 0, 0); // a list
    }

    /// @dev A byte string: (fault, first byte of its payload, position after it).
    function _str(uint256 p, uint256 end) private pure returns (uint8, uint256 start, uint256 stop) {
        if (p >= end) return (MALFORMED_RLP, 0, 0);
        uint256 b = _byteAt(p);
        unchecked {
            if (b < 0x80) return (NONE, p, p + 1);
            if (b < 0xb8) {
                start = p + 1;
                stop = start + b - 0x80;
                if (stop > end) return (MALFORMED_RLP, 0, 0);
                if (stop == start + 1 && _byteAt(start) < 0x80) return (MALFORMED_RLP, 0, 0);
                return (NONE, start, stop);
            }
            if (b < 0xc0) return _longForm(p, b - 0xb7, end);
        }
        return (MALFORMED_RLP, 0, 0); // a list
    }

    /// @dev A list header: (fault, first byte of its payload, position after it).
    function _list(uint256 p, uint256 end) private pure returns (uint8, uint256 start, uint256 stop) {
        if (p >= end) return (MALFORMED_RLP, 0, 0);
        uint256 b = _byteAt(p);
        if (b < 0xc0) return (MALFORMED_RLP, 0, 0); // a byte string
        unchecked {
            if (b < 0xf8) {
                stop = p + 1 + b - 0xc0;
                if (stop > end) return (MALFORMED_RLP, 0, 0);
                return (NONE, p + 1, stop);
            }
            return _longForm(p, b - 0xf7, end);
        }
    }

    /// @dev The payload of a long-form item at `p` whose length takes `lengthSize` (1..8) bytes.
    function _longForm(uint256 p, uint256 lengthSize, uint256 end)
        private
        pure
        returns (uint8, uint256 start, uint256 stop)
    {
        unchecked {
            start = p + 1 + lengthSize;
            if (start > end) return (MALFORMED_RLP, 0, 0);
            if (_byteAt(p + 1) == 0) return (MALFORMED_RLP, 0, 0); // length with leading zeros
            uint256 length;
            assembly ("memory-safe") {
                length := shr(sub(256, shl(3, lengthSize)), mload(add(p, 1)))
            }
            if (length < 56) return (MALFORMED_RLP, 0, 0); // the short form fits
            stop = start + length; // < 2**64 + memory address: no overflow
            if (stop > end) return (MALFORMED_RLP, 0, 0);
            return (NONE, start, stop);
        }
    }

    /// @dev Checks the calldata of a call to MESSAGE_PASSER as _withdrawal.decode_withdrawal_call
    ///      does (one canonical initiateWithdrawal encoding only) and records the call in `t`.
    function _withdrawal(uint256 d, uint256 n, Tx memory t) private pure returns (uint8) {
        if (n == 0) {
            // A plain withdrawal to the sender itself: _decode sets the target once it is recovered.
            t.withdrawalGasLimit = WITHDRAWAL_DEFAULT_GAS_LIMIT;
            return NONE;
        }
        if (n < CALL_HEAD) return MALFORMED_WITHDRAWAL;
        uint256 targetWord;
        uint256 offset;
        uint256 length;
        uint256 selector;
        assembly ("memory-safe") {
            selector := shr(224, mload(d))
            targetWord := mload(add(d, 4))
            offset := mload(add(d, 68))
            length := mload(add(d, 100))
        }
        if (selector != uint32(INITIATE_WITHDRAWAL_SELECTOR)) return MALFORMED_WITHDRAWAL;
        if (targetWord >> 160 != 0) return MALFORMED_WITHDRAWAL; // dirty high bytes: not an address
        if (offset != 0x60) return MALFORMED_WITHDRAWAL;
        // length <= n first: it can be any uint256, and n < 2**17 keeps the rest overflow-free.
        if (length > n) return MALFORMED_WITHDRAWAL;
        unchecked {
            if (n != CALL_HEAD + ((length + 31) & ~uint256(31))) return MALFORMED_WITHDRAWAL;
            uint256 dataEnd = CALL_HEAD + length;
            uint256 padding = n - dataEnd; // 0..31 bytes, which must be zero
            uint256 word;
            assembly ("memory-safe") {
                word := mload(add(d, dataEnd))
            }
            if (padding != 0 && word >> (256 - 8 * padding) != 0) return MALFORMED_WITHDRAWAL;
            t.withdrawalTarget = address(uint160(targetWord));
            t.withdrawalGasLimit = _wordAt(d + 36);
            t.withdrawalData = _copy(d + CALL_HEAD, length);
        }
        return NONE;
    }

    /// @dev 16 gas per non-zero and 4 per zero byte of `length` bytes at `p` (EIP-2028).
    function _calldataGas(uint256 p, uint256 length) private pure returns (uint256) {
        uint256 nonZero;
        assembly ("memory-safe") {
            let low := 0x0101010101010101010101010101010101010101010101010101010101010101
            let nibbles := 0x0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f
            let end := add(p, length)
            for {} lt(p, end) { p := add(p, 32) } {
                let w := mload(p)
                let left := sub(end, p)
                if lt(left, 32) { w := and(w, not(shr(shl(3, left), not(0)))) } // past the end: zeros
                // Fold each byte onto its lowest bit (1 iff the byte is non-zero), without carries
                // between bytes, then sum the 32 bits into the top byte with one multiplication.
                w := and(or(w, shr(4, w)), nibbles)
                w := or(w, shr(2, w))
                w := and(or(w, shr(1, w)), low)
                nonZero := add(nonZero, shr(248, mul(w, low)))
            }
        }
        unchecked {
            return TX_DATA_NON_ZERO_GAS * nonZero + TX_DATA_ZERO_GAS * (length - nonZero);
        }
    }

    /// @dev keccak256(0x02 || rlp(first nine fields)). The nine fields' bytes are already in
    ///      `raw`, so the list header for them is written just before them, over the type byte
    ///      and the original list header (the new prefix is never longer than those), hashed,
    ///      and the overwritten word restored: no copy of the payload.
    function _signingHash(Layout memory l) private pure returns (bytes32 h) {
        uint256 body = l.body;
        uint256 n;
        unchecked {
            n = l.unsignedEnd - body;
        }
        uint256 prefix;
        uint256 prefixLength;
        if (n < 56) {
            (prefix, prefixLength) = (0x02c0 + n, 2);
        } else if (n < 0x100) {
            (prefix, prefixLength) = ((0x02f8 << 8) | n, 3);
        } else if (n < 0x10000) {
            (prefix, prefixLength) = ((0x02f9 << 16) | n, 4);
        } else {
            (prefix, prefixLength) = ((0x02fa << 24) | n, 5); // n < MAX_TX_SIZE < 2**24
        }
        assembly ("memory-safe") {
            // body >= raw + 34 (length word, type byte, list header): the word stays inside raw.
            let at := sub(body, 32)
            let saved := mload(at)
            let mask := sub(shl(shl(3, prefixLength), 1), 1)
            mstore(at, or(and(saved, not(mask)), prefix))
            h := keccak256(sub(body, prefixLength), add(prefixLength, n))
            mstore(at, saved)
        }
    }

    /// @dev The ecrecover precompile; address(0) when no public key recovers.
    function _recover(bytes32 h, uint256 yParity, uint256 r, uint256 s) private view returns (address signer) {
        assembly ("memory-safe") {
            let m := mload(0x40) // free memory as scratch, not allocated
            mstore(m, h)
            mstore(add(m, 32), add(yParity, 27))
            mstore(add(m, 64), r)
            mstore(add(m, 96), s)
            mstore(0, 0)
            // On failure the precompile returns nothing: the zeroed scratch word stays 0.
            pop(staticcall(gas(), 0x01, m, 128, 0, 32))
            signer := and(mload(0), 0xffffffffffffffffffffffffffffffffffffffff)
        }
    }

    /// @dev A new `bytes` holding `length` bytes at `p`.
    function _copy(uint256 p, uint256 length) private pure returns (bytes memory out) {
        assembly ("memory-safe") {
            out := mload(0x40)
            mstore(out, length)
            let data := add(out, 32)
            mcopy(data, p, length)
            mstore(add(data, length), 0) // clean the last word's tail (ABI encoding copies it)
            mstore(0x40, add(data, and(add(length, 31), not(31))))
        }
    }

    function _byteAt(uint256 p) private pure returns (uint256 b) {
        assembly ("memory-safe") {
            b := byte(0, mload(p))
        }
    }

    function _wordAt(uint256 p) private pure returns (uint256 w) {
        assembly ("memory-safe") {
            w := mload(p)
        }
    }

    function _addressAt(uint256 p) private pure returns (address a) {
        assembly ("memory-safe") {
            a := shr(96, mload(p))
        }
    }
}
