"""JSON-RPC errors: the codes of the JSON-RPC 2.0 spec and EIP-1474, and geth's words for every
reason the sequencer refuses a transaction with.

Ethereum tools match on geth's messages ("nonce too low", "insufficient funds for gas * price +
value", "already known", ...): ethers maps them to its error codes, viem to its error classes,
wallets to what they show. So a refusal (``protocol.Reason``, the sequencer's one vocabulary)
is answered with geth's message in :data:`GETH_MESSAGES`, the one table, code -32000 as geth
gives its txpool and state errors, and the sequencer's own reason and words in ``data``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from protocol import Reason

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603
#: geth's code for what the node refuses (txpool, state, missing header): EIP-1474's "invalid input".
SERVER_ERROR: Final = -32000
#: EIP-1474: the resource asked for (a block, a subscription) is not available.
RESOURCE_UNAVAILABLE: Final = -32002


class RpcError(Exception):
    """A JSON-RPC error response: ``code``, ``message`` and optional ``data``."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(code, message, data)
        self.code = code
        self.message = message
        self.data = data

    def payload(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


def invalid_params(message: str) -> RpcError:
    return RpcError(INVALID_PARAMS, f"invalid argument: {message}")


#: geth's message for each reason a transaction is refused (core/txpool errors, core/error.go,
#: core/types' signer errors). A reason geth has no word for keeps a message in geth's style.
GETH_MESSAGES: Final[Mapping[Reason, str]] = MappingProxyType({
    Reason.OVERSIZED: "oversized data",
    Reason.MALFORMED_RLP: "rlp: invalid transaction encoding",
    Reason.TX_TYPE_NOT_SUPPORTED: "transaction type not supported",
    Reason.WRONG_CHAIN_ID: "invalid chain id for signer",
    Reason.FIELD_OUT_OF_RANGE: "rlp: transaction field out of range",
    Reason.INVALID_ADDRESS: "rlp: invalid address",
    Reason.CONTRACT_CREATION_NOT_SUPPORTED: "contract creation not supported",
    Reason.TIP_ABOVE_FEE_CAP: "max priority fee per gas higher than max fee per gas",
    Reason.GAS_LIMIT_TOO_HIGH: "exceeds block gas limit",
    Reason.INTRINSIC_GAS_TOO_LOW: "intrinsic gas too low",
    Reason.MALFORMED_WITHDRAWAL: "execution reverted: malformed withdrawal call",
    Reason.INVALID_SIGNATURE: "invalid sender",
    Reason.HIGH_S: "invalid transaction v, r, s values",
    Reason.NONCE_TOO_LOW: "nonce too low",
    Reason.NONCE_TOO_HIGH: "nonce too high",
    Reason.INSUFFICIENT_FUNDS: "insufficient funds for gas * price + value",
    Reason.FEE_CAP_BELOW_BASE_FEE: "max fee per gas less than block base fee",
    Reason.BLOCK_GAS_LIMIT_REACHED: "gas limit reached",
    Reason.GAS_LIMIT_ABOVE_BLOCK: "exceeds block gas limit",
    Reason.ALREADY_KNOWN: "already known",
    Reason.NONCE_GAP_TOO_LARGE: "nonce too high: gap to the account's next nonce too large",
    Reason.UNDERPRICED: "transaction underpriced",
    Reason.REPLACEMENT_UNDERPRICED: "replacement transaction underpriced",
    Reason.ACCOUNT_LIMIT: "account limit exceeded",
    Reason.POOL_FULL: "txpool is full",
})


def refusal(reason: str, message: str) -> RpcError:
    """The error for a transaction the sequencer refused for ``reason`` (a Reason's value) with
    ``message``: geth's words, code -32000; the sequencer's reason and words in ``data``."""
    try:
        words = GETH_MESSAGES[Reason(reason)]
    except (ValueError, KeyError):
        words = message or reason.lower().replace("_", " ")
    return RpcError(SERVER_ERROR, words, {"reason": reason, "message": message})
