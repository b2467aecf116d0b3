"""The JSON objects of Ethereum's JSON-RPC (execution-apis), built from the sequencer's messages.

What this L2 does not have is given its Ethereum value for "none": no uncles (the empty list
hash), no logs (an all-zero bloom: no contract emits one, there is no L2 EVM), no proof of work.
A block has no receipts trie here, so ``receiptsRoot`` is the empty trie's root. A deposit
(minted from L1 through the portal) is shown as OP Stack's deposit transaction (type 0x7e):
no signature, no gas, ``mint`` = its value; its L1 sender is not known on L2 (``from`` is zero).
"""

from __future__ import annotations

from typing import Any, Final

from protocol import DEPOSIT_TX_TYPE, FEE_VAULT, TX_TYPE_EIP1559, ZERO_ADDRESS, Transaction, gas_and_price
from protos.l2node.sequencer.v1 import sequencer_pb2 as pb

from ._hex import data, quantity

#: keccak256(rlp([])): the uncle hash of a block without uncles.
EMPTY_UNCLES: Final = "0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347"
#: keccak256(rlp("")): the root of an empty trie.
EMPTY_TRIE: Final = "0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421"
ZERO_BLOOM: Final = "0x" + "00" * 256
ZERO_HASH: Final = "0x" + "00" * 32
ZERO_NONCE: Final = "0x0000000000000000"
ZERO_ADDR: Final = data(ZERO_ADDRESS)
MINER: Final = data(FEE_VAULT)  # the tips go there: the closest thing to a coinbase


def block_json(b: pb.Block, transactions: list[Any] | None = None) -> dict[str, Any]:
    """An Ethereum block; ``transactions`` as given (full objects), else its hashes."""
    return {
        "number": quantity(b.number),
        "hash": b.hash,
        "parentHash": b.parent_hash,
        "nonce": ZERO_NONCE,
        "mixHash": ZERO_HASH,
        "sha3Uncles": EMPTY_UNCLES,
        "logsBloom": ZERO_BLOOM,
        "transactionsRoot": b.transactions_root,
        "stateRoot": b.state_root,
        "receiptsRoot": EMPTY_TRIE,
        "miner": MINER,
        "difficulty": "0x0",
        "totalDifficulty": "0x0",
        "extraData": "0x",
        "gasLimit": quantity(b.gas_limit),
        "gasUsed": quantity(b.gas_used),
        "timestamp": quantity(b.timestamp),
        "baseFeePerGas": quantity(int(b.base_fee or 0)),
        "transactions": list(b.transaction_hashes) if transactions is None else transactions,
        "uncles": [],
    }


def signed_tx_json(tx: Transaction, base_fee: int | None, block_hash: str | None, block_number: int | None,
                   index: int | None) -> dict[str, Any]:
    """A signed (EIP-1559) transaction; the block fields are null while it is pending, and gasPrice
    is then its fee cap (as geth gives a pending one)."""
    price = tx.max_fee_per_gas if base_fee is None else gas_and_price(tx, base_fee)[1]
    return {
        "type": quantity(TX_TYPE_EIP1559),
        "hash": data(tx.hash),
        "nonce": quantity(tx.nonce),
        "blockHash": block_hash,
        "blockNumber": None if block_number is None else quantity(block_number),
        "transactionIndex": None if index is None else quantity(index),
        "from": data(tx.sender),
        "to": None if tx.to is None else data(tx.to),
        "value": quantity(tx.value),
        "gas": quantity(tx.gas_limit),
        "gasPrice": quantity(price),
        "maxFeePerGas": quantity(tx.max_fee_per_gas),
        "maxPriorityFeePerGas": quantity(tx.max_priority_fee_per_gas),
        "input": data(tx.data),
        "accessList": [{"address": data(a), "storageKeys": [data(k) for k in keys]} for a, keys in tx.access_list],
        "chainId": quantity(tx.chain_id),
        "v": quantity(tx.y_parity),
        "yParity": quantity(tx.y_parity),
        "r": quantity(tx.r),
        "s": quantity(tx.s),
    }


def deposit_tx_json(r: pb.Receipt) -> dict[str, Any]:
    """A deposit, as OP Stack shows one (type 0x7e): unsigned, with "zeroed signature v, r, s values
    for backwards compatibility" (OP's deposits spec), which ethers v6 needs to read a block at all."""
    mint = quantity(int(r.mint or 0))
    return {
        "type": quantity(DEPOSIT_TX_TYPE),
        "hash": r.tx_hash,
        "nonce": "0x0",
        "blockHash": r.block_hash or None,
        "blockNumber": quantity(r.block_number) if r.HasField("block_number") else None,
        "transactionIndex": quantity(r.index) if r.HasField("index") else None,
        "from": ZERO_ADDR,
        "to": r.to or None,
        "mint": mint,
        "value": mint,
        "gas": "0x0",
        "gasPrice": "0x0",
        "input": "0x",
        "isSystemTx": False,
        "sourceHash": r.source_hash or None,
        "v": "0x0",
        "r": "0x0",
        "s": "0x0",
    }


def receipt_json(r: pb.Receipt, tx_type: int, cumulative_gas: int) -> dict[str, Any]:
    """The receipt of a transaction in a sealed block: every one succeeded (a transaction the
    rules refuse is never in a block), and none logs."""
    number = quantity(r.block_number)
    return {
        "type": quantity(tx_type),
        "transactionHash": r.tx_hash,
        "transactionIndex": quantity(r.index),
        "blockHash": r.block_hash,
        "blockNumber": number,
        "from": getattr(r, "from") or ZERO_ADDR,
        "to": r.to or None,
        "contractAddress": None,
        "status": "0x1",
        "gasUsed": quantity(r.gas_used),
        "cumulativeGasUsed": quantity(cumulative_gas),
        "effectiveGasPrice": quantity(int(r.effective_gas_price or 0)),
        "logs": [],
        "logsBloom": ZERO_BLOOM,
    }
