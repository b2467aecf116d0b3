"""The L1 client's errors, and how the call policy treats each (retry? breaker failure?)."""

from __future__ import annotations

from typing import Any, Final

import aiohttp

from services.runtime import ANSWER, FAULT, TRANSIENT, Verdict, default_classify, http_status_verdict

#: EIP-1474 "limit exceeded": the node is rate limiting us; asking again later is the answer.
LIMIT_EXCEEDED: Final = -32005


class L1Error(Exception):
    """Base of everything this package raises about L1 (besides the policy's own errors)."""


class RpcError(L1Error):
    """A JSON-RPC error response: the node answered, and said no (a revert, a bad nonce...).

    ``data`` is the error's data member as sent (revert data is 0x-hex there); see
    :attr:`revert_data`.
    """

    def __init__(self, code: int, message: str, data: Any = None, *, method: str = "") -> None:
        super().__init__(f"{method + ': ' if method else ''}{message} (code {code})")
        self.code = code
        self.message = message
        self.data = data
        self.method = method

    @property
    def revert_data(self) -> bytes | None:
        """The revert payload of a failed eth_call/eth_estimateGas (custom error, Error(string)...)."""
        data = self.data
        if isinstance(data, dict):  # some nodes nest it: {"data": "0x..."}
            data = data.get("data")
        if isinstance(data, str) and data.startswith("0x"):
            try:
                return bytes.fromhex(data[2:])
            except ValueError:
                return None
        return None

    def mentions(self, *phrases: str) -> bool:
        """Whether the message contains one of ``phrases`` (nodes agree on words, not on codes)."""
        text = self.message.lower()
        return any(p in text for p in phrases)


class HttpStatusError(L1Error):
    """The endpoint answered with a non-2xx HTTP status instead of a JSON-RPC response."""

    def __init__(self, status: int, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(f"HTTP {status} {reason}".strip())
        self.status = status
        self.retry_after_s = retry_after_s


class ProtocolError(L1Error):
    """The endpoint's answer is not valid JSON-RPC (a proxy's HTML page, a truncated body...)."""


class ReceiptTimeout(L1Error, TimeoutError):
    """No receipt for the transaction within the time given."""

    def __init__(self, tx_hash: bytes, timeout_s: float) -> None:
        super().__init__(f"no receipt for 0x{tx_hash.hex()} within {timeout_s:.3g}s")
        self.tx_hash = tx_hash


class FeeCapExceeded(L1Error):
    """The market (or a replacement's required bump) asks for more than the configured fee cap."""


class TransactionDropped(L1Error):
    """Another transaction took this one's nonce (sent out of band with the same key)."""


class ReorgTooDeep(L1Error):
    """The chain replaced a block at or below the finalized head the follower had seen.

    Finality was violated (or finality_depth is too small for a chain without the tag); nothing
    delivered can be trusted any more, so the follower stops instead of guessing.
    """


def classify(exc: BaseException) -> Verdict:
    """The L1 endpoint's classifier for its CallPolicy.

    Connection errors, timeouts and 5xx are retried and count against the breaker; so is a
    rate limit (HTTP 429, JSON-RPC -32005). A JSON-RPC error is an answer: never retried (a
    revert stays a revert), and it proves the endpoint is up.
    """
    if isinstance(exc, RpcError):
        return TRANSIENT if exc.code == LIMIT_EXCEEDED else ANSWER
    if isinstance(exc, HttpStatusError):
        return http_status_verdict(exc.status, exc.retry_after_s)
    if isinstance(exc, ProtocolError):
        return FAULT
    if isinstance(exc, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError):
        # Refused, reset, or dropped before or during the answer (ServerDisconnectedError and a
        # truncated body are no OSError). A retried eth_sendRawTransaction is harmless: the same
        # bytes are the same transaction, and the sender takes "already known" for success.
        return TRANSIENT
    if isinstance(exc, aiohttp.ClientResponseError):
        return FAULT
    return default_classify(exc)
