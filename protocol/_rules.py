"""Every limit and constant of the L2, in one place.

The sequencer, the challenger (Python) and the one-step proof (Solidity) must agree on each
of these: a change here is a hard fork. Values follow Ethereum (or Optimism) where one exists.
"""

from __future__ import annotations

from typing import Final

# --- chain --------------------------------------------------------------------------------

#: Devnet chain id (Optimism's devnet uses 901 too; any unused id works, it only has to
#: differ from every other chain a wallet's key signs for: EIP-155 replay protection).
DEFAULT_CHAIN_ID: Final = 901

# --- transactions -------------------------------------------------------------------------

#: The only accepted envelope: EIP-2718 type 2 (EIP-1559). Legacy (no type byte) and
#: type 1 (EIP-2930) are refused: every current wallet signs type 2 by default.
TX_TYPE_EIP1559: Final = 0x02
#: geth's txMaxSize: large enough for any transfer or withdrawal, small enough to bound
#: the work one payload can cost the sequencer.
MAX_TX_SIZE: Final = 128 * 1024

UINT64_MAX: Final = 2**64 - 1
UINT256_MAX: Final = 2**256 - 1
ADDRESS_SIZE: Final = 20
HASH_SIZE: Final = 32
#: EIP-2681: an account nonce stays below 2**64 - 1, so a transaction nonce must too.
MAX_NONCE: Final = UINT64_MAX - 1

# --- secp256k1 signatures ------------------------------------------------------------------

SECP256K1_N: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
#: EIP-2: s above n/2 is refused (each signature has a high-s twin: malleability).
SECP256K1_HALF_N: Final = SECP256K1_N // 2

# --- gas ------------------------------------------------------------------------------------

TX_BASE_GAS: Final = 21_000
TX_DATA_ZERO_GAS: Final = 4  # EIP-2028
TX_DATA_NON_ZERO_GAS: Final = 16  # EIP-2028
ACCESS_LIST_ADDRESS_GAS: Final = 2_400  # EIP-2930
ACCESS_LIST_STORAGE_KEY_GAS: Final = 1_900  # EIP-2930

BLOCK_GAS_LIMIT: Final = 30_000_000
#: EIP-1559: the base fee moves towards blocks that are half full.
ELASTICITY_MULTIPLIER: Final = 2
BLOCK_GAS_TARGET: Final = BLOCK_GAS_LIMIT // ELASTICITY_MULTIPLIER
#: EIP-1559: the base fee changes by at most 1/8 from one block to the next.
BASE_FEE_MAX_CHANGE_DENOMINATOR: Final = 8
#: EIP-1559's INITIAL_BASE_FEE (1 gwei); genesis may set another.
INITIAL_BASE_FEE: Final = 1_000_000_000


def intrinsic_gas(data: bytes, access_list: tuple[tuple[bytes, tuple[bytes, ...]], ...]) -> int:
    """Gas a transaction uses before (and, with no L2 EVM, instead of) any execution.

    21000 + 16 per non-zero and 4 per zero calldata byte + 2400 per access-list address and
    1900 per storage key. No L2 EVM: a transaction uses exactly this much gas.
    """
    zeros = data.count(0)
    gas = TX_BASE_GAS + TX_DATA_NON_ZERO_GAS * (len(data) - zeros) + TX_DATA_ZERO_GAS * zeros
    for _address, keys in access_list:
        gas += ACCESS_LIST_ADDRESS_GAS + ACCESS_LIST_STORAGE_KEY_GAS * len(keys)
    return gas


# --- predeploys -----------------------------------------------------------------------------

#: Optimism's L2ToL1MessagePasser predeploy: a call to it records an L2->L1 message
#: (a withdrawal). Nobody holds its key; the value sent to it stays in its balance, which is
#: thus the L2 side of everything ever withdrawn (the bridge releases it on L1).
MESSAGE_PASSER: Final = bytes.fromhex("4200000000000000000000000000000000000016")
#: Optimism's SequencerFeeVault predeploy: receives the priority fees (tips).
FEE_VAULT: Final = bytes.fromhex("4200000000000000000000000000000000000011")
ZERO_ADDRESS: Final = bytes(ADDRESS_SIZE)

# --- L2 -> L1 messages (withdrawals) ---------------------------------------------------------

#: Calldata of a call to MESSAGE_PASSER: Optimism's
#: ``initiateWithdrawal(address _target, uint256 _gasLimit, bytes _data)``, so viem's and
#: ethers' Optimism tooling works unchanged: selector 0xc2b3e5ac || abi.encode(target,
#: gasLimit, data), strictly canonical (see _execution.decode_withdrawal_call).
INITIATE_WITHDRAWAL_SELECTOR: Final = bytes.fromhex("c2b3e5ac")
#: A call with empty calldata is a plain ETH withdrawal to the sender itself with this L1 gas
#: limit: Optimism's RECEIVE_DEFAULT_GAS_LIMIT for its receive() function.
WITHDRAWAL_DEFAULT_GAS_LIMIT: Final = 100_000

# --- deposits ----------------------------------------------------------------------------------

#: The type byte mixed into a deposit's hash (Optimism's deposit tx type 0x7E), so a deposit
#: hash can never equal the hash of a signed transaction (those start with 0x02).
DEPOSIT_TX_TYPE: Final = 0x7E

# --- commitments --------------------------------------------------------------------------------

#: Every Merkle tree (accounts, messages, transactions) is 4-ary: a node hashes its four
#: children (128 bytes), which fits keccak's 136-byte rate, so a node costs one permutation
#: like a binary node while a path has half as many of them (numbers in _commitment).
MERKLE_ARITY: Final = 4
#: 4**16 = 2**32 leaves; a proof is a fixed 16 levels x 3 siblings, one Solidity loop.
MERKLE_DEPTH: Final = 16
